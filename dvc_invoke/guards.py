"""Refuse to run where a run could not be reproduced or published."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.tasks import task

from dvc_invoke.flags import Task

if TYPE_CHECKING:
    from invoke.context import Context


@task(
    klass=Task,
    default=True,
    iterable=["skip"],
    help={
        "pipeline": "Also check this pipeline: its dvc.yaml and targets, the branch and its"
        " upstream (fetched), the git and DVC remotes.",
        "skip": "Leave out a check on purpose: fetch, git-push or dvc-remote. Repeatable.",
    },
)
def check(c: Context, pipeline: str | None = None, skip: list[str] | None = None) -> None:
    """Check the workspace: a git and DVC repository, no uncommitted changes to tracked files."""
    from dvc_invoke import console, flow
    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.pipelines import resolve

    ws = Workspace(c)
    p = resolve(c, ws.root, pipeline) if pipeline is not None else None
    state = flow.check(ws, p)
    if p is not None:
        run_plan = flow.plan(ws, p)  # the pipeline reads, and its pull/push targets resolve
        # Slack is checked by a run's first message, not here: no message for a check.
        flow.preflight(ws, run_plan, state, skip=(*(skip or ()), "slack"))
    if not ws.dry:
        console.result(True, "guards passed" + (f" for {p.name}" if p else ""))


ns = Collection(check)
