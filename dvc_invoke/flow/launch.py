"""One run of a pipeline: prepared here, then launched on an engine or executed here.

The guards and preflight run first, in the foreground, so what can fail fast
does; the run is then launched (detached, SLURM, a GPU host) or executed in
this process: pull, repro, measure, publish, notify, each step a module of
`dvc_invoke.flow`. After that the first failure stops the run with one line
that names the step and the command that resumes.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass
from typing import Any

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.dvc.remote import remote_check
from dvc_invoke.adapters.git import GitState
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.pipelines import Pipeline, resolve
from dvc_invoke.engines.detached import launch
from dvc_invoke.engines.local import marked, own_group
from dvc_invoke.engines.slurm import submit
from dvc_invoke.engines.ssh_agent import tell_started
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow import checks, notifiers
from dvc_invoke.flow.checks import check, preflight
from dvc_invoke.flow.context import RunContext
from dvc_invoke.flow.execute import Execution, execute
from dvc_invoke.flow.holding import claim
from dvc_invoke.flow.lost import tell_lost
from dvc_invoke.flow.plan import (
    Plan,
    default_command,
    need_dvcfile,
    plan,
)
from dvc_invoke.flow.upstream import upstream_pipelines, warn_stale_upstream
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import ENV_RUN, Store, process_identity


def run(
    c: Any,
    name: str,
    *,
    force: bool | None = None,
    upstream: bool | None = None,
    detach: bool = False,
    command: str | None = None,
    skip: tuple[str, ...] | list[str] = (),
    slurm: bool = False,
    host: str | None = None,
) -> RunReport | None:
    """The whole flow for pipeline ``name``; raises `DvcInvokeError` on failure.
    ``force``/``upstream`` left None take the pipeline's own setting.

    Everything that can fail fast runs here, in the foreground: the
    pipeline, the guards, its targets, the Slack set-up, and whether another
    run holds the workspace. With ``detach`` the rest then runs in a
    background process that survives the terminal, and this returns at once;
    with ``slurm``, in a SLURM batch job (``sbatch``, the pipeline's options).
    With ``host``, on a GPU host over SSH (see `dvc_invoke.engines.ssh.start`): nothing runs here.
    """
    command = command or default_command(name, force=bool(force), upstream=bool(upstream))
    if host:
        from dvc_invoke.engines import ssh

        task_args = shlex.split(command)[1:]
        for left_out in skip or ():
            task_args += ["--skip", left_out]
        ssh.start(c, name, host, task_args, slurm=slurm)
        return None
    request = Request(name, force, upstream, detach or slurm, command, tuple(skip), slurm)
    with RunContext(c) as ctx:
        return _run(ctx, request)


@dataclass(frozen=True)
class Request:
    """What was asked for: the pipeline, its options, and the command that resumes it."""

    name: str
    force: bool | None
    upstream: bool | None
    detach: bool
    command: str
    skip: tuple[str, ...]
    slurm: bool
    sweep: dict[str, Any] | None = None  # a sweep of experiments (`dvc_invoke.flow.sweep`)


@dataclass
class Prepared:
    """A run that passed its checks: its plan, the git state it starts from, who is
    told, and the run id of the record prepared for it when this process adopts it."""

    plan: Plan
    state: GitState
    chain: list[notifiers.Notifier]
    adopted: str | None


def _run(ctx: RunContext, request: Request) -> RunReport | None:
    ws = ctx.ws
    ready = prepare(ctx, request)
    if ws.dry:
        return _dry(ctx, request, ready)
    store, p = Store(ws.root), ready.plan.pipeline
    if ready.adopted:
        report = store.adopt(ready.adopted, p.name, pgid=own_group(detached=True))
    else:
        report = started(ctx, request, ready, store)
        if request.detach:
            tell_detached(p, report, slurm=request.slurm)
            return report
    with marked(report):
        here = Execution(ws, ready.plan, report, ready.chain, ready.state, store, run, request.skip)
        try:
            report = execute(here, announced=not ready.adopted and "slack" not in request.skip)
        except DvcInvokeError:
            prune(ws, store)
            raise
        prune(ws, store)
        return report


def prepare(ctx: RunContext, request: Request) -> Prepared:
    """The pipeline, the guards, its plan, who is told, and the preflight: all
    that can fail fast, in the foreground."""
    c, ws, command, skip = ctx.c, ctx.ws, request.command, request.skip
    p = resolve(c, ws.root, request.name)
    # Set in the process that --detach started: run in it, do not detach again.
    adopted = os.environ.pop(ENV_RUN, None)
    state = ws.git.state()  # not a git repository: say so before anything else
    # The fetch and push check reach the network: begun while DVC reads, when
    # nothing git tracks changed (changes may be refused first, and then
    # nothing should have been fetched or shown as fetched).
    if not adopted and not state.changed:
        checks.start_git_checks(ctx, p, state, skip=skip, resume=command)
    need_dvcfile(ws, p)
    run_plan = plan(ws, p, force=request.force, upstream=request.upstream)
    state = check(
        ws, p, resume=command, own=run_plan.graph.git_paths(), state=state, graph_=run_plan.graph
    )
    if not adopted:
        warn_stale_upstream(ws, run_plan, command)
        if run_plan.upstream:
            upstream_pipelines(ws, run_plan)  # whom it would run: refused now, if anyone
    # A dry run tells nobody: it shows on the console what the run would do.
    chain: list[notifiers.Notifier] = [notifiers.ConsoleNotifier(ends_with_reason=True)]
    if not ws.dry:
        chain = notifiers.notifiers(c, ws.root, slack=p.slack, ends_with_reason=True)
    if not adopted:
        state = preflight(ws, run_plan, state, skip=skip, resume=command, begun=ctx.checks)
    elif "dvc-remote" not in skip:
        run_plan.remote = remote_check(ws.root)
    return Prepared(run_plan, state, chain, adopted)


def _dry(ctx: RunContext, request: Request, ready: Prepared) -> RunReport | None:
    """Under ``inv --dry``: what the run would do, shown; nothing started or recorded."""
    ws, p = ctx.ws, ready.plan.pipeline
    report = RunReport(pipeline=p.name, command=request.command, step="pull")
    report.branch, report.commit_before = ready.state.branch, ready.state.commit
    if request.detach and not ready.adopted:
        report.id, report.log = "RUN-ID", str(Store(ws.root).log_path("RUN-ID"))
        if request.slurm:
            submit(ws, report, dict(p.slurm or {}))
        else:
            launch(ws, report)
        console.result(True, "dry run: nothing was started")
        return None
    here = Execution(ws, ready.plan, report, ready.chain, ready.state, None, run, request.skip)
    return execute(here)


def started(ctx: RunContext, request: Request, ready: Prepared, store: Store) -> RunReport:
    """The run's record, claiming the workspace; its start announced (a refused first
    message refuses the run); launched on its engine when it runs elsewhere."""
    ws, p, command = ctx.ws, ready.plan.pipeline, request.command
    report = RunReport(
        pipeline=p.name,
        command=command,
        step="pull",
        detached=request.detach,
        slack=dict(p.slack) if p.slack else None,
        sweep=dict(request.sweep) if request.sweep is not None else None,
    )
    report.branch, report.commit_before = ready.state.branch, ready.state.commit
    if not request.detach:
        report.pid, report.pgid = os.getpid(), own_group(detached=False)
        report.process_started = process_identity(report.pid)
    lost = claim(store, report)
    launched = announced = False
    try:
        tell_lost(ctx.c, ws, lost)
        if "slack" not in request.skip:
            _announce(ready.chain, report)
            store.save(report)
            announced = True
        if request.slurm:
            job = submit(ws, report, dict(p.slurm or {}))
            launched = True
            report = store.set_job(report, job)
        elif request.detach:
            launch(ws, report)
            launched = True
    except BaseException as exc:
        # Refused, interrupted or cut off (a closed pipe) before the run
        # started: no record may claim the workspace for a run that never was.
        if not launched:
            store.forget(report)
            if isinstance(exc, DvcInvokeError) and announced:
                report.end("failed", reason=exc.reason, resume=command)
                report.step = exc.step
                notifiers.deliver(ready.chain, report)  # its start was announced
        raise
    return report


def _announce(chain: list[notifiers.Notifier], report: RunReport) -> None:
    """The run's start, told: the first message is Slack's check."""
    refusals = notifiers.announce(chain, report)
    if refusals:
        raise DvcInvokeError(
            f"the run's first message was refused ({'; '.join(refusals)}):"
            " fix the set-up (SLACK_BOT_TOKEN / SLACK_CHANNEL for Slack),"
            " or run with --skip slack",
            step="guards",
        )


def tell_detached(p: Pipeline, report: RunReport, *, slurm: bool) -> None:
    """Where a detached run is, and how to follow or cancel it."""
    with contextlib.suppress(BrokenPipeError):
        if slurm:
            console.result(
                True, f"{p.name} is submitted to SLURM as job {report.job}, run {report.id}"
            )
        else:
            console.result(True, f"{p.name} is running in the background as run {report.id}")
        console.info(f"log:     {report.log}")
        console.info(f"follow:  {tasknames.follow(report.id or '')}")
        console.info(f"cancel:  {tasknames.cancel(report.id or '')}")
        tell_started(report.id or "", report.job)


def prune(ws: Workspace, store: Store) -> None:
    """At the end of a run: the old runs' records, logs and plots beyond what
    ``dvc_invoke.keep`` keeps are removed (never the run's end)."""

    try:
        store.prune(ws.settings.keep)
    except (DvcInvokeError, OSError) as exc:
        console.warn(f"old runs were not pruned: {getattr(exc, 'reason', exc)}")
