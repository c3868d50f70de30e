"""The DVC commands of a run: ``dvc pull`` of its inputs, ``dvc repro`` of its own stages."""

from __future__ import annotations

import errno
import os

from dvc_invoke import console
from dvc_invoke.adapters.dvc.model import by_stage
from dvc_invoke.adapters.dvc.staleness import any_changed, not_in_place
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.config.paths import overlaps
from dvc_invoke.errors import Cancelled, DvcInvokeError
from dvc_invoke.flow.plan import Plan, repro_targets
from dvc_invoke.runs.record import some


def pull(ws: Workspace, plan: Plan, *, resume: str | None = None) -> list[str]:
    """``dvc pull`` the run's inputs and the outputs of its own stages that are
    up to date but missing from the workspace, in one call.

    Without those outputs, a fresh clone would run every stage again, as
    ``dvc repro`` sees them missing. They are pulled ``--allow-missing``:
    one that the remote lacks is simply built again by ``dvc repro``; an
    input it lacks stops the run. Inputs DVC finds in the workspace as
    recorded are not pulled: there is nothing to fetch or check out.
    """
    restore = [r for r in plan.graph.restore if not overlaps(r, plan.pull)]
    # Metrics the pull checks out anyway are not fetched apart.
    fetch = [f for f in plan.graph.fetch if not overlaps(f, plan.pull + restore)]
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
    if not plan.pull and not restore:
        if not fetch:
            console.info("nothing to pull")
        return []
    inputs, tracked = plan.pull, plan.graph.tracked
    if inputs and not not_in_place(ws.root, tracked, inputs):
        # What `dvc pull` would find: nothing to fetch, nothing to check out.
        more = "" if restore else "; nothing to pull"
        console.info(f"inputs in the workspace as recorded: {some(inputs)}{more}")
        inputs = []
    if inputs and not restore:
        cmd = f"{ws.dvc} pull {quote_all(by_stage(tracked, inputs))}"
        _pull(ws, cmd, resume)
    elif restore:
        # One pull (one look at the remote): the outputs to restore may be
        # missing there, the inputs may not, which is checked after.
        targets = by_stage(tracked, inputs + restore)
        cmd = f"{ws.dvc} pull --allow-missing {quote_all(targets)}"
        _pull(ws, cmd, resume)
        missing = not_in_place(ws.root, tracked, inputs) if inputs else []
        if missing and not ws.dry:
            raise DvcInvokeError(
                f"the run's inputs are neither on the DVC remote nor in the cache: {some(missing)}"
                " (push them from where they were made)",
                step="pull",
                resume=resume,
            )
    return plan.pull + restore


def _pull(ws: Workspace, cmd: str, resume: str | None) -> None:
    """``dvc pull``; DVC's refusal to overwrite data changed here that it never
    saved says which files, and the two ways on (running again would not)."""
    try:
        ws.act(cmd, step="pull", resume=resume, network=True)
    except DvcInvokeError as exc:
        if "without confirmation" not in exc.reason:
            raise
        changed = _unsaved(ws, exc.log or "")
        if not changed:
            raise
        files = quote_all(changed)
        exc.reason = (
            f"data in the workspace was changed and never saved by DVC: {some(changed)};"
            " the pull would overwrite it, so nothing was pulled"
        )
        exc.resume = (
            f"keep it: dvc add {files} and commit the .dvc file; or drop it:"
            f" dvc checkout --force {files}" + (f"; then {resume}" if resume else "")
        )
        raise


def _unsaved(ws: Workspace, log: str) -> list[str]:
    """The files DVC lists after its "without confirmation" line, from the root."""
    lines = log.splitlines()
    at = next((i for i, ln in enumerate(lines) if "without confirmation" in ln), None)
    found = []
    for line in lines[at + 1 :] if at is not None else []:
        path = line.strip()
        if not path or not os.path.isabs(path):
            break
        found.append(os.path.relpath(path, ws.root))
    return found


def reproduce(ws: Workspace, plan: Plan, *, resume: str | None = None) -> bool:
    """Reproduce the pipeline's own stages; forcing never reaches upstream pipelines.

    ``dvc repro --force metrics/dvc.yaml`` would re-run every stage the
    metrics depend on, model training included. The pipeline's own stages
    are given with ``--single-item``, dependencies first (DVC runs them in
    the order given). Upstream pipelines, with ``upstream``, run before as
    whole runs of their own (`rebuild_upstream`).

    When DVC's own check (``Stage.changed``, what ``dvc repro`` asks each
    stage) finds every stage up to date, there is nothing to run and no
    ``dvc repro`` to start. Returns whether a ``dvc repro`` ran (or, under
    ``--dry``, would run).
    """
    if not plan.force:  # a read: a dry run shows what the run would do
        try:
            changed = any_changed(ws.root, plan.graph.stages)
        except DvcInvokeError:
            changed = True
        if not changed:
            console.info(f"up to date, as DVC checks: {some(plan.graph.stages)}; nothing to run")
            return False
    flag = "--force " if plan.force else ""
    cmd = f"{ws.dvc} repro --single-item {flag}{quote_all(repro_targets(plan))}"
    try:
        ws.act(cmd, step="repro", resume=resume, hints=False, in_process=False)
    except DvcInvokeError as exc:
        # DVC says the stage's command failed; the stage said why (a full disk).
        full = os.strerror(errno.ENOSPC)
        if full in (exc.log or "") and full not in exc.reason:
            exc.reason = f"{exc.reason}: {full}"
        raise
    return True
