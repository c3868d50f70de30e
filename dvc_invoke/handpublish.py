"""Publishing by hand (``inv publish``), finishing a run that stopped while
publishing, and throwing away what a failed run left (``inv repro.discard``)."""

from __future__ import annotations

import os
from typing import Any

from . import console, graph, notifiers, runs
from .errors import DvcInvokeError
from .gitops import Git
from .paths import overlaps
from .pipelines import Pipeline, resolve
from .planning import Plan, plan, publish_command
from .publishing import Published, publish
from .report import RunReport, short
from .runs import tell_lost
from .workspace import GitState, Workspace, quote_all


def discard(ws: Workspace, p: Pipeline) -> list[str]:
    """Put the pipeline's own files back as HEAD has them, after a failed or
    refused run: its lock files and the files git holds for it with
    ``git restore``, its cached outputs with ``dvc checkout --force``. Nothing
    else in the workspace is touched. Returns what git restored."""
    if not ws.dry:
        runs.Store(ws.root).free()  # never under a run that is still writing
    run_plan = plan(ws, p, force=True)  # forced: nothing to restore from the remote here
    own = run_plan.graph.git_paths()
    known = Git(ws).tracked_at_head(own)
    changed = [f for f in ws.changed_paths(own) if f in known]
    if changed:
        Git(ws).restore(changed, step="discard")
    outputs = run_plan.graph.push_targets
    if outputs:
        # An output HEAD has no hash for (a pipeline never run before), or whose
        # object this clone never pulled, has nothing to go back to: left alone.
        ws.act(f"{ws.dvc} checkout --force --allow-missing {quote_all(outputs)}", step="discard")
    return changed


def finish(c: Any, name: str, *, accept: bool = False) -> Published:
    """``inv publish``: publish a pipeline's results by hand, and tell the team.

    When the pipeline's latest run failed or was cancelled while publishing
    (its resume command is ``inv publish``), that run is finished: its record
    and its Slack message turn to succeeded, so that nobody keeps waiting for
    data that is now on the remote. Otherwise the team hears of a publish
    that committed or pushed something; one with nothing to do stays quiet.
    A publish that fails again tells only the console: the team already knows.
    """
    ws = Workspace(c)
    with graph.session(ws.root):
        return _finish(c, ws, name, accept)


def _finish(c: Any, ws: Workspace, name: str, accept: bool) -> Published:
    p = resolve(c, ws.root, name)
    store = runs.Store(ws.root)
    if not ws.dry:
        # Never commit under a run that is still writing to the workspace.
        tell_lost(c, ws, store.free())
    before = ws.git_state(step="commit")
    if p.commit and p.git_push and before.branch is None:
        raise DvcInvokeError(
            "HEAD is detached: a commit here would be lost on the next checkout;"
            " check out the branch to publish to",
            step="commit",
            resume=publish_command(p),
        )
    run_plan = plan(ws, p)
    pending = None if ws.dry else unpublished_run(store, p, before, ws, run_plan)
    if run_plan.push and not ws.dry:
        run_plan.remote = graph.remote_check(ws.root)
        if run_plan.remote.problem:
            raise DvcInvokeError(
                run_plan.remote.problem, step="dvc push", resume=publish_command(p)
            )
    chain = notifiers.notifiers(c, ws.root, slack=p.slack)
    console.step(p.name, "publish", f"run {pending.id}" if pending else "")
    done = publish(ws, run_plan, always_push=True, accept=accept)
    if ws.dry:
        return done
    command = publish_command(p) + (" --accept" if accept else "")
    if pending is not None:
        report = pending
        # The run made its commit before publishing failed: HEAD moved under it.
        moved = report.commit_after not in (None, report.commit_before)
        report.committed = report.committed or done.committed or moved
        report.git_pushed = report.git_pushed or done.git_pushed
    elif done.committed or done.git_pushed:
        report = RunReport(
            pipeline=p.name, command=command, slack=dict(p.slack) if p.slack else None
        )
        report.branch, report.commit_before = before.branch, before.commit
        report.committed, report.git_pushed = done.committed, done.git_pushed
    else:
        console.result(True, f"{p.name}: already published at {short(done.commit)}")
        return done
    report.step, report.published_by = None, command
    report.pushed, report.commit_after = list(done.pushed), done.commit
    report.end("succeeded")
    notifiers.deliver(chain, report)
    if pending is not None:
        store.save(report)
        if report.log and os.path.isfile(report.log):
            with open(report.log, "a") as log:
                log.write(f"\n✔ {p.name} succeeded: published by hand with {command}\n")
    return done


def unpublished_run(
    store: runs.Store,
    p: Pipeline,
    state: GitState,
    ws: Workspace | None = None,
    run_plan: Plan | None = None,
) -> RunReport | None:
    """The pipeline's latest run, if it ended waiting for ``inv publish`` on the
    branch the workspace is on, at the commit it is at now or one that only
    adds commits the run's results do not depend on (a report the user
    committed by hand, say); else what is published is not that run's work."""
    for report in store.all():
        if report.pipeline == p.name:
            waiting = report.status in ("failed", "cancelled", "lost")
            # "inv publish …", or "review `git status`, then inv publish …"
            # Whichever program name (inv, invoke) the run was started with.
            waiting = waiting and publish_command(p).partition(" ")[2] in (report.resume or "")
            here = report.branch == state.branch and (
                report.commit_after == state.commit
                or _only_unrelated_since(ws, run_plan, report.commit_after, report.to_commit)
            )
            return report if waiting and here else None
    return None


def _only_unrelated_since(
    ws: Workspace | None, run_plan: Plan | None, rev: str | None, asked: list[str] | None = None
) -> bool:
    """Whether HEAD descends from ``rev`` through commits that touch nothing
    the pipeline's results depend on, but the files the run ``asked`` to commit
    (as the run used them: the workspace has no other copy of them now)."""
    if ws is None or run_plan is None or not rev:
        return False
    git = Git(ws)
    if not git.is_ancestor(rev):
        return False
    changed = git.changed_since(rev)
    if changed is None:
        return False
    if asked and ws.changed_paths(asked):
        return False  # not committed as the run used them
    changed = [f for f in changed if f not in set(asked or ())]
    return not any(overlaps(f, run_plan.graph.depends_on) for f in changed)
