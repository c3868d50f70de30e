"""The host's side of a run over SSH: its GPUs, and the line that tells the laptop the run id."""

from __future__ import annotations

import json

from dvc_invoke.engines.ssh_agent import (
    ENV_TELL,
    STARTED,
    parse_gpus,
    started,
    started_line,
    tell_started,
)


def test_gpus_in_use_are_counted_from_nvidia_smi_csv():
    # nvidia-smi --query-gpu=uuid: one line per GPU; --query-compute-apps=gpu_uuid,pid,
    # used_memory: one line per process, nothing (exit 0) when none runs.
    gpus = "GPU-de99aa\nGPU-77bb01\n"
    assert parse_gpus(gpus, "") == (2, 0)
    assert parse_gpus(gpus, "GPU-de99aa, 4242, 30000\nGPU-de99aa, 4243, 100\n") == (2, 1)


def test_the_started_line_is_one_json_object_after_the_marker():
    line = started_line("20260101-120000-train-ab12", "4711")
    assert "\n" not in line and line.startswith(STARTED)
    assert json.loads(line[len(STARTED) :]) == {"run": "20260101-120000-train-ab12", "job": "4711"}


def test_the_started_line_reads_back_among_other_output():
    out = "noise\n" + started_line("r-1") + "\nlog:     /x\n"
    assert started(out) == {"run": "r-1", "job": None}


def test_the_last_started_line_wins():
    out = started_line("r-1") + "\n" + started_line("r-2", "9") + "\n"
    assert started(out) == {"run": "r-2", "job": "9"}


def test_console_text_alone_is_no_run_id():
    assert started("metrics is running in the background as run 20260101-120000-m-ab12\n") is None
    assert started("") is None


def test_a_damaged_started_line_is_no_run_id():
    assert started(STARTED + "{not json\n") is None
    assert started(STARTED + '{"run": ""}\n') is None
    assert started(STARTED + '["r-1"]\n') is None
    assert started("  " + started_line("r-1")) is None  # the marker starts the line


def test_a_run_tells_its_id_only_when_the_laptop_asked(monkeypatch, capsys):
    monkeypatch.delenv(ENV_TELL, raising=False)
    tell_started("r-1")
    assert capsys.readouterr().out == ""
    monkeypatch.setenv(ENV_TELL, "1")
    tell_started("r-1", "42")
    assert started(capsys.readouterr().out) == {"run": "r-1", "job": "42"}
