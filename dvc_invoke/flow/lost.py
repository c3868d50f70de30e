"""Lost runs: a run whose process is gone without an end is marked lost, what it
left running is stopped, and the team is told, once.

``python -m dvc_invoke settle ROOT ID`` (`main`) runs after a detached run's
process or a SLURM job, whatever ended it, and does this when the run left no end.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.git import run_commit
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.engines import alive, slurm
from dvc_invoke.engines.local import stop_leftovers
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow import notifiers
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import Store, elsewhere, read_tail

# The steps of publishing: a run lost there may have committed, or pushed.
PUBLISHING = ("publish", "commit", "dvc push", "git push")


def mark_lost(report: RunReport, root: Path | None = None) -> None:
    """``report``'s run is lost; with ``root`` (its workspace, on this host), its
    commit and push as git holds them now, and the command that finishes it."""
    report.status = "lost"
    if report.job and not report.reason:
        report.reason = slurm.lost_reason(report.job)
    report.reason = report.reason or "the run's process died without a result"
    report.ended_at = time.time()
    report.resume = report.resume or report.command
    if report.sweep is not None and report.sweep.get("array"):
        # Its collector is gone: the array's tasks would go on, unseen.
        slurm.cancel_array(str(report.sweep["array"]))
        report.reason += f"; its SLURM array {report.sweep['array']} is cancelled"
        report.resume = slurm.sweep_resume(report)
    if report.sweep is not None and report.sweep.get("part"):
        from dvc_invoke.runs.sweep import share_resume

        report.resume = share_resume(report)
    if root is not None and report.step in PUBLISHING and not elsewhere(report):
        _published_as_git_holds(Path(root), report)


def _published_as_git_holds(root: Path, report: RunReport) -> None:
    """A run lost while publishing: whether it committed and pushed, and the resume
    that finishes it (``inv publish`` after a commit the upstream lacks). What it
    left running is stopped first, so that nothing commits or pushes after this look."""
    stop_leftovers(report)
    found = run_commit(root, report.commit_before or "", report.branch)
    if found is None:
        return
    head, pushed = found
    report.committed, report.commit_after, report.git_pushed = True, head, pushed
    if report.git_pushed:
        report.reason = f"{report.reason}, after it published (committed, pushed to git)"
        report.resume = None
    else:
        report.reason = f"{report.reason}, after its commit, which git has not pushed"
        report.resume = f"{tasknames.command('publish')} --pipeline {shlex.quote(report.pipeline)}"


def settle_lost(reports: list[RunReport], chain: list[notifiers.Notifier]) -> None:
    """Stop what each lost run left running, then tell the team."""
    for report in reports:
        stop_leftovers(report)
        report.log_tail = read_tail(report.log)
        notifiers.deliver(chain, report)


def tell_lost(c: Any, ws: Workspace, lost: list[RunReport]) -> None:
    """Stop what each run found dead left running, and tell the team, each
    with its own pipeline's Slack set-up."""
    for report in lost:
        then = f"; then run: {report.resume}" if report.resume else ""
        console.warn(f"run {report.id} ({report.pipeline}) was lost: {report.reason}{then}")
        settle_lost([report], notifiers.notifiers(c, ws.root, slack=report.slack))
        Store(ws.root).save(report)


def settle(root: Path, run_id: str) -> int:
    """After a detached run's process: if it left no end, it is lost, and the team is told."""
    store = Store(root)
    with store.lock():
        report = store.load(run_id)
        if report.ended:
            return 0
        if report.job and os.environ.get("SLURM_JOB_ID") != report.job and alive(report):
            return 0  # the settle job, while the run's job runs again after a requeue
        if report.status == "requeued" and alive(report):
            return 0  # the requeued job's own shell: SLURM starts the job again
        mark_lost(report, root)
        store.save(report)
    chain = notifiers.notifiers(_project_context(root), root, slack=report.slack)
    settle_lost([report], chain)
    store.save(report)
    return 1


def _project_context(root: Path) -> Any:
    """An invoke context as ``inv`` in ``root`` would make it: the project's
    config files and ``tasks.py`` (its configuration, the notifiers it registers).
    A ``tasks.py`` that no longer loads still leaves the defaults to tell the team."""
    from invoke.config import Config
    from invoke.context import Context
    from invoke.loader import FilesystemLoader

    config = Config()
    with contextlib.suppress(Exception):
        # Where `inv` finds tasks.py (the DVC root, or a folder above it), its config is too.
        _, found_in = FilesystemLoader(start=str(root), config=config).load()
        config.set_project_location(found_in)
        ns = tasknames.loaded_collection()
        if ns is not None:
            config.load_collection(ns.configuration())
    config.load_project()
    config.load_shell_env()  # last, as invoke's Program does
    return Context(config=config)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "settle":
        print("usage: python -m dvc_invoke settle ROOT RUN_ID", file=sys.stderr)
        return 2
    try:
        return settle(Path(args[1]), args[2])
    except DvcInvokeError as exc:
        print(exc.line(), file=sys.stderr)
        return 1
