"""What a run will do: its stages, what it pulls and pushes, the commands that resume it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from dvc_invoke import tasknames
from dvc_invoke.adapters.dvc import graph
from dvc_invoke.adapters.dvc.model import PipelineGraph, address, collapse
from dvc_invoke.adapters.dvc.remote import RemoteCheck
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.pipelines import Pipeline
from dvc_invoke.errors import DvcInvokeError


@dataclass
class Plan:
    """One pipeline run, resolved: what to pull, reproduce and push."""

    pipeline: Pipeline
    graph: PipelineGraph
    pull: list[str]
    push: list[str]
    force: bool = False
    upstream: bool = False
    # The DVC remote as preflight found it: a local one must still be that folder.
    remote: RemoteCheck | None = None


def plan(
    ws: Workspace, p: Pipeline, *, force: bool | None = None, upstream: bool | None = None
) -> Plan:
    """Read the pipeline from DVC and resolve its pull and push targets.

    Without ``pull``/``push`` options these are the pipeline's inputs and
    outputs; given ones are expanded to what DVC tracks, and one that
    matches nothing is an error now rather than after a two-hour run. The
    push also names the cached inputs: a published lock file references
    them, so the DVC remote must hold them (``dvc push`` skips what it has).
    ``force``/``upstream`` left None take the pipeline's own setting.
    """
    force = p.force if force is None else force
    upstream = p.upstream if upstream is None else upstream
    g = graph.load(ws.root, p.dvcfile, stages=p.stages, force=force)
    pull_targets = g.inputs if p.pull is None else g.resolve(list(p.pull), step="pull")
    push_targets = g.push_targets if p.push is None else g.resolve(list(p.push), step="dvc push")
    if p.push != ():  # push=[] pushes nothing
        push_targets = collapse(push_targets + g.push_inputs)
    return Plan(p, g, pull_targets, push_targets, force, upstream)


def publish_command(p: Pipeline) -> str:
    return f"{tasknames.command('publish')} --pipeline {shlex.quote(p.name)}"


def need_dvcfile(ws: Workspace, p: Pipeline) -> None:
    if not (ws.root / p.dvcfile).is_file():
        raise DvcInvokeError(f"pipeline '{p.name}': {p.dvcfile} does not exist", step="guards")


def repro_targets(plan: Plan) -> list[str]:
    """The fewest targets that mean the pipeline's own stages, in order.

    DVC collects each target on its own (a 2,000-stage pipeline named stage
    by stage waits minutes before its first stage). With ``--single-item``,
    a dvc.yaml target is its stages in the file's order: when those are the
    pipeline's own stages in dependency order, the file says the same.
    """
    g, dvcfile = plan.graph, plan.pipeline.dvcfile
    if dvcfile and g.file_stages and g.stages == [address(dvcfile, n) for n in g.file_stages]:
        return [dvcfile]
    return list(g.stages)


def default_command(name: str, *, force: bool, upstream: bool) -> str:
    command = f"{tasknames.command('repro')} --pipeline {shlex.quote(name)}"
    command += " --force" if force else ""
    command += " --upstream" if upstream else ""
    return command
