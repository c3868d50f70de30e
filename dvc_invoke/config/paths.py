"""Paths as the project names them: relative to its root, with forward slashes.

Plain string work, nothing imported: defining pipeline tasks (which checks
their ``dvcfile``) costs nothing more.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable

from dvc_invoke.errors import DvcInvokeError


def normalize(raw: str, *, step: str) -> str:
    """A project-relative path with forward slashes; outside the project is an error."""
    text = str(raw).replace(os.sep, "/").strip()
    path = posixpath.normpath(text) if text else ""
    if not path or path.startswith("/") or path == ".." or path.startswith("../"):
        raise DvcInvokeError(f"{step} target '{raw}' is not a path inside the project", step=step)
    return path


def overlaps(path: str, paths: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``paths``, lies inside one, or holds one."""
    return any(path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in paths)
