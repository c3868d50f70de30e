"""Move a pipeline's data between the workspace and the DVC remote."""

from __future__ import annotations

from typing import Any

from invoke import Collection, task

from . import console, flow, graph
from .errors import DvcInvokeError, exits
from .pipelines import Pipeline, resolve
from .workspace import Workspace, quote_all

_HELP = {
    "pipeline": "The pipeline whose {what} to {verb}"
    " (a configured name, a pipeline task, or a folder with a dvc.yaml).",
    "target": "A path to {verb} instead: a tracked file or folder, or a folder holding"
    " outputs of other pipelines. Repeatable.",
}


def _help(what: str, verb: str) -> dict[str, str]:
    return {k: v.format(what=what, verb=verb) for k, v in _HELP.items()}


def _load(c: Any, pipeline: str | None, target: list[str] | None, verb: str):
    if pipeline is None and not target:
        raise DvcInvokeError(f"name a --pipeline or a --target to {verb}", step=verb)
    ws = Workspace(c)
    p: Pipeline | None = resolve(c, ws.root, pipeline) if pipeline is not None else None
    g = graph.load(ws.root, p.dvcfile if p else None)
    return ws, p, g


@task(default=True, iterable=["target"], help=_help("inputs", "pull"))
@exits
def pull(c, pipeline=None, target=None):
    """Pull a pipeline's inputs from the DVC remote, in one `dvc pull`."""
    ws, p, g = _load(c, pipeline, target, "pull")
    if target or p is None:
        targets = g.resolve(list(target), step="pull")
        if targets:
            ws.act(f"{ws.dvc} pull {quote_all(targets)}", step="pull")
    else:
        flow.pull(ws, p, g)


@task(iterable=["target"], help=_help("outputs", "push"))
@exits
def push(c, pipeline=None, target=None):
    """Push a pipeline's outputs to the DVC remote, in one `dvc push`."""
    ws, p, g = _load(c, pipeline, target, "push")
    if target or p is None:
        targets = g.resolve(list(target), step="dvc push")
    elif p.push is not None:
        targets = g.resolve(list(p.push), step="dvc push")
    else:
        targets = g.push_targets
    if not targets:
        console.info("nothing to push")
        return
    ws.act(f"{ws.dvc} push {quote_all(targets)}", step="dvc push")


ns = Collection(pull, push)
