"""The project's default DVC remote: whether a run can push to it and pull
from it, and whether it is still the folder it was when the run started.
``dvc`` is imported on first use only.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvc_invoke.adapters.dvc.session import opened
from dvc_invoke.errors import dvc_error_reason


@dataclass(frozen=True)
class RemoteCheck:
    """The default DVC remote as a run found it at its start."""

    problem: str | None = None  # what is wrong with it, or None
    name: str | None = None
    path: str | None = None  # a local remote's folder
    identity: tuple[int, int] | None = None  # its (device, inode)

    def moved(self) -> str | None:
        """What happened to a local remote's folder since, or None.

        A network share unmounted mid-run leaves an empty mountpoint (another
        device); a folder removed and re-created is another inode. `dvc push`
        would quietly fill either, and the team's data would be on this disk.
        """
        if self.path is None or self.identity is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return f"DVC remote '{self.name}' ({self.path}) is gone since the run started"
        if (st.st_dev, st.st_ino) != self.identity:
            return (
                f"DVC remote '{self.name}' ({self.path}) is not the folder it was when the run"
                " started (unmounted, or removed and re-created)"
            )
        return None


def remote_check(root: Path) -> RemoteCheck:
    """The project's default DVC remote: what is wrong with it, and for a
    local one, which folder it is (see `RemoteCheck.moved`).

    A local remote must be an existing folder: a network share that is not
    mounted would otherwise silently receive the team's data in an empty
    local folder. Other remotes must answer (their folder may not exist yet).
    """
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException

    try:
        with opened(root) as repo:
            try:
                remote = repo.cloud.get_remote()
            except NoRemoteError:
                return RemoteCheck(
                    "no DVC remote is configured: add one with `dvc remote add -d NAME URL`"
                )
            except ImportError as exc:  # DVC's plugin for this kind of remote
                return RemoteCheck(_missing_plugin(repo.config) or dvc_error_reason(exc))
            name, fs, path = remote.name, remote.fs, remote.path
            if fs.protocol == "local":
                if os.path.exists(path) and not os.path.isdir(path):
                    return RemoteCheck(f"DVC remote '{name}' ({path}) is not a folder")
                if not os.path.isdir(path):
                    # Not made for it: an unmounted share must not quietly get the data.
                    return RemoteCheck(
                        f"DVC remote '{name}' ({path}) does not exist: mount it, or if the"
                        f" path is right and new, create it (mkdir -p {shlex.quote(path)})"
                    )
                st = os.stat(path)
                return RemoteCheck(None, name, path, (st.st_dev, st.st_ino))
            try:
                fs.exists(path)
            except Exception as exc:  # noqa: BLE001 - every backend has its own errors
                return RemoteCheck(f"DVC remote '{name}' is not reachable: {dvc_error_reason(exc)}")
    except DvcException as exc:
        return RemoteCheck(f"DVC cannot read its remote configuration: {dvc_error_reason(exc)}")
    return RemoteCheck(None, name)


def missing_plugin(root: Path) -> str | None:
    """What to install for the project's default DVC remote, when DVC's plugin
    for its kind (``dvc-s3`` for ``s3://``, ``dvc-ssh``...) is not installed:
    known from its configuration alone, before anything runs (else the first
    pull or push fails halfway through the run)."""
    from dvc.exceptions import DvcException

    try:
        with opened(root) as repo:
            return _missing_plugin(repo.config)
    except DvcException:
        return None  # a configuration DVC cannot read: the remote check says so


def _missing_plugin(config: Any) -> str | None:
    import importlib.util

    from dvc_objects.fs import known_implementations

    name = config.get("core", {}).get("remote")
    url = str(config.get("remote", {}).get(name, {}).get("url", "")) if name else ""
    scheme = url.partition("://")[0] if "://" in url else ""
    entry = known_implementations.get(scheme, {})
    module = str(entry.get("class", "")).partition(".")[0]
    if "err" not in entry or not module or importlib.util.find_spec(module) is not None:
        return None
    package = module.replace("_", "-")
    return (
        f"DVC remote '{name}' is a {scheme}:// remote, and DVC's {package} plugin for it"
        f" is not installed here: `pip install {package}`"
    )


def lacking(ws: Any, targets: list[str], *, step: str, resume: str | None = None) -> dict[str, str]:
    """What the DVC remote lacks of ``targets`` (all the project's outputs when
    empty), as ``dvc status --cloud --json`` says: ``{path: "new" | "missing"}``
    ("new": in this cache only; "missing": in neither). ``dvc push`` exits 0 when
    the cache lacks an object, so its word is not enough. Under ``--dry``: shown,
    and nothing lacks."""
    import json

    from dvc_invoke.errors import DvcInvokeError

    words = " ".join(shlex.quote(t) for t in targets)
    cmd = f"{ws.dvc} status --cloud --json {words}".rstrip()
    res = ws.act(cmd, step=step, resume=resume, network=True, capture=True)
    if ws.dry:
        return {}
    try:
        status = json.loads((res.stdout or "").strip() or "{}")
    except ValueError:
        status = None
    if not isinstance(status, dict):
        raise DvcInvokeError(
            f"cannot read what `dvc status --cloud` said: {(res.stdout or '').strip()[:200]}",
            step=step,
            resume=resume,
        )
    return {p: st for p, st in status.items() if st in ("new", "missing")}
