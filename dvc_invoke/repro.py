"""Run pipelines (the whole flow, or its repro alone) and watch or stop their runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.tasks import task

from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flags import Task
from dvc_invoke.helptext import HELP as _HELP

if TYPE_CHECKING:
    from invoke.context import Context

    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.pipelines import Pipeline


def _need(c: Context, pipeline: str | None) -> tuple[Workspace, Pipeline]:
    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.pipelines import available, resolve

    ws = Workspace(c)
    if pipeline is None:
        raise DvcInvokeError(
            "name the pipeline with --pipeline NAME"
            f" (pipelines here: {', '.join(available(c, ws.root)) or 'none'})",
            step="guards",
        )
    return ws, resolve(c, ws.root, pipeline)


@task(klass=Task, default=True, iterable=["skip"], help=_HELP)
def run(
    c: Context,
    pipeline: str | None = None,
    force: bool = False,
    upstream: bool = False,
    detach: bool = False,
    skip: list[str] | None = None,
    slurm: bool = False,
    host: str | None = None,
) -> None:
    """Run a pipeline's whole flow: guards, pull, repro, commit, dvc push, git push, notify."""
    from dvc_invoke import flow

    _, p = _need(c, pipeline)
    # Without the flag, the pipeline's own setting (a pipeline may force itself).
    flow.run(
        c,
        pipeline or p.name,
        force=force or None,
        upstream=upstream or None,
        detach=detach,
        skip=skip or (),
        slurm=slurm,
        host=host,
    )


@task(
    klass=Task,
    help={
        k: v for k, v in _HELP.items() if k not in ("detach", "skip", "upstream", "slurm", "host")
    },
)
def stages(c: Context, pipeline: str | None = None, force: bool = False) -> None:
    """Reproduce a pipeline's own stages only: no guards, pull or publishing."""
    from dvc_invoke import console, flow

    ws, p = _need(c, pipeline)
    run_plan = flow.plan(ws, p, force=force or None)
    flow.warn_stale_upstream(ws, run_plan)
    console.step(p.name, "repro", ", ".join(run_plan.graph.stages))
    flow.reproduce(ws, run_plan)
    if not ws.dry:
        console.info(f"to commit and push what changed: {flow.publish_command(p)}")


def _on_host(c: Context, host: str, task_path: str, args: list[str], tty: bool = False) -> None:
    from dvc_invoke.engines.ssh import on_host

    on_host(c, host, task_path, args, tty=tty and sys.stdin.isatty())


@task(
    klass=Task,
    name="status",
    help={
        "pipeline": "Only this pipeline's runs.",
        "limit": "How many runs to show (0: all).",
        "host": "A GPU host (dvc_invoke.hosts): act on its runs, over SSH.",
    },
)
def status(
    c: Context, pipeline: str | None = None, limit: int = 10, host: str | None = None
) -> None:
    """List runs, newest first: running, requeued, succeeded, failed, cancelled, or lost."""
    if host:
        args = (["--pipeline", pipeline] if pipeline else []) + ["--limit", str(int(limit))]
        return _on_host(c, host, "repro.status", args)
    from dvc_invoke import console
    from dvc_invoke.flow.watch import STATUS_COLUMNS, status_row, store_of

    # The runs the store found, read anew: with thousands, only those shown are read.
    store = store_of(c)
    reports = store.newest(max(int(limit), 0), pipeline, rescan=False)
    if not reports and pipeline:
        # None by that name: a pipeline's other name (a folder, its DVC file), or a typo.
        from dvc_invoke.config.pipelines import resolve

        named = resolve(c, store.root, pipeline).name
        if named != pipeline:
            reports = store.newest(max(int(limit), 0), named, rescan=False)
    from dvc_invoke.flow.spread import pending

    spreads = pending(store.root)  # sweeps started on hosts from here, not told yet
    if not reports and not spreads:
        console.info("no runs yet" + (f" of {pipeline}" if pipeline else ""))
        return
    if reports:
        console.table(STATUS_COLUMNS, [status_row(r) for r in reports])
    for line in spreads:
        console.info(line)


@task(
    klass=Task,
    help={
        "run": "The run's id (default: the latest run).",
        "follow": "Keep printing the log as it grows, until the run ends.",
        "exp": "A sweep's experiment: its own log (DVC's).",
        "host": "A GPU host (dvc_invoke.hosts): act on its runs, over SSH.",
    },
)
def logs(
    c: Context,
    run: str | None = None,
    follow: bool = False,
    exp: str | None = None,
    host: str | None = None,
) -> None:
    """Print a run's log (or a sweep's experiment's); with --follow, until it ends."""
    if host:
        args = (["--run", run] if run else []) + (["--follow"] if follow else [])
        args += ["--exp", exp] if exp else []
        return _on_host(c, host, "repro.logs", args, tty=follow)
    from dvc_invoke.flow.watch import print_log, store_of

    print_log(c, store_of(c), run, follow=follow, experiment=exp)


@task(
    klass=Task,
    help={
        "run": "The run's id (default: the run holding the workspace).",
        "timeout": "Seconds to wait for the run to stop cleanly before killing it.",
        "host-gone": "The run's host (sharing this workspace) is gone for good:"
        " mark its run lost without stopping anything.",
        "host": "A GPU host (dvc_invoke.hosts): act on its runs, over SSH.",
    },
)
def cancel(
    c: Context,
    run: str | None = None,
    timeout: float = 30,
    host_gone: bool = False,
    host: str | None = None,
) -> None:
    """Stop a run and everything it started; it is recorded and announced as cancelled.

    The run's process gets SIGTERM and passes SIGINT on to dvc and the stage's
    command, so DVC stops as on Ctrl-C: locks released, the workspace as after
    an interrupted repro. Only if that takes longer than --timeout is the run's
    whole process group killed.
    """
    if host:
        args = (["--run", run] if run else []) + ["--timeout", f"{float(timeout):g}"]
        return _on_host(c, host, "repro.cancel", args + (["--host-gone"] if host_gone else []))
    from dvc_invoke import console
    from dvc_invoke.flow import watch

    said = watch.cancel(c, watch.store_of(c), run, timeout=float(timeout), host_gone=host_gone)
    console.result(True, said)


@task(
    klass=Task,
    help={
        "pipeline": _HELP["pipeline"],
        "host": "A GPU host (dvc_invoke.hosts): discard in its checkout, over SSH.",
    },
)
def discard(c: Context, pipeline: str | None = None, host: str | None = None) -> None:
    """Put a pipeline's lock files, outputs and metrics back as HEAD has them.

    For a failed or refused run that is not worth publishing: what HEAD has
    is restored (`git restore`, `dvc checkout --force`), what the run made
    that HEAD does not have is removed (a first lock file, its outputs, DVC's
    .gitignore lines for them), and each is listed; nothing else is touched.
    """
    from dvc_invoke import console, flow

    if host:
        return _on_host(c, host, "repro.discard", ["--pipeline", pipeline] if pipeline else [])
    ws, p = _need(c, pipeline)
    done = flow.discard(ws, p)
    if not ws.dry:
        for line in done:
            console.info(line)
        console.result(True, f"{p.name}: back to HEAD" + ("" if done else " (nothing to discard)"))


@task(
    klass=Task,
    help={"dry": "List what would be removed, and remove nothing (as inv --dry does)."},
)
def prune(c: Context, dry: bool = False) -> None:
    """Remove the records, logs and plots of old runs, as each run does at its end.

    Kept: the newest dvc_invoke.keep.runs runs, none older than
    dvc_invoke.keep.days days; a run still running is never removed.
    """
    from dvc_invoke import console
    from dvc_invoke.config.project import find_root
    from dvc_invoke.config.settings import is_dry, settings
    from dvc_invoke.runs.store import Store

    keep = settings(c).keep
    dry = dry or is_dry(c)
    removed = Store(find_root()).prune(keep, dry=dry)
    for path in removed:
        console.info(path)
    rules = [f"the newest {keep.runs} runs" if keep.runs else "every run"]
    rules += [f"none older than {keep.days:g} days"] if keep.days else []
    gone = sum(1 for path in removed if path.endswith(".json"))
    verb = "would remove" if dry else "removed"
    console.result(True, f"{verb} {gone} old run(s); kept: {', '.join(rules)}")


@task(klass=Task, name="pipelines")
def pipelines_(c: Context) -> None:
    """List the pipelines there are, by the names --pipeline takes."""
    from dvc_invoke import console
    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.pipelines import available, resolve

    ws = Workspace(c)
    rows = []
    for name in available(c, ws.root):
        p = resolve(c, ws.root, name)
        own = ", ".join(p.stages) if p.stages else "all"
        rows.append([name, p.dvcfile, own, "" if p.name == name else f"= {p.name}"])
    if not rows:
        console.info("no pipelines here: no dvc.yaml, and none configured")
        return
    console.table(["pipeline", "dvc file", "stages", ""], rows)


ns = Collection(run, stages, status, logs, cancel, discard, prune, pipelines_)
