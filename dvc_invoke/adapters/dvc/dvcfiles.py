"""Files git tracks that DVC and dvclive rewrite during a run, besides the lock files.

- ``dvc.yaml``: dvclive's ``Live`` (its default ``dvcyaml="dvc.yaml"``) writes
  the file again at the end of a stage, wrapped by another YAML writer, and adds
  or re-orders the top-level ``metrics``/``plots``/``params``/``artifacts``
  entries it manages. A rewrite that changes nothing DVC reads is no change (the
  committed text is put back); one whose changes are only such entries, for paths
  the run's stages write, is the pipeline's own and committed with the lock; any
  other change is not the run's to publish.
- ``.gitignore``: DVC adds a ``/name`` line beside each cached output. Those
  lines are the run's; any other line changed in such a file is someone's edit.

What is judged here is text against text (HEAD's and the workspace's); the
callers decide what to refuse, restore or commit.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dvc_invoke.adapters.dvc.model import PipelineGraph
    from dvc_invoke.adapters.shell import Workspace

# The top-level dvc.yaml entries dvclive writes (DVC reads them as declarations,
# never as stage definitions: no lock depends on them).
MANAGED = ("metrics", "plots", "params", "artifacts")

DVCFILE_NAMES = ("dvc.yaml", "dvc.yml")


def is_dvcfile(path: str) -> bool:
    return posixpath.basename(path) in DVCFILE_NAMES


def is_gitignore(path: str) -> bool:
    return posixpath.basename(path) == ".gitignore"


@dataclass
class Rewrite:
    """How a ``dvc.yaml`` in the workspace differs from HEAD's."""

    path: str
    kind: str  # "same": nothing DVC reads; "own": dvclive's entries for the run; "other"
    entries: list[str] = field(default_factory=list)  # managed entries that changed
    unowned: list[str] = field(default_factory=list)  # their paths no stage of the run writes
    stages: bool = False  # its stages (or vars, wdir, anything else DVC reads) changed


def _load(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _entries(key: str, value: Any) -> dict[str, str]:
    """A managed key's entries by what they declare (path or id) -> their settings
    (as canonical JSON), whatever their order in the file."""
    found: dict[str, str] = {}
    items: Iterable[Any]
    if isinstance(value, dict):
        items = [{k: v} for k, v in value.items()]
    elif isinstance(value, list):
        items = value
    else:
        return {"": json.dumps(value, sort_keys=True, default=str)} if value is not None else {}
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            ((name, spec),) = item.items()
            found[str(name)] = json.dumps(spec, sort_keys=True, default=str)
        elif isinstance(item, str):
            found[item] = ""
        else:
            found[json.dumps(item, sort_keys=True, default=str)] = ""
    return found


def _paths_of(key: str, name: str, spec_json: str) -> list[str]:
    """The files an entry declares, relative to its dvc.yaml's folder."""
    spec = json.loads(spec_json) if spec_json else None
    paths = []
    if key == "artifacts":
        if isinstance(spec, dict) and isinstance(spec.get("path"), str):
            paths.append(spec["path"])
    else:
        paths.append(name)
        if key == "plots" and isinstance(spec, dict):
            for axis in ("x", "y"):
                if isinstance(spec.get(axis), dict):
                    paths += [str(f) for f in spec[axis]]
    return [p for p in paths if p and not p.startswith("{")]


def classify(
    path: str, old_text: str | None, new_text: str | None, owned: Callable[[str], bool]
) -> Rewrite:
    """How the ``dvc.yaml`` at ``path`` (relative to the DVC root) changed from
    ``old_text`` (HEAD's) to ``new_text``; ``owned`` says of a root-relative path
    whether a stage of the run writes it."""
    old, new = _load(old_text), _load(new_text)
    if old is None or new is None:
        return Rewrite(path, "other", stages=True)
    rest = set(old) | set(new)
    stages = any(old.get(k) != new.get(k) for k in rest - set(MANAGED))
    folder = posixpath.dirname(path)
    changed: list[str] = []
    unowned: list[str] = []
    for key in MANAGED:
        before, after = _entries(key, old.get(key)), _entries(key, new.get(key))
        for name in sorted(set(before) | set(after)):
            if before.get(name) == after.get(name):
                continue
            changed.append(f"{key}: {name}")
            spec = after.get(name, before.get(name, ""))
            for declared in _paths_of(key, name, spec):
                rel = posixpath.normpath(posixpath.join(folder, declared))
                if not owned(rel):
                    unowned.append(rel)
    if stages:
        kind = "other"
    elif not changed:
        kind = "same"
    else:
        kind = "own" if not unowned else "other"
    return Rewrite(path, kind, changed, list(dict.fromkeys(unowned)), stages)


def foreign_lines(old_text: str | None, new_text: str | None, dvc_lines: set[str]) -> list[str]:
    """The lines added to or removed from a ``.gitignore`` that are not DVC's own
    (``dvc_lines``: the ``/name`` of each cached output beside it)."""
    old = [line.strip() for line in (old_text or "").splitlines()]
    new = [line.strip() for line in (new_text or "").splitlines()]
    added = [line for line in new if line and line not in old]
    removed = [line for line in old if line and line not in new]
    return [line for line in added + removed if line not in dvc_lines]


def dvc_lines(folder: str, cached_outputs: Iterable[str]) -> set[str]:
    """The lines DVC writes in ``folder``'s .gitignore for ``cached_outputs``."""
    return {"/" + posixpath.basename(o) for o in cached_outputs if posixpath.dirname(o) == folder}


def dvclive_hint(rewrite: Rewrite) -> str:
    """What to tell of a dvc.yaml change that is not the run's to publish."""
    if rewrite.stages:
        return (
            f"{rewrite.path} changed during the run in what DVC reads (its stages):"
            " edited by hand: commit or restore it"
        )
    return (
        f"{rewrite.path} gained entries for files no stage of the run writes"
        f" ({', '.join(rewrite.unowned[:3])}): dvclive's `Live(dvcyaml=...)` writes them:"
        " declare its folder as the stage's output, or pass `dvcyaml=False`"
    )


@dataclass
class Survey:
    """What DVC and dvclive changed among a workspace's changed tracked files."""

    restore: list[str] = field(
        default_factory=list
    )  # dvc.yaml rewritten, nothing DVC reads changed
    own: list[str] = field(default_factory=list)  # the run's: dvclive's entries, DVC's ignore lines
    rewrites: dict[str, Rewrite] = field(default_factory=dict)  # every dvc.yaml judged
    foreign: dict[str, list[str]] = field(default_factory=dict)  # .gitignore -> lines not DVC's


def survey(ws: Workspace, g: PipelineGraph, changed: Iterable[str]) -> Survey:
    """Judge the changed tracked files (relative to the DVC root) that DVC or
    dvclive may have written for the run of ``g``: its DVC files anywhere in the
    project, and the ``.gitignore`` files beside its cached outputs."""

    found = Survey()
    git = ws.git
    outputs = [o.path for o in g.outputs]
    ignores = {f for f in g.git_paths() if is_gitignore(f)}
    cached = [o.path for o in g.tracked.by_path.values() if o.cached]

    def owned(path: str) -> bool:
        return any(path == o or path.startswith(o + "/") for o in outputs)

    for path in changed:
        if is_dvcfile(path):
            text = (ws.root / path).read_text() if (ws.root / path).is_file() else None
            rewrite = classify(path, git.show("HEAD", path), text, owned)
            found.rewrites[path] = rewrite
            if rewrite.kind == "same":
                found.restore.append(path)
            elif rewrite.kind == "own":
                found.own.append(path)
        elif path in ignores:
            file = ws.root / path
            text = file.read_text() if file.is_file() else None
            lines = dvc_lines(posixpath.dirname(path), cached)
            foreign = foreign_lines(git.show("HEAD", path), text, lines)
            if foreign:
                found.foreign[path] = foreign
            else:
                found.own.append(path)
    return found
