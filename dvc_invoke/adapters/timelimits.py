"""Time limits on the commands that run someone else's program and can hang:
``git commit`` (its hooks), ``git push`` (a pre-push hook, the remote) and
``dvc push`` (a remote that stalls), set under ``dvc_invoke.timeouts``.

The limit is invoke's own command timeout (`CommandTimedOut`). Two things are
added to it: invoke kills only the process it started (SIGKILL), which leaves
a hook's own processes running, holding the command's output open (invoke then
waits for it forever) and, for a ``git commit`` killed that way, its
``index.lock`` behind; here the whole tree is sent SIGTERM first (git removes
its lock files on it), SIGKILL after a grace. And a ``dvc`` command that would
run in this process (`inprocess`) runs as a process under a limit, as the
workspace runs one whenever invoke's timeouts are set: only a process can be
stopped.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

from invoke.exceptions import CommandTimedOut

from dvc_invoke.config.settings import is_dry, settings
from dvc_invoke.errors import DvcInvokeError

# The limited steps, by setting: the command, what may hang it, what to fix.
LIMITS = {
    "commit": ("git commit", "a hook that hangs?", "fix the hook"),
    "git_push": ("git push", "a pre-push hook, or the remote, that hangs?", "fix the hook"),
    "dvc_push": ("dvc push", "a DVC remote that stalls?", "check the remote"),
}
# Seconds between SIGTERM and SIGKILL of a command that ran out of time.
GRACE = 5.0


def seconds(c: Any, key: str) -> float | None:
    """The limit set for ``key`` (a name of `LIMITS`), or None."""
    limit: float | None = getattr(settings(c).timeouts, key)
    return limit


@contextlib.contextmanager
def limited(
    c: Any, key: str, *, step: str, resume: str | None = None, kept: str = ""
) -> Iterator[None]:
    """Commands ``c`` runs in this block are stopped after the limit set for
    ``key``; one that runs out of time is one line naming the setting (``kept``:
    what is kept, "nothing was committed")."""
    limit = seconds(c, key)
    if limit is None or is_dry(c):
        yield
        return
    config = c.config
    saved = config.timeouts.command, config.runners.local
    config.timeouts.command = limit
    config.runners.local = _stopping_tree(saved[1])
    try:
        yield
    except CommandTimedOut:
        raise TimedOut(key, limit, step=step, resume=resume, kept=kept) from None
    finally:
        config.timeouts.command, config.runners.local = saved


class TimedOut(DvcInvokeError):
    """A command stopped at its time limit: ``key`` names the setting, ``limit`` its seconds."""

    def __init__(self, key: str, limit: float, *, step: str, resume: str | None, kept: str = ""):
        what, why, fix = LIMITS[key]
        said = f"; {kept}" if kept else ""
        super().__init__(
            f"{what} did not finish within {limit:g} s ({why}){said};"
            f" raise dvc_invoke.timeouts.{key} or {fix}",
            step=step,
            resume=resume,
        )
        self.key, self.limit = key, limit


@functools.cache
def _stopping_tree(base: type) -> type:
    """``base`` (invoke's runner class), killing the whole tree of its command."""

    class StoppingTree(base):  # type: ignore[misc]
        _stopped = False

        def kill(self) -> None:
            self._stopped = True  # before the command ends, as invoke's timer would say
            pid = _pid_of(self)
            if pid is not None:
                stop_tree(pid)
            super().kill()

        @property
        def timed_out(self) -> bool:
            return self._stopped or bool(super().timed_out)

    return StoppingTree


def _pid_of(runner: Any) -> int | None:
    """The process a runner started: ``get_pid`` in invoke 3, its attributes in 2."""
    get = getattr(runner, "get_pid", None)
    if get is not None:
        pid: int | None = get()
        return pid
    if getattr(runner, "using_pty", False):
        return getattr(runner, "pid", None)
    return getattr(getattr(runner, "process", None), "pid", None)


def stop_tree(pid: int, grace: float = GRACE) -> None:
    """SIGTERM to process ``pid`` and everything under it, SIGKILL after ``grace``.

    ``pid`` is a child of this process: it is left for its runner to reap."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(map(_running, procs)):
        time.sleep(0.05)
    for proc in filter(_running, procs):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _running(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
