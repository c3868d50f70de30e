"""Move a pipeline's data between the workspace and the DVC remote."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.tasks import task

from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flags import Task

if TYPE_CHECKING:
    from invoke.context import Context

    from dvc_invoke.adapters.shell import Workspace

_HELP = {
    "pipeline": "The pipeline whose {what} to {verb}: its name, its folder, its DVC file"
    " or a stage address, as for `inv repro --pipeline`.",
    "target": "A path to {verb} instead: a tracked file or folder, or a folder holding"
    " outputs of other pipelines. Repeatable.",
}


def _help(what: str, verb: str) -> dict[str, str]:
    return {k: v.format(what=what, verb=verb) for k, v in _HELP.items()}


def _targets(
    c: Any, pipeline: str | None, target: list[str] | None, step: str
) -> tuple[Workspace, list[str]]:
    """The workspace, and what to transfer: ``target`` paths, else the pipeline's plan."""
    from dvc_invoke import flow
    from dvc_invoke.adapters.dvc import graph
    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.pipelines import resolve

    if pipeline is None and not target:
        raise DvcInvokeError(f"name a --pipeline or a --target to {step}", step=step)
    ws = Workspace(c)
    if target:
        return ws, graph.load(ws.root, None).resolve(list(target), step=step)
    assert pipeline is not None  # one of the two, checked above
    run_plan = flow.plan(ws, resolve(c, ws.root, pipeline))
    return ws, run_plan.pull if step == "pull" else run_plan.push


def _transfer(ws: Any, verb: str, targets: list[str]) -> None:
    from dvc_invoke import console
    from dvc_invoke.adapters.shell import quote_all

    if not targets:
        console.info(f"nothing to {verb}")
        return
    ws.act(f"{ws.dvc} {verb} {quote_all(targets)}", step=f"dvc {verb}", network=True)


@task(klass=Task, default=True, iterable=["target"], help=_help("inputs", "pull"))
def pull(c: Context, pipeline: str | None = None, target: list[str] | None = None) -> None:
    """Pull what a pipeline's run would (or the given targets) from the DVC remote.

    For a pipeline: its inputs, then the outputs of its up-to-date stages
    that are missing here, as its run's pull step does, so that `dvc repro`
    and `dvc status` find it up to date afterwards.
    """
    from dvc_invoke import flow, tasknames
    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.pipelines import resolve

    if pipeline is not None and not target:
        ws = Workspace(c)
        again = f"{tasknames.command('data.pull')} --pipeline {shlex.quote(pipeline)}"
        flow.pull(ws, flow.plan(ws, resolve(c, ws.root, pipeline)), resume=again)
        return
    ws, targets = _targets(c, pipeline, target, "pull")
    _transfer(ws, "pull", targets)


@task(klass=Task, iterable=["target"], help=_help("outputs", "push"))
def push(c: Context, pipeline: str | None = None, target: list[str] | None = None) -> None:
    """Push a pipeline's outputs (or the given targets) to the DVC remote, in one `dvc push`.

    The remote is checked first, as a run's is: a local one that is not there
    (a share not mounted) is refused, never made and quietly filled.
    """
    from dvc_invoke.adapters.dvc.remote import remote_check
    from dvc_invoke.config.settings import is_dry

    ws, targets = _targets(c, pipeline, target, "push")
    problem = remote_check(ws.root).problem if targets and not is_dry(c) else None
    if problem:
        raise DvcInvokeError(f"{problem}; nothing was pushed", step="dvc push")
    _transfer(ws, "push", targets)


ns = Collection(pull, push)
