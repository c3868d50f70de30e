"""Metrics in every report, and gates: real metrics files changed by real stage runs."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, latest

from dvc_invoke.adapters.dvc.metrics import param_changes
from dvc_invoke.config.gates import Gate, parse_gates
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs.metrics import Change, regressions

MESSAGE = "[DVC] Update model metrics"


def to_yaml(data, indent=0):
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(" " * indent + f"{key}:")
            lines.append(to_yaml(value, indent + 2))
        else:
            lines.append(" " * indent + f"{key}: {value}")
    return "\n".join(lines)


def publish_scores(project, scores, fmt="json", note=""):
    """Commit an evaluation that reports ``scores``: the next run's metrics."""
    name = f"scores.{fmt}"
    body = json.dumps(scores) if fmt == "json" else to_yaml(scores) + "\n"
    (project.path / "metrics" / "evaluate.py").write_text(
        f"# {note}\nopen('predictions.csv').read()\nopen({name!r}, 'w').write({body!r})\n"
    )
    dvc_yaml = project.path / "metrics" / "dvc.yaml"
    text = dvc_yaml.read_text()
    for old in ("scores.json", "scores.yaml"):
        text = text.replace(f"- {old}:", f"- {name}:")
    dvc_yaml.write_text(text)
    project.git("add", "metrics")
    project.git("commit", "-qm", f"Evaluation reporting {scores}")


def gates(project, spec):
    config = {"dvc_invoke": {"pipelines": {"metrics": {"gates": spec}}}}
    (project.path / "invoke.yaml").write_text(json.dumps(config))


@pytest.fixture
def baseline(project):
    publish_scores(project, {"test": {"mae": 0.3, "rmse": 0.5}}, note="baseline")
    run = project.inv("metrics")
    assert run.returncode == 0, run.output
    return project


@pytest.mark.parametrize(
    "mae, ok, shown",
    [
        (0.25, True, "metrics/scores.json:test.mae: 0.3 → 0.25 (-0.05)"),
        (0.3, True, None),
        (0.33, True, "metrics/scores.json:test.mae: 0.3 → 0.33 (+0.03)"),
        (0.4, False, "metrics/scores.json:test.mae: 0.3 → 0.4 (+0.1)"),
    ],
    ids=["improved", "unchanged", "worse-within-tolerance", "worse-beyond-tolerance"],
)
def test_a_gate_compares_with_the_commit_the_run_started_from(baseline, slack, mae, ok, shown):
    project = baseline
    gates(project, {"scores.json:test.mae": {"direction": "min", "tolerance": 0.05}})
    publish_scores(project, {"test": {"mae": mae, "rmse": 0.5}}, note="next")
    origin = project.origin_log()

    run = project.inv("metrics", env=slack.web_api_env())

    record = latest(project)
    names = [m["name"] for m in record["metrics"]]
    assert "metrics/scores.json:test.rmse" not in names  # unchanged: nothing said
    update = slack.calls("chat.update")[0]
    if shown:
        assert shown in run.stdout
        assert shown in update.blocks_text
    else:
        assert record["metrics"] == [] and "Metrics and params" not in update.blocks_text
    if ok:
        assert run.returncode == 0, run.output
        assert project.origin_log()[0] == MESSAGE
        return
    line = assert_one_line_error(
        run, "gate failed", "metrics got worse", shown, "nothing was committed"
    )
    assert "inv publish --pipeline metrics --accept" in line
    assert (record["status"], record["step"]) == ("failed", "gate")
    assert project.origin_log() == origin
    assert update.text.startswith("metrics failed") and "*Failed at:* gate" in update.blocks_text

    refused = project.inv("publish", "--pipeline", "metrics")
    assert_one_line_error(refused, "metrics got worse")
    accepted = project.inv("publish", "--pipeline", "metrics", "--accept")
    assert accepted.returncode == 0, accepted.output
    assert project.origin_log()[0] == MESSAGE
    assert json.loads((project.path / "metrics" / "scores.json").read_text())["test"]["mae"] == 0.4


def test_yaml_metrics_with_a_missing_and_a_new_metric(baseline):
    project = baseline
    publish_scores(project, {"test": {"mae": 0.3}}, fmt="yaml", note="yaml")
    assert project.inv("metrics").returncode == 0
    gates(project, {"test.mae": "min", "test.accuracy": "max"})
    publish_scores(project, {"test": {"accuracy": 0.9}}, fmt="yaml", note="accuracy only")

    run = project.inv("metrics")

    line = assert_one_line_error(run, "gate failed")
    assert "metrics/scores.yaml:test.mae is missing from the run's results" in line
    assert "accuracy" not in line  # new: nothing to be worse than
    assert "metrics/scores.yaml:test.accuracy: 0.9 (new)" in run.stdout


def test_status_shows_how_the_numbers_moved_across_runs(baseline):
    project = baseline
    for mae in (0.28, 0.26):
        publish_scores(project, {"test": {"mae": mae, "rmse": 0.5}}, note=str(mae))
        assert project.inv("metrics").returncode == 0

    status = project.inv("repro.status", "--pipeline", "metrics")

    assert status.returncode == 0, status.output
    lines = [ln for ln in status.stdout.splitlines() if "succeeded" in ln]
    assert "test.mae: 0.28 → 0.26 (-0.02)" in lines[0]
    assert "test.mae: 0.3 → 0.28 (-0.02)" in lines[1]


def test_gate_names_match_a_metric_by_key_or_by_the_end_of_its_path():
    gate = Gate("scores.json:acc", "max")
    assert gate.matches("eval/scores.json:acc")
    assert not gate.matches("eval/other_scores.json:acc")
    assert not gate.matches("eval/scores.json:accuracy")
    assert Gate("acc", "max").matches("anything.yaml:acc")


def test_regressions_respect_direction_and_tolerance():
    changes = [Change("s.json:acc", 0.9, 0.85), Change("s.json:loss", 0.2, 0.25)]
    assert regressions((Gate("acc", "max", 0.1), Gate("loss", "min", 0.1)), changes) == []
    found = regressions((Gate("acc", "max", 0.01), Gate("loss", "max")), changes)
    assert len(found) == 1 and found[0].startswith("s.json:acc: 0.9 → 0.85 (-0.05)")


@pytest.mark.parametrize(
    "spec, error",
    [
        ({"acc": "up"}, "say max or min"),
        ({"acc": {"direction": "max", "tolerance": -1}}, "tolerance must be a number >= 0"),
        ({"acc": {"direction": "max", "slack": 1}}, "unknown option slack"),
        (["acc"], "gates must map metrics to max or min"),
    ],
)
def test_malformed_gates_are_one_clear_error(spec, error):
    with pytest.raises(DvcInvokeError, match=error):
        parse_gates(spec, where="pipeline")


def test_float_noise_is_no_change_and_no_regression():
    noise = Change("eval/metrics.json:acc", 0.3, 0.1 + 0.2)
    real = Change("eval/metrics.json:acc", 0.3, 0.2999)
    gates = (Gate("acc", "max", 0.0),)

    assert not noise.changed and real.changed
    assert regressions(gates, [noise]) == []
    assert regressions(gates, [real]) == [
        "eval/metrics.json:acc: 0.3 → 0.2999 (-0.0001): worse,"
        " and the gate wants it higher (tolerance 0)"
    ]


def test_params_a_stage_reads_from_a_folder_above_are_named_from_the_root():
    lock = "stages:\n  train:\n    cmd: python train.py\n    params:\n      ../params.yaml:\n        train.lr: {}\n"
    old, new = {"train/dvc.lock": lock.format(0.1)}, {"train/dvc.lock": lock.format(0.01)}

    changes = param_changes(old, new)

    assert [(c.name, c.old, c.new) for c in changes] == [("params.yaml:train.lr", 0.1, 0.01)]
