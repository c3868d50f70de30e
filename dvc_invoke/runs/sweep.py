"""A sweep's experiments as its record keeps them, ranked into the one table the
console, Slack and ``inv exp.show`` print.

Each experiment is a plain dict in the record (`RunReport.experiments`):
``name``, ``state`` (queued, running, success, failed, lost), ``params`` (the
values the sweep set), ``metrics`` (``"file:key"``: value), and for a failure
``step``, ``reason`` and ``log_tail``. The sweep itself (`RunReport.sweep`)
keeps the ``-S`` values, ``jobs``, the ``baseline`` (its commit, params and
metrics: what origin's branch last published), what it is ranked ``by`` and the
``best`` experiment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dvc_invoke.config.gates import Gate

MAX_COLUMNS = 6  # metrics shown beyond the one ranked by: the first few
STATE_WORDS = {
    "queued": "queued",
    "running": "running",
    "success": "succeeded",
    "failed": "failed",
    "lost": "lost",
    "cancelled": "cancelled",
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def matching(name: str, keys: Sequence[str]) -> str | None:
    """The metric of ``keys`` that ``name`` (``key`` or ``file:key``) means."""
    gate = Gate(name, "max")
    found = [k for k in keys if gate.matches(k)]
    return found[0] if found else None


def rank_by(
    gates: Sequence[Gate] | None,
    keys: Sequence[str],
    *,
    sort: str | None = None,
    direction: str | None = None,
) -> tuple[str, str] | None:
    """The metric to rank by and which way is better: ``sort`` when given (its
    gate's direction, else ``direction``, else higher), else the first gate's
    metric and direction; None when neither names a metric of ``keys``."""
    if sort:
        metric = matching(sort, keys)
        if metric is None:
            return None
        gate = next((g for g in gates or () if g.matches(metric)), None)
        return metric, direction or (gate.direction if gate else "max")
    for gate in gates or ():
        metric = next((k for k in keys if gate.matches(k)), None)
        if metric is not None:
            return metric, direction or gate.direction
    return None


def ranked(experiments: list[dict[str, Any]], by: tuple[str, str] | None) -> list[dict[str, Any]]:
    """Succeeded experiments first, best first by ``by`` (in queue order without
    it); then the running and queued; then the failed and lost."""
    order = {"success": 0, "running": 1, "queued": 1, "failed": 2, "lost": 2}

    def key(e: dict[str, Any]) -> tuple[int, float]:
        group = order.get(e.get("state", ""), 3)
        if by is None or group:
            return group, 0.0
        value: Any = (e.get("metrics") or {}).get(by[0])
        if not _number(value):
            return group, math.inf
        number = float(value)
        return group, -number if by[1] == "max" else number

    return sorted(experiments, key=key)


def best(experiments: list[dict[str, Any]], by: tuple[str, str] | None) -> dict[str, Any] | None:
    """The best succeeded experiment by ``by``; None without a metric to rank by."""
    if by is None:
        return None
    done = [e for e in experiments if e.get("state") == "success"]
    top = ranked(done, by)
    if not top or not _number((top[0].get("metrics") or {}).get(by[0])):
        return None
    return top[0]


def _short(keys: Sequence[str]) -> dict[str, str]:
    """Column names: ``key`` alone when no other file has it, else ``file:key``;
    ``params.yaml:`` is never said."""
    bare = [k.split(":", 1)[-1] for k in keys]
    return {
        k: b if bare.count(b) == 1 or k.startswith("params.yaml:") else k
        for k, b in zip(keys, bare, strict=True)
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def columns(
    experiments: list[dict[str, Any]],
    gates: Sequence[Gate] | None,
    by: tuple[str, str] | None,
) -> tuple[list[str], list[str]]:
    """The params the sweep set and the metrics shown: those its gates name (or
    all, the first few), the one ranked by first."""
    params = list(dict.fromkeys(k for e in experiments for k in e.get("params") or {}))
    found = list(dict.fromkeys(k for e in experiments for k in e.get("metrics") or {}))
    gated = [k for k in found if any(g.matches(k) for g in gates or ())]
    metrics = gated or found[:MAX_COLUMNS]
    if by is not None and by[0] in found:
        metrics = [by[0]] + [m for m in metrics if m != by[0]]
    return params, metrics


def table(
    experiments: list[dict[str, Any]],
    baseline: Mapping[str, Any] | None,
    gates: Sequence[Gate] | None,
    by: tuple[str, str] | None,
) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: the baseline first, then the experiments ranked; a failed
    one says its step where the metrics would be."""
    params, metrics = columns(experiments, gates, by)
    names = _short(params + metrics)
    arrow = {"max": " ↑", "min": " ↓"}
    headers = ["experiment", "state"] + [names[p] for p in params]
    headers += [names[m] + (arrow[by[1]] if by and m == by[0] else "") for m in metrics]
    rows = []
    if baseline is not None:
        label = f"baseline {str(baseline.get('rev') or '')[:7]}".strip()
        base_params = baseline.get("params") or {}
        base_metrics = baseline.get("metrics") or {}
        rows.append(
            [label, "published"]
            + [_fmt(base_params.get(p)) for p in params]
            + [_fmt(base_metrics.get(m)) for m in metrics]
        )
    for e in ranked(experiments, by):
        state = STATE_WORDS.get(e.get("state", ""), e.get("state", "?"))
        if e.get("state") in ("failed", "lost") and e.get("step"):
            state += f" at {e['step']}"
        values = e.get("metrics") or {}
        rows.append(
            [str(e.get("name"))]
            + [state]
            + [_fmt((e.get("params") or {}).get(p)) for p in params]
            + [_fmt(values.get(m)) for m in metrics]
        )
    return headers, rows


def text(headers: list[str], rows: list[list[str]]) -> str:
    """The table as aligned plain text (for a code block)."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines)


def counts(experiments: list[dict[str, Any]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for e in experiments:
        found[e.get("state", "?")] = found.get(e.get("state", "?"), 0) + 1
    return found


def summary(experiments: list[dict[str, Any]], best_name: str | None) -> str:
    """``4 experiments: 3 succeeded, 1 failed; best sw-2``."""
    n = counts(experiments)
    order = ("success", "running", "queued", "failed", "lost", "cancelled")
    parts = [f"{n[s]} {STATE_WORDS.get(s, s)}" for s in order if n.get(s)]
    text_ = f"{len(experiments)} experiment{'s' if len(experiments) != 1 else ''}"
    if parts:
        text_ += ": " + ", ".join(parts)
    if best_name:
        text_ += f"; best {best_name}"
    return text_


def rank(report: Any, gates: Sequence[Gate]) -> dict[str, Any] | None:
    """The sweep's ranking kept in its record (``report.sweep``): by which
    metric, which way, the best experiment; the best returned."""
    sweep = report.sweep if report.sweep is not None else {}
    sweep["gates"] = {g.metric: {"direction": g.direction, "tolerance": g.tolerance} for g in gates}
    keys = [k for e in report.experiments for k in e.get("metrics") or {}]
    by = rank_by(gates, keys)
    sweep["by"] = list(by) if by else None
    top = best(report.experiments, by)
    sweep["best"] = top["name"] if top else None
    report.sweep = sweep
    return top


def share_resume(report: Any) -> str:
    """What follows a share of a sweep spread over hosts that ended badly: not
    the share again (its experiments' names are the sweep's), the look that
    tells the table, where the sweep was started."""
    from dvc_invoke import tasknames

    name = (report.sweep or {}).get("name")
    return f"{tasknames.command('exp.show')} where sweep {name} was started (it tells the table)"
