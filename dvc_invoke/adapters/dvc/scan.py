"""Every output a project's DVC files declare, read quickly.

DVC's own loading of a DVC file (``dvc.dvcfile.load_file``) costs time on a
project of many files; a plain file (no templating, ``foreach`` or
``matrix``, only text paths) is read here with a C YAML parser instead, and
the rest are handed to DVC. ``dvc`` and ``yaml`` are imported on first use only.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from dvc_invoke.adapters.dvc.model import Output, Tracked, address, relative, stage_address


def scan(repo: Any, dvcfile: str | None) -> tuple[Tracked, list[Any]]:
    """Every output the project's DVC files declare, and the stages of ``dvcfile``.

    Walks the project as DVC's index does (``.dvcignore``, git-ignored files
    and folders that are outputs are skipped). ``dvcfile`` is loaded by DVC;
    other files are read with a C YAML parser when they are plain (no
    templating, ``foreach`` or ``matrix``, only text paths), else by DVC.
    """
    from dvc.dvcfile import is_valid_filename, load_file

    root, fs = repo.root_dir, repo.fs
    outputs: list[Output] = []
    own: list[Any] = []
    out_paths: set[str] = set()

    def ignored(path: str) -> bool:
        return bool(repo.scm.is_ignored(path))

    for folder, dirs, files in repo.dvcignore.walk(fs, root, followlinks=False):
        for file in files:
            if not is_valid_filename(file) or ignored(os.path.join(folder, file)):
                continue
            path = os.path.join(folder, file)
            rel = relative(root, path)
            found = None if rel == dvcfile else _quick_outputs(path, rel)
            if found is None:
                stages = list(load_file(repo, path).stages.values())
                if rel == dvcfile:
                    own = stages
                found = [o for s in stages for o in _outputs_of(root, s)]
                out_paths.update(
                    out.fs_path for s in stages for out in s.outs if out.protocol == "local"
                )
            else:
                out_paths.update(os.path.join(root, o.path) for o in found)
            outputs += found
        dirs[:] = [
            d
            for d in dirs
            if os.path.join(folder, d) not in out_paths
            and not ignored(os.path.join(folder, d) + os.sep)
        ]
    return Tracked(outputs), own


_OUT_KEYS = {"dvc.yaml": ("outs", "metrics", "plots"), ".dvc": ("outs",)}
_TEMPLATING = ("${", "foreach", "matrix")


def _quick_outputs(path: str, rel: str) -> list[Output] | None:
    """The outputs a plain DVC file declares, or None: DVC must read it."""
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):  # no libyaml: DVC reads every file
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if any(word in text for word in _TEMPLATING):
            return None
        data = yaml.load(text, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # DVC says what is wrong with it
    if not isinstance(data, dict):
        return None
    folder = posixpath.dirname(rel)
    if rel.endswith(".dvc"):
        entries: Any = {None: data}
        keys = _OUT_KEYS[".dvc"]
    else:
        if "vars" in data:
            return None
        entries = data.get("stages") or {}
        keys = _OUT_KEYS["dvc.yaml"]
    if not isinstance(entries, dict):
        return None
    found = []
    for name, stage in entries.items():
        if not isinstance(stage, dict) or (name is not None and not isinstance(name, str)):
            return None
        wdir = stage.get("wdir", ".")
        if not isinstance(wdir, str):
            return None
        where = address(rel, name)
        for key in keys:
            for entry in stage.get(key) or []:
                out = _quick_output(
                    entry, key, posixpath.join(folder, wdir), where, single=name is None
                )
                if out is None:
                    return None
                if out is not _OUTSIDE:
                    found.append(out)
    return found


_OUTSIDE = Output("", False, "")  # declared, but not a path in this project


def _quick_output(entry: Any, key: str, wdir: str, where: str, *, single: bool) -> Output | None:
    if single:  # a .dvc file's `- path: x` with its hashes and options
        if not isinstance(entry, dict):
            return None
        raw, options = entry.get("path"), entry
    elif isinstance(entry, str):  # `- x`
        raw, options = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:  # `- x: {cache: false}`
        ((raw, options),) = entry.items()
        options = {} if options is None else options
    else:
        return None
    if not isinstance(raw, str) or not raw or not isinstance(options, dict):
        return None
    cache = options.get("cache", True)
    if not isinstance(cache, bool):
        return None
    if "://" in raw or raw.startswith("/") or os.path.isabs(raw):
        return _OUTSIDE  # remote:// and URLs, absolute paths: not in the repository
    path = posixpath.normpath(posixpath.join(wdir, raw))
    if path in (".", "..") or path.startswith("../"):
        return _OUTSIDE  # DVC's is_in_repo: strictly inside the project
    return Output(path, cache, where, key == "metrics", key == "plots")


def _outputs_of(root: Path | str, stage: Any) -> list[Output]:
    where = stage_address(root, stage)
    return [
        Output(
            relative(root, out.fs_path),
            bool(out.use_cache),
            where,
            bool(out.metric),
            bool(out.plot),
        )
        for out in stage.outs
        if out.is_in_repo
    ]
