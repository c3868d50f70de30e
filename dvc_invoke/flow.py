"""The ritual around ``dvc repro``: `run` orchestrates the steps.

guards and preflight (`checks`), the plan (`planning`), pull, repro,
publish (`publishing`: gates, commit, ``dvc push``, ``git push``), notify,
and the run lifecycle (`runs`: launch, stop, lost). Everything that can fail fast is checked before
the run starts; after that the first failure stops the run with one line
that names the step and the command that resumes. Each step is importable
from here for a flow of one's own.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import Any

from . import commands, console, graph, notifiers, runs

# The steps, each in its own module; importable from here for flows of one's own.
from .checks import check, preflight
from .errors import Cancelled, DvcInvokeError, Lost
from .gitops import Git
from .graph import Upstream
from .interrupts import Interrupts
from .paths import overlaps
from .pipelines import Pipeline, resolve, upstream_pipeline
from .planning import (
    Plan,
    default_command,
    need_dvcfile,
    plan,
    publish_command,
    repro_targets,
)
from .publishing import Published, measure, publish
from .report import RunReport, short
from .runs import launch, tell_lost
from .workspace import GitState, Workspace, quote_all

__all__ = [
    "Plan",
    "Published",
    "check",
    "default_command",
    "discard",
    "finish",
    "launch",
    "measure",
    "need_dvcfile",
    "plan",
    "preflight",
    "publish",
    "publish_command",
    "pull",
    "rebuild_upstream",
    "repro_targets",
    "reproduce",
    "run",
    "tell_lost",
    "unpublished_run",
    "warn_stale_upstream",
]


def pull(ws: Workspace, plan: Plan, *, resume: str | None = None) -> list[str]:
    """``dvc pull`` the run's inputs, all in one call; then the outputs of its
    own stages that are up to date but missing from the workspace.

    Without those, a fresh clone would run every stage again, as ``dvc
    repro`` sees its outputs missing. They are pulled ``--allow-missing``:
    one that the remote lacks is simply built again by ``dvc repro``.
    """
    fetch = [f for f in plan.graph.fetch if not overlaps(f, plan.pull)]
    if fetch:
        # Into the cache only: the workspace keeps what is there; the old
        # metrics are read from the cache when they are compared.
        cmd = f"{ws.dvc} fetch {quote_all(fetch)}"
        try:
            ws.act(cmd, step="pull", resume=resume, network=True)
        except Cancelled:
            raise
        except DvcInvokeError as exc:
            console.warn(f"the metrics as last published are not on the remote: {exc.reason}")
    if not plan.pull and not plan.graph.restore:
        if not fetch:
            console.info("nothing to pull")
        return []
    if plan.pull:
        ws.act(f"{ws.dvc} pull {quote_all(plan.pull)}", step="pull", resume=resume, network=True)
    restore = [r for r in plan.graph.restore if not overlaps(r, plan.pull)]
    if restore:
        cmd = f"{ws.dvc} pull --allow-missing {quote_all(restore)}"
        ws.act(cmd, step="pull", resume=resume, network=True)
    return plan.pull + restore


def reproduce(ws: Workspace, plan: Plan, *, resume: str | None = None) -> None:
    """Reproduce the pipeline's own stages; forcing never reaches upstream pipelines.

    ``dvc repro --force metrics/dvc.yaml`` would re-run every stage the
    metrics depend on, model training included. The pipeline's own stages
    are given with ``--single-item``, dependencies first (DVC runs them in
    the order given). Upstream pipelines, with ``upstream``, run before as
    whole runs of their own (`rebuild_upstream`).
    """
    flag = "--force " if plan.force else ""
    cmd = f"{ws.dvc} repro --single-item {flag}{quote_all(repro_targets(plan))}"
    ws.act(cmd, step="repro", resume=resume, hints=False)


def warn_stale_upstream(ws: Workspace, plan: Plan) -> None:
    """One line naming the upstream pipelines a run reads stale results of."""
    ups = [u for u in plan.graph.stale_upstream if u.stale]
    if plan.upstream or not ups:
        return
    what = "; ".join(f"{_upstream_name(ws, u.dvcfile)} ({', '.join(u.stale)})" for u in ups)
    console.warn(
        f"upstream is stale: {what}; this run reads its last published results"
        " (--upstream runs it first)"
    )


def _upstream_name(ws: Workspace, dvcfile: str) -> str:
    try:
        return resolve(ws.c, ws.root, dvcfile).name
    except DvcInvokeError:
        return dvcfile


def upstream_pipelines(ws: Workspace, plan: Plan) -> list[tuple[Pipeline, Upstream]]:
    """The pipelines ``--upstream`` runs first, each with what makes it stale.

    One that does not commit (``commit: false``) is refused here, before any
    stage runs: its new lock file, left uncommitted, would stop this run's
    publishing after both had run."""
    found = [
        (
            upstream_pipeline(ws.c, ws.root, up.dvcfile, up.stages, own=plan.pipeline),
            up,
        )
        for up in plan.graph.stale_upstream
    ]
    for p, _ in found:
        if not p.commit:
            raise DvcInvokeError(
                f"--upstream: pipeline {p.name} must run first but does not commit"
                f" (commit: false), so this run could not publish after it: run"
                f" {default_command(p.name, force=False, upstream=False)} and commit its"
                " lock file first, or leave out --upstream",
                step="guards",
            )
    return found


def rebuild_upstream(ws: Workspace, plan: Plan, skip: tuple[str, ...]) -> list[str]:
    """With ``upstream``: each stale upstream pipeline's whole flow, dependencies
    first (its stages, gates, metrics, commit and push), as a run of its own.

    A pipeline's lock is never published next to stale metrics of its own:
    a gate refusing an upstream model stops the run there. Returns the
    names of the pipelines that ran.
    """
    ran = []
    for p, up in upstream_pipelines(ws, plan):
        why = ", ".join(up.stale) or "what it reads from runs first"
        console.info(f"upstream {p.name} must run first: {why}")
        try:
            run(ws.c, p.name, force=False, upstream=False, skip=skip)
        except Cancelled:
            raise
        except DvcInvokeError as exc:
            # Its own run told the whole story, on the console and to the team.
            raise DvcInvokeError(
                f"upstream pipeline {p.name} failed at {exc.step or 'its run'} (its run said why)",
                step="upstream",
                resume=exc.resume,
            ) from None
        ran.append(p.name)
    return ran


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
    With ``host``, on a GPU host over SSH (see `hosts.start`): nothing runs here.
    """
    command = command or default_command(name, force=bool(force), upstream=bool(upstream))
    if host:
        from . import hosts

        task_args = shlex.split(command)[1:]
        for left_out in skip or ():
            task_args += ["--skip", left_out]
        hosts.start(c, name, host, task_args, slurm=slurm)
        return None
    ws = Workspace(c)
    with graph.session(ws.root):  # one DVC Repo for the run's reads
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
    adopted = os.environ.pop(runs.ENV_RUN, None)
    skip = tuple(skip or ())
    state = ws.git_state()  # not a git repository: say so before anything else
    need_dvcfile(ws, p)
    run_plan = plan(ws, p, force=force, upstream=upstream)
    state = check(ws, p, resume=command, own=run_plan.graph.git_paths(), state=state)
    if not adopted:
        warn_stale_upstream(ws, run_plan)
        if run_plan.upstream:
            upstream_pipelines(ws, run_plan)  # whom it would run: refused now, if anyone
    # A dry run tells nobody: it shows on the console what the run would do.
    chain: list[notifiers.Notifier] = [notifiers.ConsoleNotifier()]
    if not ws.dry:
        chain = notifiers.notifiers(c, ws.root, slack=p.slack)
    if not adopted:
        state = preflight(ws, run_plan, state, skip=skip, resume=command)
    elif "dvc-remote" not in skip:
        run_plan.remote = graph.remote_check(ws.root)
    if ws.dry:
        report = RunReport(pipeline=p.name, command=command, step="pull")
        report.branch, report.commit_before = state.branch, state.commit
        if detach and not adopted:
            report.id, report.log = "RUN-ID", str(runs.Store(ws.root).log_path("RUN-ID"))
            if slurm:
                runs.submit(ws, report, dict(p.slurm or {}))
            else:
                launch(ws, report)
            console.result(True, "dry run: nothing was started")
            return None
        return _execute(ws, run_plan, report, chain, state, None, skip=skip)
    store = runs.Store(ws.root)
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
            report.process_started = runs.process_identity(report.pid)
        lost = store.claim(report)
        launched = announced_start = False
        try:
            tell_lost(c, ws, lost)
            if "slack" not in skip:
                refusals = notifiers.announce(chain, report)
                if refusals:
                    raise DvcInvokeError(
                        f"Slack refused the run's first message ({'; '.join(refusals)}):"
                        " fix SLACK_BOT_TOKEN / SLACK_CHANNEL, or run with --skip slack",
                        step="guards",
                    )
                store.save(report)
                announced_start = True
            if slurm:
                job = runs.submit(ws, report, dict(p.slurm or {}))
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
                    f"follow:  {commands.command('repro.logs')} --run {report.id} --follow"
                )
                console.info(f"cancel:  {commands.command('repro.cancel')} --run {report.id}")
            return report
    announced = not adopted and "slack" not in skip
    with runs.marked(report):
        return _execute(ws, run_plan, report, chain, state, store, announced=announced, skip=skip)


def _execute(
    ws: Workspace,
    run_plan: Plan,
    report: RunReport,
    chain: list[notifiers.Notifier],
    start: GitState,
    store: runs.Store | None,
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
            store.save(report)

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
                if rebuild_upstream(ws, run_plan, skip) and not ws.dry:
                    remote = run_plan.remote
                    run_plan = plan(ws, p, force=run_plan.force, upstream=True)
                    run_plan.remote = remote
                    start = ws.git_state(step="upstream")
            save("pull")
            console.step(p.name, "pull")
            pull(ws, run_plan, resume=command)
            save("repro")
            detail = ", ".join(run_plan.graph.stages) + (" (forced)" if run_plan.force else "")
            console.step(p.name, "repro", detail)
            reproduce(ws, run_plan, resume=command)
            changes = measure(ws, run_plan, start.commit)
            report.metrics = [
                {**c.to_dict(), **({"gated": True} if _gated(p, c.name) else {})}
                for c in changes or []
                if c.changed
            ]
            save("publish")
            console.step(p.name, "publish")
            done = publish(ws, run_plan, expect=start, changes=changes, rerun=command)
        except (DvcInvokeError, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):
                exc = Cancelled("interrupted (SIGINT)", step=report.step, resume=command)
            resume = exc.resume or command
            if isinstance(exc, Cancelled) and report.step == "publish":
                resume = publish_command(p)
            elif isinstance(exc, Cancelled) and report.step == "repro" and not ws.dry:
                resume = _after_interrupted_repro(ws, run_plan, command)
            report.commit_after = ws.head()
            if log is not None:
                log.flush()
            tail = runs.read_tail(report.log) or exc.log
            status = "cancelled" if isinstance(exc, Cancelled) else "failed"
            status = "lost" if isinstance(exc, Lost) else status
            report.step = exc.step or report.step
            report.to_commit = exc.to_commit
            report.end(status, reason=exc.reason, resume=resume, log_tail=tail)
            notifiers.deliver(chain, report)
            save()
            if isinstance(exc, Cancelled):
                raise Cancelled(exc.reason, step=report.step, resume=resume) from None
            raise exc from None
        finally:
            ws.interrupts, ws.log = None, None
        if store is None:  # a dry run
            console.result(True, f"dry run of {p.name}: nothing was done")
            return report
        report.committed, report.git_pushed = done.committed, done.git_pushed
        report.pushed = list(done.pushed)
        report.commit_after = done.commit
        report.end("succeeded")
        notifiers.deliver(chain, report)
        save(None)
    return report


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
            waiting = report.status in ("failed", "cancelled")
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
