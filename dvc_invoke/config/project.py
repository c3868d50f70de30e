"""The project: its DVC root (at or above the current folder), and its ``.env``.

The ``.env`` is loaded by explicit path from the project root:
``find_dotenv()`` searches from the calling file's folder, which for an
installed package is site-packages, never the project: so the path is
given. Real environment variables win over the file. The file is loaded
into the process environment, so that what it holds for DVC (remote
credentials, say) reaches the dvc commands too.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from dvc_invoke.errors import DvcInvokeError


def load(root: Path | None) -> dict[str, str]:
    """Load ``root/.env`` (if there is one) into ``os.environ``; return what it set."""
    if root is None:
        return {}
    path = Path(root) / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        with open(path, encoding="utf-8") as stream:
            for binding in parse_stream(stream):
                if binding.error:
                    raise DvcInvokeError(
                        f"{path} line {binding.original.line}: cannot be parsed"
                        " (expected NAME=value)",
                        step="guards",
                    )
    except (OSError, UnicodeDecodeError) as exc:
        raise DvcInvokeError(f"cannot read {path}: {exc}", step="guards") from None
    loaded = {}
    for key, value in dotenv_values(path).items():
        if value is not None and key not in os.environ:
            os.environ[key] = loaded[key] = value
    return loaded


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The DVC root at or above ``start`` (the current directory)."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    below = dvc_projects_below(here)
    if below:
        where = ", ".join(f"{p}/" for p in below[:3])
        if len(below) > 3:
            where += f" (+{len(below) - 3} more)"
        raise DvcInvokeError(
            f"not a DVC repository: no .dvc folder in {here} or above; DVC projects below it:"
            f" {where} (run inv there: cd {shlex.quote(below[0])})",
            step="guards",
        )
    raise DvcInvokeError(
        f"not a DVC repository: no .dvc folder in {here} or above (run `dvc init` first)",
        step="guards",
    )


def dvc_projects_below(here: Path, depth: int = 2) -> list[str]:
    """The DVC projects (``dvc init --subdir``) in the folders below ``here``,
    ``depth`` levels down at most, hidden folders left out; relative paths."""
    found: list[str] = []
    level = [here]
    for _ in range(depth):
        deeper = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                if os.path.isdir(os.path.join(entry.path, ".dvc")):
                    found.append(Path(entry.path).relative_to(here).as_posix())
                else:
                    deeper.append(Path(entry.path))
        level = deeper
    return found
