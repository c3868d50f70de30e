"""Runs on this host: whether a run's process still runs, and stopping it and what it started.

Every process a run starts carries the run's id in its environment
(`ENV_MARK`, inherited by dvc, the stage's command, git and hooks), so what a
run left running is found in any process group or session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import (
    ADOPTION_GRACE,
    ENV_MARK,
    Store,
    elsewhere,
    ended_or_cancelled,
    process_identity,
)


def alive(report: RunReport) -> bool:
    """Whether the process recorded for ``report``, a run of this host, is still
    the one running it (not another process that took its pid since)."""
    if report.pid is None:
        return time.time() - report.started_at < ADOPTION_GRACE
    started = process_identity(report.pid)
    if started is None:
        return False
    return report.process_started is None or abs(started - report.process_started) < 1.0


def own_group(*, detached: bool) -> int | None:
    """The process group that is this run's to kill, if any. A foreground run's
    own when it leads it (a shell's job; started by a script, the group is the
    script's); a detached run's, when `setsid` made it a session of its own
    (without setsid, the group is the launcher's)."""
    group = os.getpgrp()
    leads = os.getsid(0) == group if detached else group == os.getpid()
    return group if leads else None


def this_process(report: RunReport) -> bool:
    """Whether ``report`` is a run of this very process (not one whose pid it reuses)."""
    if report.pid != os.getpid() or elsewhere(report):
        return False
    started = process_identity(report.pid)
    return report.process_started is None or (
        started is not None and abs(started - report.process_started) < 1.0
    )


def stop(store: Store, report: RunReport, *, timeout: float) -> tuple[RunReport, bool]:
    """Stop a run of this host and everything it started, as Ctrl-C would.

    Its process gets SIGTERM and passes SIGINT on to dvc and the stage's
    command, so DVC stops cleanly (locks released, the workspace as after
    an interrupted repro) and the run records itself cancelled. Only after
    ``timeout`` seconds is its process group killed, its leftovers stopped
    and its end (cancelled) written here. Returns the run as it ended, and
    whether it recorded that end itself.
    """
    deadline = time.time() + ADOPTION_GRACE
    while report.pid is None and time.time() < deadline:  # still starting
        time.sleep(0.2)
        report = store.load(report.id)
    pid = report.pid
    if pid is not None and alive(report):
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline:
            report = store.load(report.id)
            if report.ended:
                return report, True
            time.sleep(0.2)
        if alive(report):  # not another process that took the pid meanwhile
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if report.pgid and report.pgid != os.getpgrp():
                    os.killpg(report.pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
    stop_leftovers(report)  # what it started in other process groups
    for nested in store.running():  # upstream runs it ran in its own process
        if nested.pid == pid and nested.id != report.id:
            stop_leftovers(nested)
    return ended_or_cancelled(store, report)


@contextlib.contextmanager
def marked(report: RunReport) -> Iterator[None]:
    """Mark every process started in this block as ``report``'s (see `ENV_MARK`)."""
    before = os.environ.get(ENV_MARK)
    os.environ[ENV_MARK] = report.id or ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_MARK, None)
        else:
            os.environ[ENV_MARK] = before


def leftovers(report: RunReport) -> list[Any]:
    """The processes of this host that ``report``'s run started and that still run."""
    import psutil

    if not report.id or elsewhere(report):
        return []
    me = psutil.Process()
    spare = {me.pid, me.ppid()}
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in spare:
            continue
        try:
            if proc.environ().get(ENV_MARK) == report.id:
                found.append(proc)
        except (psutil.Error, OSError):
            continue  # gone, or another user's: not ours
    return found


def stop_leftovers(report: RunReport, timeout: float = 10.0) -> None:
    """Stop what a lost run left running (dvc, the stage's command, git, a hook),
    in any process group, so that nothing goes on changing the workspace or
    holding DVC's lock for a run nobody will publish: SIGTERM, then SIGKILL."""
    import psutil

    procs = leftovers(report)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs(procs, timeout=timeout)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
