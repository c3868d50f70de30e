"""The status rows of `inv repro.status`, one per run, whatever engine ran it."""

from __future__ import annotations

from dvc_invoke.flow.watch import STATUS_COLUMNS, status_row
from dvc_invoke.runs.record import RunReport


def row(**fields: object) -> dict[str, str]:
    report = RunReport(pipeline="train", command="inv train", id="r1", **fields)  # type: ignore
    return dict(zip(STATUS_COLUMNS, status_row(report), strict=True))


def test_a_published_run_shows_its_commits_and_its_gated_metrics_first():
    metrics = [
        {"name": "eval.json:loss", "old": 0.5, "new": 0.4, "kind": "metric"},
        {"name": "eval.json:acc", "old": 0.8, "new": 0.9, "kind": "metric", "gated": True},
        {"name": "params.yaml:lr", "old": 0.1, "new": 0.01, "kind": "param"},
    ]
    shown = row(
        status="succeeded",
        commit_before="a" * 40,
        commit_after="b" * 40,
        ended_at=1.0,
        metrics=metrics,
    )
    assert shown["status"] == "succeeded"
    assert shown["detail"].startswith("aaaaaaa → bbbbbbb  eval.json:acc: 0.8 → 0.9")
    assert "lr" not in shown["detail"]  # params are not the numbers a run is judged by


def test_a_failed_run_shows_its_step_and_reason_and_a_live_one_where_it_is():
    assert (
        row(status="failed", step="gate", reason="metrics got worse", ended_at=1.0)["detail"]
        == "at gate: metrics got worse"
    )
    running = row(step="repro", detached=True)
    assert (running["status"], running["detail"]) == ("running", "at repro (detached)")
    assert row(step="pull", restarts=2)["detail"] == "at pull (restart 2)"
