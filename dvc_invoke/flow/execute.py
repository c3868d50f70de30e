"""A run executed in this process: pull, repro, measure, publish and notify, its record
and log kept at each step; the first failure or signal ends it with one line that
names the step and the command that resumes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, NoReturn

from dvc_invoke import console
from dvc_invoke.adapters.dvc import staleness
from dvc_invoke.adapters.git import GitState
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.pipelines import Pipeline
from dvc_invoke.errors import Cancelled, DvcInvokeError, Lost, Requeued
from dvc_invoke.flow import notifiers
from dvc_invoke.flow.interrupts import Interrupts
from dvc_invoke.flow.plan import Plan, plan, publish_command
from dvc_invoke.flow.publishing import Published, baseline, measure, publish
from dvc_invoke.flow.steps import pull, reproduce
from dvc_invoke.flow.upstream import rebuild_upstream
from dvc_invoke.runs.record import RunReport, some
from dvc_invoke.runs.store import Store, read_tail


@dataclass
class Execution:
    """One run as it executes here. ``store`` is None for a dry run; ``runner``
    runs an upstream pipeline's whole flow (handed down by the caller)."""

    ws: Workspace
    plan: Plan
    report: RunReport
    chain: list[notifiers.Notifier]
    start: GitState
    store: Store | None
    runner: Callable[..., Any]
    skip: tuple[str, ...] = ()

    def save(self, step: str | None = None) -> None:
        """The run's record, at ``step``; its failure never hides the run's own."""
        self.report.step = step if step is not None else self.report.step
        if self.store is not None:
            self.store.keep(self.report)


def execute(run: Execution, *, announced: bool = False) -> RunReport:
    """Pull, repro, publish and notify, keeping the run's record and log.

    With ``upstream``, the stale upstream pipelines run first, each a run
    of its own; the pipeline is then read again, from the commit they left.
    """
    report = run.report
    keep_log = run.store is not None and report.log is not None and not report.detached
    log = open(report.log, "a") if keep_log and report.log else None  # noqa: SIM115
    with contextlib.ExitStack() as stack, Interrupts() as interrupts:
        if log is not None:
            stack.enter_context(log)
            stack.enter_context(console.log_to(log))
        try:
            with run.ws.running(stops=interrupts, log=log):
                if not announced and run.store is not None:
                    notifiers.deliver(run.chain, report)
                done = _steps(run)
        except (DvcInvokeError, KeyboardInterrupt) as exc:
            _failed(run, exc, interrupts, log)
        if run.store is None:  # a dry run
            console.result(True, f"dry run of {run.plan.pipeline.name}: nothing was done")
            return report
        _succeeded(run, done)
    return report


def _steps(run: Execution) -> Published:
    ws, report, command = run.ws, run.report, run.report.command
    name = run.plan.pipeline.name
    if run.plan.upstream and run.plan.graph.stale_upstream:
        _upstream_first(run)
    run.save("pull")
    console.step(name, "pull")
    pull(ws, run.plan, resume=command)
    run.save("repro")
    detail = some(run.plan.graph.stages, 8) + (" (forced)" if run.plan.force else "")
    console.step(name, "repro", detail)
    ran = reproduce(ws, run.plan, resume=command)
    changes = measure(ws, run.plan, baseline(ws, run.start))
    report.metrics = [
        {**c.to_dict(), **({"gated": True} if _gated(run.plan.pipeline, c.name) else {})}
        for c in changes or []
        if c.changed
    ]
    run.save("publish")
    console.step(name, "publish")
    return publish(ws, run.plan, expect=run.start, changes=changes, rerun=command, ran=ran)


def _upstream_first(run: Execution) -> None:
    """The stale upstream pipelines' whole flows, then the pipeline read again."""
    ws, p = run.ws, run.plan.pipeline
    run.save("upstream")
    console.step(p.name, "upstream", ", ".join(u.dvcfile for u in run.plan.graph.stale_upstream))
    if rebuild_upstream(ws, run.plan, run.skip, run.runner) and not ws.dry:
        remote = run.plan.remote
        run.plan = plan(ws, p, force=run.plan.force, upstream=True)
        run.plan.remote = remote
        run.start = ws.git.state(step="upstream")


def _failed(
    run: Execution,
    exc: DvcInvokeError | KeyboardInterrupt,
    interrupts: Interrupts,
    log: IO[str] | None,
) -> NoReturn:
    """The run's end after a failure or a signal: recorded, told, raised again."""
    ws, report, command = run.ws, run.report, run.report.command
    if isinstance(exc, KeyboardInterrupt):  # between commands: SLURM's SIGTERM too
        exc = interrupts.stopped(report.step or "pull", command) or Cancelled(
            "interrupted (SIGINT)", step=report.step, resume=command
        )
    resume = exc.resume or command
    if isinstance(exc, Cancelled) and report.step == "publish":
        resume = publish_command(run.plan.pipeline)
    elif isinstance(exc, Cancelled) and report.step == "repro" and not ws.dry:
        resume = _after_interrupted_repro(ws, run.plan, command)
    report.commit_after = ws.git.head()
    if log is not None:
        log.flush()
    tail = read_tail(report.log) or exc.log
    status = "cancelled" if isinstance(exc, Cancelled) else "failed"
    status = "lost" if isinstance(exc, Lost) else status
    # The SLURM job's own run starts again with the job; a run inside it does not.
    status = "requeued" if isinstance(exc, Requeued) and report.job else status
    report.step = exc.step or report.step
    report.to_commit, report.kept = exc.to_commit, exc.kept
    report.end(status, reason=exc.reason, resume=resume, log_tail=tail)
    notifiers.deliver(run.chain, report)
    run.save()
    if isinstance(exc, Cancelled):  # Lost stays Lost, for an upstream run's caller too
        raise type(exc)(exc.reason, step=report.step, resume=resume) from None
    raise exc from None


def _succeeded(run: Execution, done: Published) -> None:
    report, p = run.report, run.plan.pipeline
    report.committed, report.git_pushed = done.committed, done.git_pushed
    report.pushed, report.rewritten = list(done.pushed), list(done.rewritten)
    report.commit_after = done.commit
    if done.committed or not p.commit:  # else nothing changed that plots are drawn from
        # Pictures for whom posts them (Slack's Web API); the names for all.
        draw = any(getattr(n, "posts_pictures", False) for n in run.chain)
        _plots(run.ws, run.plan, report, run.start, draw=draw)
    report.end("succeeded")
    notifiers.deliver(run.chain, report)
    run.save(None)


def _plots(
    ws: Workspace, run_plan: Plan, report: RunReport, start: GitState, *, draw: bool
) -> None:
    """The plots the run changed, drawn for its notifications (never fails the run)."""
    from dvc_invoke.adapters.dvc import plots

    if not ws.settings.plots or not start.commit or not report.id:
        return
    folder = Store(ws.root).dir / "plots" / report.id
    try:
        found = plots.changed(ws, run_plan.graph.plot_files, start.commit, folder, draw=draw)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - published already:
        # pictures are a bonus, never the run's end (a Ctrl-C here skips them alone)
        console.warn(f"could not compare the run's plots: {exc or 'interrupted'}")
        return
    report.plots, report.plots_html = found.get("plots", []), found.get("html")


def _gated(p: Pipeline, name: str) -> bool:
    return any(g.matches(name) for g in p.gates or ())


def _after_interrupted_repro(ws: Workspace, plan: Plan, rerun: str) -> str:
    """What to run after an interrupt during repro: when DVC finished the
    stages anyway (the interrupt reached the run alone), publishing them, not
    running them again."""
    if not ws.git.changed_paths(plan.graph.lockfiles):
        return rerun  # no stage got as far as its lock
    try:
        unfinished = staleness.stale(ws.root, plan.graph.stages, outputs_here=True)
    except DvcInvokeError:
        return rerun
    return rerun if unfinished else publish_command(plan.pipeline)
