"""dvclive inside the pipeline: its ``Live`` rewrites ``dvc.yaml`` at the end of a stage.

The project is shaped like DVC's experiments example (iterative/example-get-started-
experiments): a root ``dvc.yaml`` whose top-level ``params``/``metrics``/``plots`` are
dvclive's, each stage writing through the real ``dvclive.Live`` with its default
``dvcyaml="dvc.yaml"``. The committed ``dvc.yaml`` is written in flow style, so that
dvclive's rewrite (block style, its own wrapping) changes the text on every run.
"""

from __future__ import annotations

import pytest
from helpers import assert_fresh_clone_up_to_date, assert_one_line_error, latest

pytest.importorskip("dvclive")

pytestmark = pytest.mark.e2e

TRAIN = """\
from pathlib import Path

import yaml
from dvclive import Live

params = yaml.safe_load(open("params.yaml"))["train"]
with Live("results/train") as live:  # dvclive's default: dvcyaml="dvc.yaml"
    live.log_params(params)
    for step in range(params["epochs"]):
        live.log_metric("loss", round(1.0 / (step + 1 + params["lr"]), 4))
        live.next_step()
    Path("models").mkdir(exist_ok=True)
    Path("models/model.txt").write_text(f"{params['lr']} {params['epochs']}\\n")
    if params.get("artifact"):
        live.log_artifact("models/model.txt", type="model", name="tiny")
    if params.get("elsewhere"):
        with Live("elsewhere") as other:  # a folder no stage declares
            other.summary["seen"] = 1
"""

EVALUATE = """\
from pathlib import Path

from dvclive import Live

if Path("fail-evaluate").exists():
    raise SystemExit("evaluate: told to fail")
lr = float(Path("models/model.txt").read_text().split()[0])
with Live("results/evaluate") as live:
    live.summary["acc"] = round(0.9 - abs(lr - 0.01), 4)
"""

DVC_YAML = """\
params: [results/train/params.yaml]
metrics: [results/train/metrics.json, results/evaluate/metrics.json]
plots: [{results/train/plots/metrics: {x: step}}]
stages:
  train: {cmd: python train.py, deps: [train.py, data/data.csv], params: [train], outs: [models, results/train]}
  evaluate: {cmd: python evaluate.py, deps: [evaluate.py, models], outs: [results/evaluate]}
"""

TASKS = """\
from invoke import Collection

from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

train = pipeline_task("train", dvcfile="dvc.yaml", gates={"results/evaluate/metrics.json:acc": "max"})

ns = Collection(train, guards, data, repro, publish, notify)
"""


@pytest.fixture
def live_project(dvc_project):
    return dvc_project(
        {
            "train.py": TRAIN,
            "evaluate.py": EVALUATE,
            "dvc.yaml": DVC_YAML,
            "params.yaml": "train:\n  lr: 0.01\n  epochs: 3\n",
            "tasks.py": TASKS,
            ".gitignore": "/fail-evaluate\n",
            "data/data.csv": "".join(f"{i}\n" for i in range(20)),
        },
        data=["data/data.csv"],
    )


def set_params(project, **values):
    lines = ["train:"] + [f"  {k}: {v}" for k, v in {"lr": 0.01, "epochs": 3, **values}.items()]
    (project.path / "params.yaml").write_text("\n".join(lines) + "\n")
    project.git("commit", "-qam", f"params {values}")
    project.git("push", "-q")


def test_the_first_run_publishes_and_dvclives_rewrite_of_dvc_yaml_is_no_change(live_project):
    run = live_project.inv("train")

    assert run.returncode == 0, run.output
    assert "dvc.yaml: rewritten by a stage (dvclive) with nothing DVC reads changed" in run.stdout
    # The committed text, as the team wrote it; the lock committed beside it.
    assert (live_project.path / "dvc.yaml").read_text() == DVC_YAML
    assert live_project.git("status", "--porcelain") == ""
    assert live_project.git("show", "--name-only", "--format=", "HEAD").split() == [
        ".gitignore",
        "dvc.lock",
        "results/.gitignore",
    ]
    assert live_project.origin_log()[0] == "[DVC] Update train"
    assert_fresh_clone_up_to_date(live_project)


def test_dvclive_entries_for_the_runs_own_outputs_are_committed_with_the_lock(live_project):
    assert live_project.inv("train").returncode == 0
    set_params(live_project, artifact="true")  # train now logs an artifact: a new entry

    run = live_project.inv("train")

    assert run.returncode == 0, run.output
    assert "committed dvclive's entries in dvc.yaml" in run.stdout
    committed = live_project.git("show", "HEAD:dvc.yaml")
    assert "artifacts:" in committed and "path: models/model.txt" in committed
    assert live_project.git("show", "--name-only", "--format=", "HEAD").split() == [
        "dvc.lock",
        "dvc.yaml",
    ]
    assert latest(live_project)["rewritten"] == ["dvc.yaml"]
    assert_fresh_clone_up_to_date(live_project)


def test_a_stage_that_failed_after_dvclive_reordered_dvc_yaml_does_not_block_its_rerun(
    live_project,
):
    assert live_project.inv("train").returncode == 0
    set_params(live_project, epochs=4)
    (live_project.path / "fail-evaluate").write_text("")

    failed = live_project.inv("train")

    assert_one_line_error(failed, "repro failed")
    # train's Live rewrote dvc.yaml, evaluate's never did: its metrics re-ordered.
    text = (live_project.path / "dvc.yaml").read_text()
    assert text != DVC_YAML
    assert text.index("results/evaluate/metrics.json") < text.index("results/train/metrics.json")
    assert "dvc.yaml" in live_project.git("status", "--porcelain")
    (live_project.path / "fail-evaluate").unlink()

    rerun = live_project.inv("train")

    assert rerun.returncode == 0, rerun.output
    assert (live_project.path / "dvc.yaml").read_text() == DVC_YAML
    assert live_project.git("status", "--porcelain") == ""
    assert_fresh_clone_up_to_date(live_project)


def test_dvclive_entries_for_a_folder_no_stage_writes_are_refused_naming_dvcyaml(live_project):
    assert live_project.inv("train").returncode == 0
    set_params(live_project, elsewhere="true")
    head = live_project.git("rev-parse", "HEAD")

    run = live_project.inv("train")

    line = assert_one_line_error(run, "commit failed", "elsewhere/metrics.json", "dvcyaml=False")
    assert "nothing was committed" in line
    assert live_project.git("rev-parse", "origin/main") == head


def test_a_hand_edit_of_a_stage_in_dvc_yaml_is_refused_before_the_run(live_project):
    assert live_project.inv("train").returncode == 0
    dvcyaml = live_project.path / "dvc.yaml"
    dvcyaml.write_text(DVC_YAML.replace("python evaluate.py", "python evaluate.py --fast"))

    run = live_project.inv("train")

    assert_one_line_error(run, "guards failed", "uncommitted changes to tracked files: dvc.yaml")


def test_discard_after_a_failed_first_run_is_back_to_head_and_keeps_hand_edits(live_project):
    (live_project.path / "fail-evaluate").write_text("")
    failed = live_project.inv("train")
    assert_one_line_error(failed, "repro failed")
    assert (live_project.path / "dvc.lock").is_file()  # HEAD has none
    assert (live_project.path / "models" / "model.txt").is_file()
    gitignore = live_project.path / ".gitignore"
    gitignore.write_text(gitignore.read_text() + ".env.local\n")  # the user's line

    run = live_project.inv("repro.discard", "--pipeline", "train")

    assert run.returncode == 0, run.output
    for gone in ("dvc.lock", "models", "results/train"):
        assert not (live_project.path / gone).exists(), gone
        assert f"removed {gone}" in run.stdout
    assert gitignore.read_text() == "/fail-evaluate\n.env.local\n"
    assert (live_project.path / "dvc.yaml").read_text() == DVC_YAML
    assert live_project.git("status", "--porcelain", "--untracked-files=all") == "M .gitignore"
    (live_project.path / "fail-evaluate").unlink()
    gitignore.write_text("/fail-evaluate\n")
    assert live_project.inv("train").returncode == 0
    assert_fresh_clone_up_to_date(live_project)
