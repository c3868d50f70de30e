"""Run pipelines: the whole flow (guards, pull, repro, publish, notify), or its repro alone."""

from __future__ import annotations

from invoke import Collection, task

from . import console, flow
from .errors import DvcInvokeError, exits
from .pipelines import available, resolve
from .workspace import Workspace

_HELP = {
    "pipeline": "The pipeline: a configured name, a pipeline task,"
    " or a folder NAME/ with a dvc.yaml.",
    "force": "Re-run the pipeline's own stages even if nothing changed"
    " (never the pipelines it reads from).",
    "upstream": "Also reproduce the pipelines this one depends on"
    " (their outputs are otherwise pulled, not rebuilt).",
}


def _need(c, pipeline):
    ws = Workspace(c)
    if pipeline is None:
        raise DvcInvokeError(
            "name the pipeline with --pipeline NAME"
            f" (pipelines here: {', '.join(available(c, ws.root)) or 'none'})",
            step="guards",
        )
    return ws, resolve(c, ws.root, pipeline)


@task(default=True, help=_HELP)
@exits
def run(c, pipeline=None, force=False, upstream=False):
    """Run a pipeline's whole flow: guards, pull, repro, commit, dvc push, git push, notify."""
    _need(c, pipeline)
    flow.run(c, pipeline, force=force, upstream=upstream)


@task(help=_HELP)
@exits
def stages(c, pipeline=None, force=False, upstream=False):
    """Reproduce a pipeline's stages only: no guards, pull or publishing."""
    ws, p = _need(c, pipeline)
    run_plan = flow.plan(ws, p, force=force, upstream=upstream)
    console.step(p.name, "repro", ", ".join(run_plan.graph.stages))
    flow.reproduce(ws, run_plan)


ns = Collection(run, stages)
