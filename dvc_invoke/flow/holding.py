"""One run holds a workspace at a time, as two ``dvc repro`` in one workspace collide.

A run claims the workspace when it starts; another is refused while the
holder is alive (as its engine judges it), and a holder found dead is marked
lost and handed back to be told.
"""

from __future__ import annotations

from dvc_invoke import tasknames
from dvc_invoke.engines import alive
from dvc_invoke.engines.local import this_process
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow.lost import mark_lost
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import Store, elsewhere


def find_lost(store: Store) -> list[RunReport]:
    """Mark the runs whose process is gone as lost; return them (to be told)."""
    found = []
    with store.lock():
        for report in store.running():
            if not alive(report):
                mark_lost(report, store.root)
                store.save(report)
                found.append(report)
    return found


def free(store: Store) -> list[RunReport]:
    """Check that no run holds the workspace (for `inv publish`); return runs found lost."""
    with store.lock():
        return _refuse_if_held(store)


def claim(store: Store, report: RunReport) -> list[RunReport]:
    """Record ``report`` as the run holding the workspace.

    Refused while another run is alive; runs whose process died are marked
    lost and returned, so the caller can tell the team. A reservation
    (`Store.reserve`) is the claiming run's own: it ends here.
    """
    with store.lock():
        found = _refuse_if_held(store)
        store.register(report)
    return found


def _refuse_if_held(store: Store) -> list[RunReport]:
    """Under the lock: refuse while a run is alive; mark dead ones lost and return them."""
    found = []
    for other in store.running():
        if this_process(other):
            continue  # this very process: a run whose upstream runs first
        if not alive(other):  # one look: for a SLURM run, a question to SLURM
            mark_lost(other, store.root)
            store.save(other)
            found.append(other)
            continue
        raise DvcInvokeError(_held_by(other), step="guards")
    return found


def _held_by(other: RunReport) -> str:
    run_id = other.id or ""
    follow, cancel = tasknames.follow(run_id), tasknames.cancel(run_id)
    if other.job:
        return (
            f"run {run_id} ({other.pipeline}) holds this workspace as SLURM job"
            f" {other.job}: follow it with `{follow}`, or stop it with `{cancel}`"
        )
    if elsewhere(other):
        return (
            f"run {run_id} ({other.pipeline}) of host {other.host} holds this"
            f" workspace: follow or cancel it there (`{cancel}`),"
            f" or, if {other.host} is gone for good, `{tasknames.cancel(run_id, gone=True)}`"
        )
    return (
        f"run {run_id} ({other.pipeline}) is still running in this workspace:"
        f" follow it with `{follow}`, or stop it with `{cancel}`"
    )
