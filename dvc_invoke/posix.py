"""The platforms dvc-invoke runs on: POSIX systems, said in one line anywhere else.

Runs lock their records with ``fcntl``, detach with ``setsid`` and stop their
commands by process group: Windows has none of these, and without this check
its first run would end on an ImportError about ``fcntl``.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

MESSAGE = (
    "dvc-invoke runs on POSIX systems (Linux, macOS): it needs fcntl, setsid and process "
    "groups, which Windows does not have; on Windows, run it under WSL."
)


class NotPosix(ImportError):
    """Raised when the package is imported on a system that is not POSIX."""

    def __init__(self) -> None:
        super().__init__(MESSAGE)


def supported() -> bool:
    """Whether this system is one dvc-invoke runs on."""
    return os.name == "posix"


def require() -> None:
    """Raise `NotPosix` off POSIX; uncaught, it prints its one line, not a traceback."""
    if supported():
        return
    previous = sys.excepthook

    def one_line(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if isinstance(error, NotPosix):
            print(error, file=sys.stderr)
        else:
            previous(kind, error, tb)

    # NOTE: an ImportError, so code that probes for the package can catch it; the hook
    # only shortens what `inv`, `dvc-invoke` or `python -c` print when nobody does.
    sys.excepthook = one_line
    raise NotPosix()
