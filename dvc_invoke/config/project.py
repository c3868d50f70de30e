"""The project's ``.env``, loaded by explicit path from the project root.

``find_dotenv()`` searches from the calling file's folder, which for an
installed package is site-packages, never the project: so the path is
given. Real environment variables win over the file. The file is loaded
into the process environment, so that what it holds for DVC (remote
credentials, say) reaches the dvc commands too.
"""

from __future__ import annotations

import os
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
