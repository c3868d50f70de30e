"""A sweep on SLURM: the array and collector it submits (MockContext), SLURM's
task indices, the grid DVC expands, and how each experiment's end is told."""

from __future__ import annotations

import re
import shlex

import pytest
from invoke import Config, MockContext, Result

from dvc_invoke.adapters.dvc.experiments import grid
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.engines import slurm
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow import array
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import Store


@pytest.fixture(autouse=True)
def in_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def mock(run):
    cfg = Config(overrides={"run": {"in_stream": False}, "dvc_invoke": {"dvc": "dvc"}})
    return MockContext(config=cfg, run=run, repeat=True)


def sweep_report(tmp_path, n=6, jobs=3):
    report = RunReport(pipeline="train", command="inv exp.run --pipeline train --slurm")
    report.id, report.log = "RUN-1", str(tmp_path / "RUN-1.log")
    report.sweep = {"grid": [[f"train.lr={i}"] for i in range(n)], "jobs": jobs}
    report.sweep["names"] = [f"grid-{i + 1}" for i in range(n)]
    report.sweep["planned"] = array.planned(report.sweep)
    return report


def test_a_sweep_is_one_throttled_array_then_a_collector_after_any_end(tmp_path):
    c = mock(
        {
            re.compile(r"sbatch .*--array.*"): Result("77\n"),
            re.compile(r"sbatch .*collect-.*"): Result("78\n"),
            re.compile("sbatch .*"): Result("79\n"),
            re.compile("scontrol release .*"): Result(),
        }
    )
    report = sweep_report(tmp_path)
    Store(tmp_path).save(report)  # the record the foreground claimed

    job = slurm.submit(Workspace(c, tmp_path), report, {"partition": "gpu", "gres": "gpu:1"})

    first, second, settle, release = [call.args[0] for call in c.run.call_args_list]
    assert job == "78" and report.sweep["array"] == "77"
    # Held until its collector is accepted and the record holds its experiments.
    assert "--hold" in first and release.endswith("scontrol release 77")
    assert "--dependency=afterany:78" in settle
    assert "--array=0-5%3" in first and "--gres=gpu:1" in first and "--partition=gpu" in first
    assert f"--output={tmp_path}/RUN-1.exp-%a.log" in first
    wrapped = shlex.split(shlex.split(first.split("--wrap ", 1)[1])[0])
    assert wrapped[-4:] == ["dvc_invoke", "sweep-task", str(tmp_path), "RUN-1"]
    # The collector: after the whole array, however it ended; where a run may run, no GPU.
    assert "--dependency=afterany:77" in second and "--partition=gpu" in second
    assert "--gres" not in second and "DVC_INVOKE_RUN=RUN-1" in second
    # The array's id and each experiment's log, in the record before a task runs.
    kept = Store(tmp_path).load("RUN-1")
    assert kept.sweep["array"] == "77" and "planned" not in kept.sweep and kept.step == "run"
    assert [e["log"] for e in kept.experiments][:2] == [
        f"{tmp_path}/RUN-1.exp-0.log",
        f"{tmp_path}/RUN-1.exp-1.log",
    ]


def test_a_collector_slurm_refuses_cancels_the_held_array_and_says_so(tmp_path, monkeypatch):
    refused = Result(stderr="sbatch: error: invalid partition specified: nope\n", exited=1)
    c = mock(
        {
            re.compile(r"sbatch .*--array.*"): Result("77\n"),
            re.compile("sbatch .*"): refused,
            re.compile("scancel .*"): Result(),
        }
    )
    report = sweep_report(tmp_path)
    Store(tmp_path).save(report)
    cancelled: list[str] = []
    monkeypatch.setattr(slurm, "cancel_array", cancelled.append)
    with pytest.raises(DvcInvokeError) as caught:
        slurm.submit(Workspace(c, tmp_path), report, {"partition": "nope"})
    assert cancelled == ["77"]
    assert caught.value.reason == (
        "SLURM refused the job: invalid partition specified: nope"
        " (the sweep's collector; its array 77, held, is cancelled)"
    )


def test_an_array_slurm_refuses_is_one_line_and_no_collector(tmp_path):
    refused = Result(
        stderr="sbatch: error: Batch job submission failed: Invalid job array specification\n",
        exited=1,
    )
    c = mock({re.compile("sbatch .*"): refused})
    with pytest.raises(DvcInvokeError) as caught:
        slurm.submit(Workspace(c, tmp_path), sweep_report(tmp_path, n=5000), {})
    assert caught.value.reason == (
        "SLURM refused the job: Batch job submission failed: Invalid job array specification"
    )
    assert len(c.run.call_args_list) == 1


@pytest.mark.parametrize(
    "said, indices",
    [("0-5%3", [0, 1, 2, 3, 4, 5]), ("0-3,5%3", [0, 1, 2, 3, 5]), ("4", [4]), ("", [])],
)
def test_slurms_task_ranges_are_read_as_indices(said, indices):
    assert slurm._indices(said) == indices


def test_a_grid_is_expanded_as_dvc_queues_it_and_other_files_keep_their_name():
    assert grid(["train.lr=0.1,0.2", "other.yaml:n=1,2"]) == [
        ["train.lr=0.1", "other.yaml:n=1"],
        ["train.lr=0.1", "other.yaml:n=2"],
        ["train.lr=0.2", "other.yaml:n=1"],
        ["train.lr=0.2", "other.yaml:n=2"],
    ]
    with pytest.raises(DvcInvokeError, match="DVC cannot read the -S values: no viable"):
        grid(["train.lr=range("])


def ended(tmp_path, *, task, log=None, exp=None):
    report = sweep_report(tmp_path)
    e = {"name": "grid-2", "state": "queued", "task": 1, "log": str(tmp_path / "t.log")}
    if log is not None:
        (tmp_path / "t.log").write_text(log)
    array.ended(report, e, exp, task)
    return e


def test_a_task_that_failed_says_the_stage_dvc_named(tmp_path):
    log = (
        "ERROR: failed to reproduce 'train': failed to run: python train.py, exited with 1\n"
        f"{array.MARK} grid-2 failed at run: failed to reproduce 'train'\n"
    )
    e = ended(tmp_path, task={"JobState": "FAILED", "ExitCode": "1:0"}, log=log)
    assert (e["state"], e["step"]) == ("failed", "train")
    assert e["reason"].startswith("failed to reproduce 'train' (its log: ")


def test_slurms_own_ends_are_said_in_its_words(tmp_path):
    e = ended(tmp_path, task={"JobState": "TIMEOUT"}, log="training...\n")
    assert e["state"] == "lost" and "time limit (SLURM: TIMEOUT)" in e["reason"]
    e = ended(tmp_path, task={"JobState": "CANCELLED"}, log="training...\n")
    assert e["state"] == "cancelled" and e["step"] is None


def test_a_pending_task_cancelled_leaves_no_trace_and_is_cancelled_not_lost(tmp_path):
    e = ended(tmp_path, task=None)  # SLURM drops it from the array; it wrote no log
    assert e["state"] == "cancelled" and "before it started" in e["reason"]
    e = ended(tmp_path, task=None, log="training...\n")  # it ran: SLURM forgot it since
    assert e["state"] == "lost"


def test_a_task_that_completed_without_its_experiment_on_origin_is_lost(tmp_path):
    e = ended(tmp_path, task={"JobState": "COMPLETED"}, log="done\n")
    assert e["state"] == "lost" and "holds no grid-2" in e["reason"]


def test_a_dry_run_shows_the_line_the_collector_would_run_not_a_dry_one(monkeypatch):
    from dvc_invoke.engines.detached import relaunch_argv

    monkeypatch.setattr("sys.argv", ["/venv/bin/inv", "--dry", "exp.run", "-S", "a=1", "--slurm"])
    assert relaunch_argv()[1:] == ["-m", "invoke", "exp.run", "-S", "a=1", "--slurm"]
