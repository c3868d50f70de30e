"""What one run shares from its start to its end: `RunContext`.

The invoke context and the workspace's shell (with the settings, validated
once), one DVC session for every read of the run, and the git checks begun
early in the background while DVC reads the pipeline: a `Future` the
preflight takes the result of, and that is waited for before the run ends,
so nothing of it prints after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from dvc_invoke.adapters.dvc.session import session
from dvc_invoke.adapters.git import GitState
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.settings import Settings


class RunContext:
    """What one run shares; a context manager around the run."""

    def __init__(self, c: Any):
        self.c = c
        self.ws = Workspace(c)
        # The git checks begun early: the preflight takes their result.
        self.checks: Future[GitState] | None = None
        self._stack = contextlib.ExitStack()

    @property
    def settings(self) -> Settings:
        """The ``dvc_invoke`` settings, as the workspace validated them once."""
        return self.ws.settings

    def __enter__(self) -> RunContext:
        # One DVC Repo for the run's reads; closed at the run's end.
        self._stack.enter_context(session(self.ws.root))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.settle()
        finally:
            self._stack.close()

    def begin(self, check: Callable[[], GitState]) -> None:
        """Begin ``check`` in the background, as `checks`."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvc-invoke-checks")
        self.checks = pool.submit(check)
        pool.shutdown(wait=False)

    def settle(self) -> None:
        """Wait for the checks begun in the background, whatever they found: nothing
        of them prints after the run's end (their error is raised by whoever took
        their result)."""
        if self.checks is not None:
            self.checks.exception()  # waits; returns the error rather than raising it
