"""What a run did to the pipeline's numbers, and gates that refuse a worse model.

The comparison is DVC's own (``metrics diff`` and ``params diff`` through
its Python API): the run's workspace against the commit it started from,
every metrics format DVC reads (JSON, YAML, TOML, CSV), nested keys flattened
with dots. A gate names a metric (``"scores.json:accuracy"``, or just
``"accuracy"``), the direction that is better (``max`` or ``min``) and a
tolerance; a run whose metric got worse than that fails before publishing.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvc_invoke.errors import DvcInvokeError

MAX_ROWS = 20


@dataclass(frozen=True)
class Gate:
    metric: str  # "path:key" (path matched by its end) or "key"
    direction: str  # "max" or "min": which way is better
    tolerance: float = 0.0

    def matches(self, name: str) -> bool:
        path, _, key = name.rpartition(":")
        want_path, _, want_key = self.metric.rpartition(":")
        if key != want_key:
            return False
        return not want_path or path == want_path or path.endswith("/" + want_path)

    def describe(self) -> str:
        better = "higher" if self.direction == "max" else "lower"
        return f"wants it {better} (tolerance {self.tolerance:g})"


def parse_gates(value: Any, *, where: str) -> tuple[Gate, ...] | None:
    """``{"scores.json:accuracy": "max", "loss": {"direction": "min", "tolerance": 0.01}}``."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(g, Gate) for g in value):
        return tuple(value)
    if not isinstance(value, Mapping):
        raise DvcInvokeError(f"{where}: gates must map metrics to max or min", step="guards")
    gates = []
    for metric, spec in value.items():
        tolerance: Any = 0.0
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"direction", "tolerance"}
            if unknown:
                raise DvcInvokeError(
                    f"{where}: gate {metric}: unknown option {', '.join(sorted(unknown))}"
                    " (options: direction, tolerance)",
                    step="guards",
                )
            direction, tolerance = spec.get("direction"), spec.get("tolerance", 0.0)
        else:
            direction = spec
        if direction not in ("max", "min"):
            raise DvcInvokeError(f"{where}: gate {metric}: say max or min", step="guards")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
            raise DvcInvokeError(
                f"{where}: gate {metric}: tolerance must be a number >= 0", step="guards"
            )
        if not isinstance(metric, str) or not metric.strip():
            raise DvcInvokeError(f"{where}: gates need metric names", step="guards")
        gates.append(Gate(metric.strip(), direction, float(tolerance)))
    return tuple(gates)


@dataclass(frozen=True)
class Change:
    name: str  # "metrics/scores.json:test.mae"
    old: Any
    new: Any
    kind: str = "metric"  # or "param"

    @property
    def changed(self) -> bool:
        if _number(self.old) and _number(self.new):
            return not _close(self.old, self.new)
        return bool(self.old != self.new)

    @property
    def delta(self) -> float | None:
        if _number(self.old) and _number(self.new):
            return float(self.new - self.old)
        return None

    def text(self) -> str:
        if self.old is None:
            return f"{self.name}: {_fmt(self.new)} (new)"
        if self.new is None:
            return f"{self.name}: {_fmt(self.old)} → (missing)"
        delta = self.delta
        tail = f" ({'+' if delta > 0 else ''}{_fmt(delta)})" if delta is not None else ""
        return f"{self.name}: {_fmt(self.old)} → {_fmt(self.new)}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(data["name"], data.get("old"), data.get("new"), data.get("kind", "metric"))


def _close(a: float, b: float) -> bool:
    """Equal but for float noise (0.1 + 0.2 against 0.3): no change, no regression."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


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


def unmatched(
    gates: tuple[Gate, ...], changes: list[Change], declared: Sequence[str] = ()
) -> list[str]:
    """The gates that match no metric before or after the run, one text each,
    saying why: a typo in a gate's name must not let every model through, and
    a file no dvc.yaml declares under ``metrics:`` is never read as metrics."""
    found = []
    names = sorted({c.name for c in changes if c.kind == "metric"})
    for gate in gates:
        if any(gate.matches(name) for name in names):
            continue
        path = gate.metric.rpartition(":")[0]
        if path and not any(f == path or f.endswith("/" + path) for f in declared):
            found.append(
                f"gate {gate.metric} names {path}, which no dvc.yaml declares under metrics:"
                f" declare it (`metrics: [{path}]`, or `metrics:` in its stage) or gate a"
                " declared metric"
            )
            continue
        known = ", ".join(names[:8]) + (" …" if len(names) > 8 else "")
        found.append(f"gate {gate.metric} matches no metric (metrics: {known or 'none'})")
    return found


def regressions(gates: tuple[Gate, ...], changes: list[Change]) -> list[str]:
    """What the gates refuse in ``changes`` (every metric, changed or not): one
    text each (a gate matching no metric is `unmatched`'s)."""
    found = []
    for gate in gates:
        for change in changes:
            if change.kind != "metric" or not gate.matches(change.name):
                continue
            if change.old is None:
                continue  # a new metric: nothing to be worse than
            if change.new is None:
                found.append(f"{change.name} is missing from the run's results")
                continue
            delta = change.delta
            if delta is None or not change.changed:
                continue
            worse = -delta if gate.direction == "max" else delta
            if worse > gate.tolerance:
                found.append(f"{change.text()}: worse, and the gate {gate.describe()}")
    return found


def table(changes: list[Change], limit: int = MAX_ROWS) -> list[str]:
    lines = [c.text() for c in changes[:limit]]
    if len(changes) > limit:
        lines.append(f"… and {len(changes) - limit} more")
    return lines
