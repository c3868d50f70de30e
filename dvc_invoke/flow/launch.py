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
from typing import Any

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.dvc import graph
from dvc_invoke.adapters.interrupts import Interrupts
from dvc_invoke.adapters.shell import GitState, Workspace
from dvc_invoke.config.pipelines import Pipeline, resolve
from dvc_invoke.engines.ssh_agent import tell_started
from dvc_invoke.errors import Cancelled, DvcInvokeError, Lost, Requeued
from dvc_invoke.flow import checks, notifiers
from dvc_invoke.flow.checks import check, preflight
from dvc_invoke.flow.plan import (
    Plan,
    default_command,
    need_dvcfile,
    plan,
    publish_command,
)
from dvc_invoke.flow.publishing import baseline, measure, publish
from dvc_invoke.flow.steps import pull, reproduce
from dvc_invoke.flow.upstream import rebuild_upstream, upstream_pipelines, warn_stale_upstream
from dvc_invoke.runs.record import RunReport, some
from dvc_invoke.runs.store import (
    ENV_RUN,
    Store,
    launch,
    marked,
    process_identity,
    read_tail,
    submit,
    tell_lost,
)


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
    ws = Workspace(c)
    # One DVC Repo for the run's reads; git's network checks begun early are waited for.
    with graph.session(ws.root), checks.settling(ws):
        return _run(c, ws, name, force, upstream, detach or slurm, command, tuple(skip), slurm)


def _run(
    c: Any,
    ws: Workspace,
    name: str,
    force: bool | None,
    upstream: bool | None,
    detach: bool,
    command: str,
    skip: tuple[str, ...],
    slurm: bool,
) -> RunReport | None:
    p = resolve(c, ws.root, name)
    # Set in the process that --detach started: run in it, do not detach again.
    adopted = os.environ.pop(ENV_RUN, None)
    skip = tuple(skip or ())
    state = ws.git_state()  # not a git repository: say so before anything else
    # The fetch and push check reach the network: begun while DVC reads, when
    # nothing git tracks changed (changes may be refused first, and then
    # nothing should have been fetched or shown as fetched).
    if not adopted and not state.changed:
        checks.start_git_checks(ws, p, state, skip=skip, resume=command)
    need_dvcfile(ws, p)
    run_plan = plan(ws, p, force=force, upstream=upstream)
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
        state = preflight(ws, run_plan, state, skip=skip, resume=command)
    elif "dvc-remote" not in skip:
        run_plan.remote = graph.remote_check(ws.root)
    if ws.dry:
        report = RunReport(pipeline=p.name, command=command, step="pull")
        report.branch, report.commit_before = state.branch, state.commit
        if detach and not adopted:
            report.id, report.log = "RUN-ID", str(Store(ws.root).log_path("RUN-ID"))
            if slurm:
                submit(ws, report, dict(p.slurm or {}))
            else:
                launch(ws, report)
            console.result(True, "dry run: nothing was started")
            return None
        return _execute(ws, run_plan, report, chain, state, None, skip=skip)
    store = Store(ws.root)
    if adopted:
        report = store.adopt(adopted, p.name)
    else:
        report = RunReport(
            pipeline=p.name,
            command=command,
            step="pull",
            detached=detach,
            slack=dict(p.slack) if p.slack else None,
        )
        report.branch, report.commit_before = state.branch, state.commit
        if not detach:
            report.pid = os.getpid()
            # The process group is the run's to kill only when it leads it (a
            # shell's job); started by a script, the group is the script's.
            report.pgid = os.getpgrp() if os.getpgrp() == report.pid else None
            report.process_started = process_identity(report.pid)
        lost = store.claim(report)
        launched = announced_start = False
        try:
            tell_lost(c, ws, lost)
            if "slack" not in skip:
                refusals = notifiers.announce(chain, report)
                if refusals:
                    raise DvcInvokeError(
                        f"the run's first message was refused ({'; '.join(refusals)}):"
                        " fix the set-up (SLACK_BOT_TOKEN / SLACK_CHANNEL for Slack),"
                        " or run with --skip slack",
                        step="guards",
                    )
                store.save(report)
                announced_start = True
            if slurm:
                job = submit(ws, report, dict(p.slurm or {}))
                launched = True
                report = store.set_job(report, job)
            elif detach:
                launch(ws, report)
                launched = True
        except BaseException as exc:
            # Refused, interrupted or cut off (a closed pipe) before the run
            # started: no record may claim the workspace for a run that never was.
            if not launched:
                store.forget(report)
                if isinstance(exc, DvcInvokeError) and announced_start:
                    report.end("failed", reason=exc.reason, resume=command)
                    report.step = exc.step
                    notifiers.deliver(chain, report)  # its start was announced
            raise
        if detach:
            with contextlib.suppress(BrokenPipeError):
                if slurm:
                    console.result(
                        True, f"{p.name} is submitted to SLURM as job {report.job}, run {report.id}"
                    )
                else:
                    console.result(
                        True, f"{p.name} is running in the background as run {report.id}"
                    )
                console.info(f"log:     {report.log}")
                console.info(
                    f"follow:  {tasknames.command('repro.logs')} --run {report.id} --follow"
                )
                console.info(f"cancel:  {tasknames.command('repro.cancel')} --run {report.id}")
                tell_started(report.id or "", report.job)
            return report
    announced = not adopted and "slack" not in skip
    with marked(report):
        try:
            report = _execute(
                ws, run_plan, report, chain, state, store, announced=announced, skip=skip
            )
        except DvcInvokeError:
            prune(ws, store)
            raise
        prune(ws, store)
        return report


def prune(ws: Workspace, store: Store) -> None:
    """At the end of a run: the old runs' records, logs and plots beyond what
    ``dvc_invoke.keep`` keeps are removed (never the run's end)."""
    from dvc_invoke.config.settings import settings

    try:
        store.prune(settings(ws.c).keep)
    except (DvcInvokeError, OSError) as exc:
        console.warn(f"old runs were not pruned: {getattr(exc, 'reason', exc)}")


def _execute(
    ws: Workspace,
    run_plan: Plan,
    report: RunReport,
    chain: list[notifiers.Notifier],
    start: GitState,
    store: Store | None,
    *,
    announced: bool = False,
    skip: tuple[str, ...] = (),
) -> RunReport:
    """Pull, repro, publish and notify, keeping the run's record and log.

    With ``upstream``, the stale upstream pipelines run first, each a run
    of its own; the pipeline is then read again, from the commit they left.
    """

    def save(step: str | None = None) -> None:
        report.step = step if step is not None else report.step
        if store is not None:
            store.keep(report)  # its failure never hides the run's own

    p, command = run_plan.pipeline, report.command
    keep_log = store is not None and report.log is not None and not report.detached
    log = open(report.log, "a") if keep_log and report.log else None  # noqa: SIM115
    with contextlib.ExitStack() as stack, Interrupts() as interrupts:
        if log is not None:
            stack.enter_context(log)
            stack.enter_context(console.log_to(log))
        ws.interrupts, ws.log = interrupts, log
        try:
            if not announced and store is not None:
                notifiers.deliver(chain, report)
            if run_plan.upstream and run_plan.graph.stale_upstream:
                save("upstream")
                ups = ", ".join(u.dvcfile for u in run_plan.graph.stale_upstream)
                console.step(p.name, "upstream", ups)
                if rebuild_upstream(ws, run_plan, skip, run) and not ws.dry:
                    remote = run_plan.remote
                    run_plan = plan(ws, p, force=run_plan.force, upstream=True)
                    run_plan.remote = remote
                    start = ws.git_state(step="upstream")
            save("pull")
            console.step(p.name, "pull")
            pull(ws, run_plan, resume=command)
            save("repro")
            detail = some(run_plan.graph.stages, 8) + (" (forced)" if run_plan.force else "")
            console.step(p.name, "repro", detail)
            ran = reproduce(ws, run_plan, resume=command)
            changes = measure(ws, run_plan, baseline(ws, start))
            report.metrics = [
                {**c.to_dict(), **({"gated": True} if _gated(p, c.name) else {})}
                for c in changes or []
                if c.changed
            ]
            save("publish")
            console.step(p.name, "publish")
            done = publish(ws, run_plan, expect=start, changes=changes, rerun=command, ran=ran)
        except (DvcInvokeError, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):  # between commands: SLURM's SIGTERM too
                exc = ws.interruption(report.step or "pull", command) or Cancelled(
                    "interrupted (SIGINT)", step=report.step, resume=command
                )
            resume = exc.resume or command
            if isinstance(exc, Cancelled) and report.step == "publish":
                resume = publish_command(p)
            elif isinstance(exc, Cancelled) and report.step == "repro" and not ws.dry:
                resume = _after_interrupted_repro(ws, run_plan, command)
            report.commit_after = ws.head()
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
            notifiers.deliver(chain, report)
            save()
            if isinstance(exc, Cancelled):  # Lost stays Lost, for an upstream run's caller too
                raise type(exc)(exc.reason, step=report.step, resume=resume) from None
            raise exc from None
        finally:
            ws.interrupts, ws.log = None, None
        if store is None:  # a dry run
            console.result(True, f"dry run of {p.name}: nothing was done")
            return report
        report.committed, report.git_pushed = done.committed, done.git_pushed
        report.pushed, report.rewritten = list(done.pushed), list(done.rewritten)
        report.commit_after = done.commit
        if done.committed or not p.commit:  # else nothing changed that plots are drawn from
            # Pictures for whom posts them (Slack's Web API); the names for all.
            draw = any(getattr(n, "posts_pictures", False) for n in chain)
            _plots(ws, run_plan, report, start, draw=draw)
        report.end("succeeded")
        notifiers.deliver(chain, report)
        save(None)
    return report


def _plots(
    ws: Workspace, run_plan: Plan, report: RunReport, start: GitState, *, draw: bool
) -> None:
    """The plots the run changed, drawn for its notifications (never fails the run)."""
    from dvc_invoke.adapters.dvc import plots
    from dvc_invoke.config.settings import settings

    if not settings(ws.c).plots or not start.commit or not report.id:
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
    if not ws.changed_paths(plan.graph.lockfiles):
        return rerun  # no stage got as far as its lock
    try:
        unfinished = graph.stale(ws.root, plan.graph.stages, outputs_here=True)
    except DvcInvokeError:
        return rerun
    return rerun if unfinished else publish_command(plan.pipeline)
