"""Gates: a metric, the direction that is better, and a tolerance.

A gate names a metric (``"scores.json:accuracy"``, or just ``"accuracy"``),
the direction that is better (``max`` or ``min``) and a tolerance; a run
whose metric got worse than that fails before publishing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dvc_invoke.errors import DvcInvokeError


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
