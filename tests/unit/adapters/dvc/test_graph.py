"""Target resolution and git state parsing, on plain data."""

from __future__ import annotations

import pytest

from dvc_invoke.adapters.dvc.model import Output, PipelineGraph, Tracked, collapse
from dvc_invoke.adapters.git import GitState
from dvc_invoke.adapters.reasons import error_line
from dvc_invoke.config.paths import normalize
from dvc_invoke.errors import DvcInvokeError

OUTS = [
    Output("model/model.pkl", True, "training/dvc.yaml:train"),
    Output("model/tokenizer", True, "training/dvc.yaml:train"),
    Output("dataset/testset", True, "dataset/testset.dvc"),
    Output("metrics/scores.json", False, "metrics/dvc.yaml:evaluate"),
    Output("modelling/notes.csv", True, "x.dvc"),
]


def graph(outputs=OUTS):
    return PipelineGraph("metrics/dvc.yaml", [], [], [], [], Tracked(outputs))


def test_a_folder_holding_outputs_of_another_pipeline_expands_to_them():
    assert graph().resolve(["model"], step="pull") == ["model/model.pkl", "model/tokenizer"]


def test_a_path_inside_a_tracked_folder_is_pulled_granularly():
    assert graph().resolve(["dataset/testset/part-0.csv"], step="pull") == [
        "dataset/testset/part-0.csv"
    ]


def test_targets_are_normalised_and_deduplicated():
    resolved = graph().resolve(
        ["./model/", "model/model.pkl", "dataset/testset/a", "dataset/testset"], step="pull"
    )
    assert resolved == ["model/model.pkl", "model/tokenizer", "dataset/testset"]


def test_outputs_kept_in_git_are_not_transferred_but_do_match():
    assert graph().resolve(["metrics"], step="dvc push") == []


def test_a_target_matching_nothing_is_an_error_naming_it():
    with pytest.raises(DvcInvokeError, match="pull target 'mode' matches nothing DVC tracks"):
        graph().resolve(["mode"], step="pull")


@pytest.mark.parametrize("raw", ["/etc/passwd", "../other", "a/../../b", "", "  "])
def test_paths_outside_the_project_are_refused(raw):
    with pytest.raises(DvcInvokeError, match="not a path inside the project"):
        normalize(raw, step="pull")


def test_collapse_keeps_order_and_drops_nested_paths():
    assert collapse(["b/x", "a", "b", "a/y", "b"]) == ["a", "b"]


def test_git_paths_cover_lock_gitignore_and_uncached_outputs():
    outputs = [Output("metrics/preds.csv", True, "s"), Output("metrics/scores.json", False, "s")]
    g = PipelineGraph("metrics/dvc.yaml", [], [], outputs, ["metrics/dvc.lock"], Tracked(outputs))
    assert g.git_paths() == ["metrics/dvc.lock", "metrics/.gitignore", "metrics/scores.json"]
    assert g.push_targets == ["metrics/preds.csv"]


def test_git_state_parses_branch_upstream_and_changes():
    out = "\0".join(
        [
            "# branch.oid 0123456789abcdef0123456789abcdef01234567",
            "# branch.head feature/x",
            "# branch.upstream origin/feature/x",
            "# branch.ab +2 -3",
            "1 .M N... 100644 100644 100644 abc abc a file.py",
            "2 R. N... 100644 100644 100644 abc abc R100 new name.py",
            "old name.py",
            "u UU N... 100644 100644 100644 100644 a b c conflict.txt",
            "",
        ]
    )
    state = GitState.parse(out)
    assert state.commit.startswith("0123456")
    assert (state.branch, state.upstream, state.ahead, state.behind) == (
        "feature/x",
        "origin/feature/x",
        2,
        3,
    )
    assert state.changed == ["a file.py", "new name.py", "conflict.txt"]


def test_git_state_of_a_detached_head_without_commits():
    state = GitState.parse("# branch.oid (initial)\0# branch.head (detached)\0")
    assert state.commit is None and state.branch is None and state.upstream is None


def test_error_line_keeps_the_cause_behind_dvcs_summary():
    stderr = (
        "ERROR: failed to transfer '764e' - [Errno 28] No space left on device: '/a' -> '/b'\n"
        "ERROR: failed to push data to the cloud - 1 files failed to upload\n"
    )
    assert error_line(stderr) == (
        "failed to push data to the cloud - 1 files failed to upload"
        " ([Errno 28] No space left on device)"
    )


def test_error_line_takes_the_tools_last_reason():
    stderr = "Running...\nERROR: first\nsome detail\nERROR: failed to push data\n\nHaving any troubles?\n"
    assert error_line(stderr) == "failed to push data"
    assert error_line("fatal: not a git repository\n") == "not a git repository"
    assert error_line("plain noise\n") is None


def test_pull_targets_name_a_stage_only_when_all_its_cached_outputs_are_pulled():
    from dvc_invoke.adapters.dvc.model import by_stage

    tracked = Tracked(
        [
            Output("data/raw", True, "data/raw.dvc"),
            Output("model.pkl", True, "train"),
            Output("eval", True, "evaluate"),
            Output("eval.json", False, "evaluate"),  # in git: not pulled, not counted
            Output("sub/a", True, "sub/dvc.yaml:split"),
            Output("sub/b", True, "sub/dvc.yaml:split"),
        ]
    )
    assert by_stage(tracked, ["data/raw", "model.pkl", "eval"]) == [
        "data/raw.dvc",
        "dvc.yaml:train",
        "dvc.yaml:evaluate",
    ]
    assert by_stage(tracked, ["sub/a"]) == ["sub/a"]  # not all of the stage's outputs
    assert by_stage(tracked, ["sub/a", "sub/b"]) == ["sub/dvc.yaml:split"]
    assert by_stage(tracked, ["data/raw/part-1.csv"]) == ["data/raw/part-1.csv"]  # a path in one
