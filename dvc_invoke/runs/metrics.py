"""What a run did to the pipeline's numbers: its metric and param changes, as its
record keeps them, and what the pipeline's gates refuse in them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dvc_invoke.config.gates import Gate

MAX_ROWS = 20


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
