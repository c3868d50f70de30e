"""The benchmark script runs and reports (its numbers are read, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # a whole sandbox, built and run

BENCH = Path(__file__).parent.parent / "bench" / "bench.py"


def quick_bench(tmp_path, cases, *, timeout):
    """``bench.py --quick --cases CASES``, which must succeed; its process and JSON file."""
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--cases", cases, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, out


def test_the_benchmark_reports_each_case_with_its_ratio_and_target(tmp_path):
    proc, out = quick_bench(tmp_path, "2", timeout=300)

    data = json.loads(out.read_text())
    (case,) = data["cases"]
    assert case["name"].startswith("2. inv --list")
    assert set(case["medians"]) == {"dvc-invoke", "bare invoke"}
    assert case["ratio"] == case["medians"]["dvc-invoke"] / case["medians"]["bare invoke"]
    assert "ratio <= 1.15" in proc.stdout


def test_the_scale_case_plans_every_stage_and_output_of_its_generated_projects(tmp_path):
    proc, out = quick_bench(tmp_path, "4", timeout=600)

    cases = json.loads(out.read_text())["cases"]
    # (pipelines, stages, outputs per stage) of the quick sizes: the plan of the
    # first pipeline finds all its stages and outputs, whatever else is there.
    found = [(c["extra"]["stages"], c["extra"]["outputs"]) for c in cases]
    assert found == [(20, 100), (100, 500), (5, 5), (5, 5)]
    assert "time growth / size growth" in cases[1]["extra"]
    assert "time growth / size growth" in cases[3]["extra"]


def test_the_status_case_times_repro_status_over_many_records(tmp_path):
    proc, out = quick_bench(tmp_path, "10", timeout=600)

    (case,) = json.loads(out.read_text())["cases"]
    assert case["name"] == "10. inv repro.status: 1,000 run records vs none"
    assert case["extra"]["1,000 records (s)"] == round(case["medians"]["1,000 records"], 3)
    assert {"records - none (s)", "CPU, records (s)", "CPU, none (s)", "pass"} <= set(case["extra"])
    assert "1,000 records <= 0.5 s" in proc.stdout


def test_the_sweep_case_times_exp_run_against_dvc_queue_and_the_slack_latency(tmp_path):
    proc, out = quick_bench(tmp_path, "11", timeout=900)

    (case,) = json.loads(out.read_text())["cases"]
    assert case["name"] == (
        "11. inv exp.run: 8 experiments on 2 DVC workers vs dvc exp run --queue"
        " + dvc queue start -j 2"
    )
    assert set(case["medians"]) == {"dvc-invoke", "bare dvc"}
    assert isinstance(case["extra"]["Slack after the last experiment (s)"], float)
    assert len(case["extra"]["Slack latency, each run (s)"]) == 2  # one a run of --quick
    assert "pass" in case["extra"]
    assert "ratio <= 1.05; Slack < 2 s after the last experiment" in proc.stdout
