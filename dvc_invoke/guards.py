"""Refuse to run where a run could not be reproduced or published."""

from __future__ import annotations

from invoke import Collection, task

from . import console, flow
from .errors import exits
from .pipelines import resolve
from .workspace import Workspace


@task(
    default=True,
    help={"pipeline": "Also check that this pipeline exists and can publish (branch, upstream)."},
)
@exits
def check(c, pipeline=None):
    """Check the workspace: a git and DVC repository, no uncommitted changes to tracked files."""
    ws = Workspace(c)
    p = resolve(c, ws.root, pipeline) if pipeline is not None else None
    flow.check(ws, p)
    if p is not None:
        flow.plan(ws, p)  # the pipeline reads, and its pull/push targets resolve
    if not ws.dry:
        console.result(True, "guards passed" + (f" for {p.name}" if p else ""))


ns = Collection(check)
