"""Metrics in every report, and gates: real metrics files changed by real stage runs.

End to end: real projects, `inv` run as a user runs it."""

from __future__ import annotations

from helpers import latest


def test_a_pipeline_without_metrics_says_nothing_about_them(project):
    (project.path / "dataset" / "train.csv").write_text("x,y\n1,3\n2,6\n")
    project.sh("dvc add -q dataset/train.csv && git commit -qam 'More data'")

    run = project.inv("repro", "--pipeline", "training")

    assert run.returncode == 0, run.output
    assert latest(project)["metrics"] == []
    assert "→" not in "".join(
        ln for ln in run.stdout.splitlines() if "training/" in ln and ":" in ln
    )


def test_changed_params_are_reported_with_the_metrics(project):
    dvc_yaml = project.path / "metrics" / "dvc.yaml"
    dvc_yaml.write_text(
        dvc_yaml.read_text().replace(
            "    - predictions.csv\n    metrics:",
            "    - predictions.csv\n    params:\n    - threshold\n    metrics:",
        )
    )
    (project.path / "metrics" / "params.yaml").write_text("threshold: 0.5\n")
    project.git("add", "metrics")
    project.git("commit", "-qm", "Evaluation threshold")
    assert project.inv("metrics").returncode == 0
    (project.path / "metrics" / "params.yaml").write_text("threshold: 0.7\n")
    project.git("commit", "-qam", "A stricter threshold")

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    assert "metrics/params.yaml:threshold: 0.5 → 0.7 (+0.2)" in run.stdout
    assert {
        "name": "metrics/params.yaml:threshold",
        "old": 0.5,
        "new": 0.7,
        "kind": "param",
    } in latest(project)["metrics"]
