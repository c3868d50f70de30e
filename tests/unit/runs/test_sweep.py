"""A sweep's table: ranked by the first gate, the baseline first, the failed last."""

from __future__ import annotations

from dvc_invoke.config.gates import Gate
from dvc_invoke.runs import sweep
from dvc_invoke.runs.record import RunReport

ACC = "eval/metrics.json:acc"
EXPS = [
    {
        "name": "a",
        "state": "success",
        "params": {"params.yaml:train.lr": 0.1},
        "metrics": {ACC: 0.7, "eval/metrics.json:loss": 0.3},
    },
    {"name": "b", "state": "failed", "params": {"params.yaml:train.lr": 9}, "step": "train"},
    {
        "name": "c",
        "state": "success",
        "params": {"params.yaml:train.lr": 0.01},
        "metrics": {ACC: 0.9, "eval/metrics.json:loss": 0.1},
    },
    {"name": "d", "state": "running", "params": {"params.yaml:train.lr": 1}},
]


def test_the_first_gate_ranks_and_a_failure_comes_last_with_its_step():
    by = sweep.rank_by((Gate("acc", "max"),), [ACC, "eval/metrics.json:loss"])
    assert by == (ACC, "max")

    headers, rows = sweep.table(
        EXPS,
        {"rev": "1234567890", "params": {"params.yaml:train.lr": 0.05}, "metrics": {ACC: 0.8}},
        (Gate("acc", "max"),),
        by,
    )

    assert headers == ["experiment", "state", "train.lr", "acc ↑"]
    assert [r[0] for r in rows] == ["baseline 1234567", "c", "a", "d", "b"]
    assert rows[0][2:] == ["0.05", "0.8"]
    assert rows[-1][1] == "failed at train" and rows[-1][3] == "-"
    assert sweep.best(EXPS, by)["name"] == "c"


def test_a_lower_is_better_sort_and_no_metric_to_rank_by():
    keys = [ACC, "eval/metrics.json:loss"]
    assert sweep.rank_by(None, keys, sort="loss", direction="min") == (
        "eval/metrics.json:loss",
        "min",
    )
    # A sort on a gated metric takes the gate's direction.
    assert sweep.rank_by((Gate("loss", "min"),), keys, sort="loss") == (
        "eval/metrics.json:loss",
        "min",
    )
    assert sweep.rank_by(None, keys) is None
    assert sweep.rank_by(None, keys, sort="nope") is None
    assert sweep.best(EXPS, None) is None
    by = ("eval/metrics.json:loss", "min")
    assert [e["name"] for e in sweep.ranked(EXPS, by)][:2] == ["c", "a"]


def test_a_sweep_record_says_its_counts_and_best_in_one_line():
    report = RunReport(
        pipeline="train", command="inv exp.run", sweep={"sets": ["train.lr=0.1,9"], "best": "c"}
    )
    report.experiments = EXPS
    assert report.headline().startswith("train sweep started on ")
    report.end("succeeded")
    line = report.headline()
    assert line.startswith("train sweep succeeded after ")
    assert line.endswith("4 experiments: 2 succeeded, 1 running, 1 failed; best c")
    assert report.published() == []  # a sweep publishes nothing: it shares
    assert sweep.text(["x", "yy"], [["long", "1"]]) == "x     yy\nlong  1"
