"""How a dvc.yaml or DVC's .gitignore changed: judged text against text (`dvcfiles`)."""

from __future__ import annotations

from dvc_invoke.adapters.dvc import dvcfiles

BLOCK = """\
metrics:
- eval/metrics.json
- train/metrics.json
plots:
- train/plots/metrics:
    x: step
stages:
  train:
    cmd: python train.py
    outs: [train, model.pkl]
"""
FLOW = """\
metrics: [eval/metrics.json, train/metrics.json]
plots: [{train/plots/metrics: {x: step}}]
stages:
  train: {cmd: python train.py, outs: [train, model.pkl]}
"""


def ours(path: str) -> bool:
    return path.split("/")[0] in ("train", "eval", "model.pkl")


def test_a_rewrite_in_another_style_is_the_same():
    assert dvcfiles.classify("dvc.yaml", FLOW, BLOCK, ours).kind == "same"


def test_reordered_entries_are_the_same():
    reordered = BLOCK.replace(
        "- eval/metrics.json\n- train/metrics.json", "- train/metrics.json\n- eval/metrics.json"
    )
    assert reordered != BLOCK
    assert dvcfiles.classify("dvc.yaml", BLOCK, reordered, ours).kind == "same"


def test_entries_for_the_runs_outputs_are_its_own():
    added = BLOCK.replace("plots:\n", "plots:\n- train/plots/images\n")
    added += "artifacts:\n  tiny: {path: model.pkl, type: model}\n"

    found = dvcfiles.classify("dvc.yaml", BLOCK, added, ours)

    assert found.kind == "own"
    assert found.entries == ["plots: train/plots/images", "artifacts: tiny"]


def test_entries_for_paths_no_stage_writes_are_not_the_runs():
    added = BLOCK.replace("metrics:\n- eval", "metrics:\n- elsewhere/metrics.json\n- eval")

    found = dvcfiles.classify("sub/dvc.yaml", BLOCK, added, ours)

    assert (found.kind, found.unowned, found.stages) == (
        "other",
        ["sub/elsewhere/metrics.json"],
        False,
    )
    assert "dvcyaml=False" in dvcfiles.dvclive_hint(found)


def test_a_changed_stage_is_not_the_runs():
    found = dvcfiles.classify("dvc.yaml", BLOCK, BLOCK.replace("train.py", "train.py --fast"), ours)

    assert (found.kind, found.stages) == ("other", True)
    assert "edited by hand" in dvcfiles.dvclive_hint(found)


def test_a_file_that_does_not_parse_is_not_the_runs():
    assert dvcfiles.classify("dvc.yaml", BLOCK, "stages: [", ours).kind == "other"


def test_only_dvcs_own_ignore_lines_are_the_runs():
    lines = dvcfiles.dvc_lines("", ["model.pkl", "data/raw", "eval"])
    assert lines == {"/model.pkl", "/eval"}

    assert dvcfiles.foreign_lines("/eval\n", "/eval\n/model.pkl\n", lines) == []
    assert dvcfiles.foreign_lines("/eval\n.env\n", "/eval\n/model.pkl\n", lines) == [".env"]
    assert dvcfiles.foreign_lines("/eval\n", "/eval\n*.tmp\n", lines) == ["*.tmp"]
