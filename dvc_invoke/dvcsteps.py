"""The DVC commands of a run: ``dvc pull`` of its inputs, ``dvc repro`` of its own stages."""

from __future__ import annotations

from . import console, graph
from .errors import Cancelled, DvcInvokeError
from .paths import overlaps
from .planning import Plan, repro_targets
from .report import some
from .workspace import Workspace, quote_all


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
    if plan.pull and (ws.dry or graph.not_in_place(ws.root, plan.graph.tracked, plan.pull)):
        ws.act(f"{ws.dvc} pull {quote_all(plan.pull)}", step="pull", resume=resume, network=True)
    elif plan.pull:
        # What `dvc pull` would find: nothing to fetch, nothing to check out.
        console.info(f"in the workspace as recorded: {some(plan.pull)}; nothing to pull")
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

    When DVC's own check (``Stage.changed``, what ``dvc repro`` asks each
    stage) finds every stage up to date, there is nothing to run and no
    ``dvc repro`` to start.
    """
    if not plan.force and not ws.dry:
        try:
            changed = graph.changed_stages(ws.root, plan.graph.stages)
        except DvcInvokeError:
            changed = None
        if changed == []:
            console.info(f"up to date, as DVC checks: {some(plan.graph.stages)}; nothing to run")
            return
    flag = "--force " if plan.force else ""
    cmd = f"{ws.dvc} repro --single-item {flag}{quote_all(repro_targets(plan))}"
    ws.act(cmd, step="repro", resume=resume, hints=False, in_process=False)
