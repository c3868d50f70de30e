"""Where a run happens: this host (`local`), detached from the terminal (`detached`),
a SLURM batch job (`slurm`), a GPU host over SSH (`ssh`).

Each launches the same ``inv`` command line; none imports the flow. Whether a
run is alive, and how it is stopped, is the engine's to judge: SLURM's job
state for a job, the process on this host for the others; a run of another
host sharing the workspace counts as alive until it ends or is marked lost.
"""

from __future__ import annotations

from dvc_invoke.engines import local, slurm
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import Store, elsewhere


def alive(report: RunReport) -> bool:
    """Whether ``report``'s run still runs, as its engine judges it."""
    if report.ended:
        return False
    if report.job:
        return slurm.alive(report)
    if elsewhere(report):
        return True
    return local.alive(report)


def stop(store: Store, report: RunReport, *, timeout: float) -> tuple[RunReport, bool]:
    """Stop ``report``'s run as Ctrl-C would, through its engine; returns the run
    as it ended, and whether it recorded that end itself."""
    if report.job:
        return slurm.stop(store, report, timeout=timeout)
    return local.stop(store, report, timeout=timeout)
