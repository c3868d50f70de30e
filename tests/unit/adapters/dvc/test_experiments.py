"""DVC's experiments as `dvc exp show --json` prints them, and the -S values a sweep takes."""

from __future__ import annotations

import json

import pytest

from dvc_invoke.adapters.dvc import experiments as dvcexp
from dvc_invoke.errors import DvcInvokeError

BASE = "1ea679362e815851cec6de11b2d69820db0867ce"
SHOW = [
    {
        "rev": "workspace",
        "name": None,
        "data": {"params": {}, "metrics": {}},
        "error": None,
        "experiments": None,
    },
    {
        "rev": BASE,
        "name": "main",
        "data": {
            "params": {"params.yaml": {"data": {"train": {"lr": 0.1, "n": 5}}}},
            "metrics": {"metrics.json": {"data": {"acc": 0.5}}},
        },
        "error": None,
        "experiments": [
            {
                "name": "sw-1",
                "executor": {
                    "state": "success",
                    "name": "dvc-task",
                    "local": {"pid": 11, "returncode": 0, "log": "/x/a.out"},
                },
                "revs": [
                    {
                        "rev": "a344d0b4",
                        "name": "sw-1",
                        "data": {
                            "params": {"params.yaml": {"data": {"train": {"lr": 0.2, "n": 3}}}},
                            "metrics": {"metrics.json": {"data": {"acc": 0.6}}},
                        },
                        "error": None,
                    }
                ],
            },
            {
                "name": "sw-3",
                "executor": {
                    "state": "failed",
                    "name": None,
                    "local": {"pid": 12, "returncode": 255, "log": "/x/b.out"},
                },
                "revs": [
                    {
                        "rev": "45611067",
                        "name": "sw-3",
                        "data": {
                            "params": {"params.yaml": {"data": {"train": {"lr": 0.5}}}},
                            "metrics": {"metrics.json": {"data": {"acc": 0.5}}},
                        },
                        "error": {"msg": "Experiment run failed"},
                    }
                ],
            },
        ],
    },
]


def test_exp_show_json_is_read_with_file_qualified_names_and_a_failure_has_no_metrics():
    (base,) = dvcexp.parse_show(json.dumps(SHOW))

    assert base.rev == BASE and base.name == "main"
    assert base.params == {"params.yaml:train.lr": 0.1, "params.yaml:train.n": 5}
    assert base.metrics == {"metrics.json:acc": 0.5}
    ok, failed = base.experiments
    assert (ok.name, ok.state, ok.pid, ok.log) == ("sw-1", "success", 11, "/x/a.out")
    assert ok.metrics == {"metrics.json:acc": 0.6}
    # DVC shows a failed experiment with its baseline's metrics: none of its own.
    assert (failed.state, failed.returncode, failed.metrics) == ("failed", 255, {})


def test_the_names_dvc_queued_and_the_keys_of_each_set():
    out = "Queueing with overrides ...\nQueued experiment 'sw-1' for future execution.\nQueued experiment 'sw-2' for future execution.\n"
    assert dvcexp.queued_names(out) == ["sw-1", "sw-2"]
    assert dvcexp.set_keys(["train.lr=0.1,0.2", "conf/p.yaml:model.depth=3", "+train.new=1"]) == [
        ("params.yaml", "train.lr"),
        ("conf/p.yaml", "model.depth"),
    ]
    with pytest.raises(DvcInvokeError, match="KEY=VALUE"):
        dvcexp.set_keys(["train.lr"])


def test_a_set_no_stage_reads_is_named():
    read = {"params.yaml": {"train.lr", "prepare"}, "other.yaml": None}
    sets = [
        "train.lr=1",
        "train=2",
        "prepare.seed=3",
        "eval.k=4",
        "other.yaml:x=5",
        "nope.yaml:y=6",
    ]
    assert dvcexp.unread(sets, read) == ["params.yaml:eval.k", "nope.yaml:y"]


def test_a_key_its_params_file_lacks_is_named(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.1\n  opt:\n    name: sgd\n")
    sets = ["train.lr=1", "train.opt.name=adam", "train.epochs=3", "+train.new=1", "other.yaml:x=1"]
    assert dvcexp.absent(tmp_path, sets) == ["params.yaml:train.epochs"]
