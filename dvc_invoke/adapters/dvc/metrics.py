"""What a run did to the pipeline's numbers, as DVC compares them.

The comparison is DVC's own (``metrics diff`` and ``params diff`` through
its Python API): the run's workspace against the commit it started from,
every metrics format DVC reads (JSON, YAML, TOML, CSV), nested keys flattened
with dots.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dvc_invoke.runs.metrics import Change


def compare(
    root: Path, rev: str | None, metric_files: list[str], *, unchanged: bool = False
) -> list[Change]:
    """Every metric of ``metric_files`` at ``rev`` and in the workspace, changed or not.

    DVC reads each side where it lives: a file git tracks from git, a cached
    one (dvclive's ``eval/metrics.json`` in a cached ``eval/`` output) from
    the DVC cache (the pull step brings a cached one there, see
    `graph.load`). With ``unchanged`` (the caller knows the workspace holds
    what ``rev`` holds), the workspace is read alone and is both sides.
    """
    if not rev or not metric_files:
        return []
    from dvc_invoke.adapters.dvc.session import opened

    with opened(root) as repo:
        targets = [os.fspath(Path(root) / path) for path in metric_files]
        if unchanged:
            from dvc.utils.diff import diff, format_dict

            # The workspace alone (its key is "" then, "workspace" beside revisions).
            shown: dict[str, Any] = next(iter(repo.metrics.show(targets=targets).values()), {})
            data = shown.get("data", {})
            if "error" not in shown and not any("error" in d for d in data.values()):
                both = format_dict(data)
                return _flatten(diff(both, both, with_unchanged=True), "metric")
        found = repo.metrics.diff(a_rev=rev, b_rev="workspace", all=True, targets=targets)
        _refuse_unreadable(repo, root, rev, (found.get("errors") or {}).get(rev))
    return _flatten(found.get("diff", {}), "metric")


def _was_there(fs: Any, rel: str) -> bool:
    """Whether ``rel`` existed in ``fs`` (a revision), or cannot be told: it lies in
    a folder output there whose listing is itself unreadable."""
    try:
        if fs.exists(rel):
            return True
        parent = os.path.dirname(rel)
        while parent:
            if fs.exists(parent):
                try:
                    fs.ls(parent)
                except Exception:  # noqa: BLE001 - the folder's listing is lost too
                    return True
                return False
            parent = os.path.dirname(parent)
    except Exception:  # noqa: BLE001 - what DVC cannot say, count as there
        return True
    return False


def _refuse_unreadable(repo: Any, root: Path, rev: str, errors: Any) -> None:
    """A metrics file that was there at ``rev`` but cannot be read (its data is
    in neither the cache nor the workspace, say) is no "new metric": without
    its old values no gate can tell better from worse. Raises ValueError."""
    if not errors:
        return
    if not isinstance(errors, Mapping):
        raise ValueError(f"DVC cannot read the metrics at {rev[:7]}: {errors}")
    with repo.switch(rev):  # the project as commit ``rev`` has it, data from the cache
        fs = repo.dvcfs
        for path, error in errors.items():
            rel = os.path.relpath(path, root) if os.path.isabs(path) else path
            if _was_there(fs, rel):
                raise ValueError(f"DVC cannot read {rel} as it was at {rev[:7]} ({error})")


def param_changes(
    old_locks: Mapping[str, str | None], new_locks: Mapping[str, str | None]
) -> list[Change]:
    """The params the run used that differ from those of the run before it.

    Read from the lock files, which record the params each run used: a
    ``params diff`` against the run's first commit would miss the change,
    as it was committed before the run.
    """
    old, new = {}, {}
    for path, text in old_locks.items():
        old.update(_lock_params(path, text))
    for path, text in new_locks.items():
        new.update(_lock_params(path, text))
    return [
        Change(name, old.get(name), new.get(name), "param")
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name) and name in new
    ]


def _lock_params(lock: str, text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    from dvc.utils.serialize import parse_yaml

    try:
        data = parse_yaml(text, lock) or {}
    except Exception:  # noqa: BLE001 - a lock file DVC cannot read has no params to report
        return {}
    folder = os.path.dirname(lock)
    found: dict[str, Any] = {}
    for stage in (data.get("stages") or {}).values():
        for file, values in ((stage or {}).get("params") or {}).items():
            # Relative to the stage's wdir, which the lock file does not say;
            # `wdir: ../..` stages name theirs from the root already.
            if folder and not file.startswith(folder + "/"):
                name = posixpath.normpath(f"{folder}/{file}")  # train/../params.yaml: params.yaml
            else:
                name = file
            for key, value in _flat(values):
                found[f"{name}:{key}"] = value
    return found


def _flat(values: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(values, Mapping):
        items = []
        for key, value in values.items():
            items += _flat(value, f"{prefix}{key}.")
        return items
    return [(prefix[:-1], values)]


def _flatten(diff: Mapping[str, Mapping[str, Mapping[str, Any]]], kind: str) -> list[Change]:
    return [
        Change(f"{path}:{key}", values.get("old"), values.get("new"), kind)
        for path, keys in sorted(diff.items())
        for key, values in sorted(keys.items())
    ]
