"""How a name becomes a pipeline: config, then pipeline_task, then NAME/dvc.yaml."""

from __future__ import annotations

import re
import subprocess

import pytest
from helpers import as_tasks_module, assert_fresh_clone_up_to_date, assert_one_line_error
from invoke import Collection, Config, Context

from dvc_invoke import pipeline_task
from dvc_invoke.config import pipelines
from dvc_invoke.config.pipelines import available, resolve
from dvc_invoke.errors import DvcInvokeError


def ctx(pipelines=None):
    return Context(Config(overrides={"dvc_invoke": {"pipelines": pipelines or {}}}))


@pytest.fixture
def root(tmp_path):
    for name in ("training", "metrics"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notes").write_text("a file, not a pipeline\n")
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_a_folder_with_a_dvc_yaml_is_a_pipeline(root):
    p = resolve(ctx(), root, "training")
    assert (p.dvcfile, p.force, p.commit_message) == (
        "training/dvc.yaml",
        False,
        "[DVC] Update training",
    )


def test_pipeline_task_wins_over_the_folder(root, monkeypatch):
    t = pipeline_task("metrics-pt", dvcfile="metrics/dvc.yaml", force=True, message="M")
    as_tasks_module(monkeypatch, Collection(t))
    p = resolve(ctx(), root, "metrics-pt")
    assert (p.dvcfile, p.force, p.commit_message) == ("metrics/dvc.yaml", True, "M")


def test_config_overrides_what_pipeline_task_said(root, monkeypatch):
    t = pipeline_task("metrics-cfg", dvcfile="metrics/dvc.yaml", force=True, pull=["model"])
    as_tasks_module(monkeypatch, Collection(t))
    p = resolve(ctx({"metrics-cfg": {"message": "Nightly", "pull": []}}), root, "metrics-cfg")
    assert (p.dvcfile, p.force, p.pull, p.commit_message) == (
        "metrics/dvc.yaml",
        True,
        (),
        "Nightly",
    )


def test_a_pipeline_task_the_tasks_do_not_hold_is_no_pipeline(root, monkeypatch):
    pipeline_task("metrics-unmounted", dvcfile="metrics/dvc.yaml")
    as_tasks_module(monkeypatch, Collection(pipeline_task("metrics-mounted")))
    with pytest.raises(DvcInvokeError, match="unknown pipeline 'metrics-unmounted'"):
        resolve(ctx(), root, "metrics-unmounted")


def test_a_configured_name_without_a_folder_needs_only_its_dvcfile(root):
    p = resolve(ctx({"nightly": {"dvcfile": "metrics/dvc.yaml"}}), root, "nightly")
    assert p.dvcfile == "metrics/dvc.yaml"
    assert "nightly" in available(ctx({"nightly": {"dvcfile": "metrics/dvc.yaml"}}), root)


@pytest.mark.parametrize("name", ["notes", "empty", "nope"])
def test_unknown_names_list_the_pipelines_there_are(root, name):
    with pytest.raises(
        DvcInvokeError, match=rf"unknown pipeline '{name}' \(pipelines here: .*metrics.*training"
    ):
        resolve(ctx(), root, name)


@pytest.mark.parametrize("name", ["a;b", "$(id)", "..", "../x", "/etc", "a//b", "", "x\ny"])
def test_invalid_names_are_refused_before_any_lookup(root, name):
    with pytest.raises(DvcInvokeError, match="invalid pipeline name"):
        resolve(ctx(), root, name)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"forse": True}, "unknown option forse"),
        ({"force": "yes"}, "force must be true or false"),
        ({"pull": [1]}, "pull must be a list of paths"),
        ({"message": ""}, "message must be non-empty text"),
        ({"dvcfile": "/abs/dvc.yaml"}, "not a path inside the project"),
    ],
)
def test_malformed_configuration_is_one_clear_error(root, values, message):
    with pytest.raises(DvcInvokeError, match=message):
        resolve(ctx({"training": values}), root, "training")


@pytest.fixture
def nested(tmp_path):
    """Pipelines found where DVC finds them: every dvc.yaml git tracks or would track."""
    for folder in ("", "pipelines/train", "pipelines/predict", "other/train", "ignored/x"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


@pytest.mark.parametrize(
    "name, dvcfile, stages, expected",
    [
        (".", "dvc.yaml", None, "dvc.yaml"),
        ("dvc.yaml", "dvc.yaml", None, "dvc.yaml"),
        ("dvc.yaml:evaluate", "dvc.yaml", ("evaluate",), "dvc.yaml:evaluate"),
        ("pipelines/train", "pipelines/train/dvc.yaml", None, "pipelines/train"),
        ("pipelines/train/", "pipelines/train/dvc.yaml", None, "pipelines/train"),
        ("pipelines/train/dvc.yaml:fit", "pipelines/train/dvc.yaml", ("fit",), None),
        ("predict", "pipelines/predict/dvc.yaml", None, "pipelines/predict"),
    ],
)
def test_pipelines_are_named_as_dvc_users_write_them(nested, name, dvcfile, stages, expected):
    p = resolve(ctx(), nested, name)
    assert (p.dvcfile, p.stages) == (dvcfile, stages)
    assert p.name == (expected or "pipelines/train:fit")


def test_an_ambiguous_last_part_is_not_a_name_but_the_listing_shows_the_paths(nested):
    names = available(ctx(), nested)
    assert names == ["dvc.yaml", "other/train", "pipelines/predict", "pipelines/train", "predict"]
    with pytest.raises(DvcInvokeError, match=r"unknown pipeline 'train'.*other/train"):
        resolve(ctx(), nested, "train")


def test_a_git_ignored_dvc_yaml_is_no_pipeline(nested):
    with pytest.raises(DvcInvokeError, match="unknown pipeline 'x'"):
        resolve(ctx(), nested, "x")


def test_stages_of_pipeline_task_and_the_address_in_dvcfile_say_the_same(monkeypatch):
    a = pipeline_task("sub-a", dvcfile="dvc.yaml", stages=["evaluate"])
    b = pipeline_task("sub-b", dvcfile="dvc.yaml:evaluate")
    assert a.help["force"] == b.help["force"]
    as_tasks_module(monkeypatch, Collection(a, b))
    found = pipelines.defined()
    assert found["sub-a"].stages == found["sub-b"].stages == ("evaluate",)
    with pytest.raises(ValueError, match="stages must be a non-empty list"):
        pipeline_task("sub-c", dvcfile="dvc.yaml", stages=[])


@pytest.mark.parametrize("name", ["dvc.yaml:evaluate", "pipelines/train", "train"])
def test_run_ids_of_any_pipeline_name_are_one_word_for_files_and_branches(name):
    from dvc_invoke.runs.store import new_id

    run_id = new_id(name)
    assert re.fullmatch(r"\d{8}-\d{6}-[A-Za-z0-9_.-]+-[0-9a-f]{4}", run_id), run_id
    assert (
        subprocess.run(["git", "check-ref-format", f"refs/heads/dvc-invoke/{run_id}"]).returncode
        == 0
    )


def test_a_path_that_a_pipeline_declares_means_that_pipeline_as_configured_now(nested, monkeypatch):
    declared = pipeline_task(
        "declared-train", dvcfile="pipelines/train/dvc.yaml", message="Trained"
    )
    as_tasks_module(monkeypatch, Collection(declared))
    assert resolve(ctx(), nested, "pipelines/train").name == "declared-train"
    assert resolve(ctx(), nested, "pipelines/train/dvc.yaml").commit_message == "Trained"
    # Configured elsewhere now: the path no longer means it.
    moved = ctx({"declared-train": {"dvcfile": "other/train/dvc.yaml"}})
    assert resolve(moved, nested, "pipelines/train").name == "pipelines/train"
    assert resolve(moved, nested, "other/train").name == "declared-train"


def test_an_upstream_that_never_ran_is_refused_before_the_pull_with_both_ways_out(tmp_path):
    from dvc_invoke.cli import sandbox
    from dvc_invoke.testing import Project

    sb = sandbox.create(Context(), tmp_path / "untrained", trained=False)
    project = Project(sb.project, sb.origin, sb.remote)

    run = project.inv("metrics")

    line = assert_one_line_error(
        run, "pull failed", "upstream never run: training (stage train)", "nothing to pull"
    )
    assert "`inv metrics --upstream`" in line and "`inv repro --pipeline training` first" in line
    assert "changed" not in line  # never run, not "train.py changed"
    assert "dvc pull" not in run.stdout  # refused before it

    upstream = project.inv("metrics", "--upstream")

    assert upstream.returncode == 0, upstream.output
    assert project.origin_log()[:2] == ["[DVC] Update model metrics", "[DVC] Update training"]
    assert_fresh_clone_up_to_date(project)
