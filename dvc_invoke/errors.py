"""Expected failures, and the boundary that turns them into invoke's ``Exit``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.exceptions import Exit

F = TypeVar("F", bound=Callable[..., Any])


class DvcInvokeError(Exception):
    """A failure the user can act on: one line, the step, how to resume.

    ``step`` names where the run stopped (``guards``, ``pull``, ``repro``,
    ``commit``, ``dvc push``, ``git push``); ``resume`` is the command that
    continues from there once the cause is fixed.
    """

    def __init__(
        self,
        reason: str,
        *,
        step: str | None = None,
        resume: str | None = None,
        log: str | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.step = step
        self.resume = resume
        self.log = log  # what the failing command printed, for the team's notification

    code = 1

    def what(self) -> str:
        return f"{self.step} failed: {self.reason}" if self.step else self.reason

    def line(self) -> str:
        text = self.what()
        if self.resume:
            text = f"{text}; then run: {self.resume}"
        return f"dvc-invoke: {text}"


class Cancelled(DvcInvokeError):
    """The run was interrupted (Ctrl-C, SIGTERM, ``inv repro.cancel``)."""

    code = 130

    def what(self) -> str:
        return f"cancelled during {self.step or 'the run'}: {self.reason}"


def dvc_error_reason(exc: BaseException) -> str:
    """DVC's own message for ``exc``, folded to one line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def exits(func: F) -> F:
    """Let a task body end with one clear line instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DvcInvokeError as exc:
            raise Exit(exc.line(), code=exc.code) from None

    return wrapper  # type: ignore[return-value]
