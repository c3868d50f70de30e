"""The pipelines a run reads from: a warning when they are stale, or, with
``--upstream``, each one's whole flow first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dvc_invoke import console
from dvc_invoke.adapters.dvc.model import Upstream
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.pipelines import Pipeline, resolve, upstream_pipeline
from dvc_invoke.errors import Cancelled, DvcInvokeError
from dvc_invoke.flow.plan import Plan, default_command


def warn_stale_upstream(ws: Workspace, plan: Plan, command: str | None = None) -> None:
    """One line naming the upstream pipelines a run reads stale results of; a
    refusal, before anything runs, when one never ran (nothing to pull)."""
    ups = [u for u in plan.graph.stale_upstream if u.stale]
    if plan.upstream or not ups:
        return
    never = [u for u in ups if u.never_run]
    if never:
        p = plan.pipeline
        names = [_upstream_name(ws, u.dvcfile) for u in never]
        what = "; ".join(
            f"{n} (stage{'s' if len(u.never_run) > 1 else ''} {', '.join(u.never_run)})"
            for n, u in zip(names, never, strict=True)
        )
        first = " then ".join(default_command(n, force=False, upstream=False) for n in names)
        command = command or default_command(p.name, force=plan.force, upstream=False)
        whole = command if "--upstream" in command.split() else f"{command} --upstream"
        raise DvcInvokeError(
            f"upstream never run: {what}: its outputs were never produced, so there is"
            f" nothing to pull; run `{whole}`, or `{first}` first",
            step="pull",
            resume=whole,
        )
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


def rebuild_upstream(
    ws: Workspace, plan: Plan, skip: tuple[str, ...], run: Callable[..., Any]
) -> list[str]:
    """With ``upstream``: each stale upstream pipeline's whole flow, dependencies
    first (its stages, gates, metrics, commit and push), as a run of its own.

    A pipeline's lock is never published next to stale metrics of its own:
    a gate refusing an upstream model stops the run there. Returns the
    names of the pipelines that ran. ``run`` is the flow that runs each
    (`flow.run`), handed in so that the arrows go one way.
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
            # Its own run told the team; its reason is said here, once.
            raise DvcInvokeError(
                f"upstream pipeline {p.name} failed at {exc.step or 'its run'}: {exc.reason}",
                step="upstream",
                resume=exc.resume,
            ) from None
        ran.append(p.name)
    return ran
