"""A stage that prints a lot: its output reaches the console and the run's
log whole, as it comes; the flow keeps only its end (`output`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from helpers import latest, wait_for

LINE = 55  # bytes per line the sandbox's stage prints (SANDBOX_PRINT)


# `inv repro --pipeline training --force`, then the flow's own peak RSS (KiB) to a file.
MEASURED = """\
import atexit, resource, sys
where = sys.argv.pop(1)
atexit.register(lambda: open(where, "w").write(
    str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
from invoke.main import program
program.run(["inv", "repro", "--pipeline", "training", "--force"])
"""


def measured_run(project, mib: float, tmp_path):
    rss = tmp_path / f"rss-{mib}"
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED, str(rss)],
        cwd=project.path,
        env={**os.environ, **project.env, "SANDBOX_PRINT": f"train:{mib}"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=600,
    )
    return proc, int(rss.read_text()) / 1024


def test_a_stage_printing_30_mb_reaches_console_and_log_whole_and_the_flow_keeps_its_end(
    project, tmp_path
):
    quiet, quiet_rss = measured_run(project, 0.01, tmp_path)
    loud, loud_rss = measured_run(project, 30, tmp_path)

    assert quiet.returncode == 0 and loud.returncode == 0, loud.stderr.decode()
    steps = 30 * 1024 * 1024 // LINE
    assert loud.stdout.count(b"train step ") == steps
    log = open(latest(project)["log"], "rb").read()
    assert log.count(b"train step ") == steps
    assert f"train step {steps - 1:08d}".encode() in log  # the last line too
    # Nothing of the 30 MB stays in the flow: its peak memory is that of a quiet run.
    assert loud_rss - quiet_rss < 15, (quiet_rss, loud_rss)


def test_a_failing_loud_stage_keeps_dvcs_error_and_the_end_of_its_output(project, slack):
    env = {"SANDBOX_PRINT": "train:5", "SANDBOX_FAIL": "train", **slack.web_api_env()}

    run = project.inv("repro", "--pipeline", "training", "--force", env=env)

    assert run.returncode == 1
    assert run.stderr.splitlines()[-1].startswith(
        "dvc-invoke: repro failed: failed to reproduce 'training/dvc.yaml:train'"
    )
    record = latest(project)
    assert record["status"] == "failed"
    assert "train: failed on purpose (SANDBOX_FAIL)" in run.stderr
    _, reply = slack.calls("chat.postMessage")  # the end of the log, in the run's thread
    assert "failed to run: python train.py, exited with 1" in reply.blocks_text
    assert "train step " in reply.blocks_text


def test_a_cancel_while_a_stage_pours_out_output_stops_it(project):
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "repro", "--pipeline", "training", "--force"],
        cwd=project.path,
        env={**os.environ, **project.env, "SANDBOX_PRINT": "train:2000"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        log = wait_for(lambda: (r := latest(project)) and r["step"] == "repro" and r["log"], 60)
        wait_for(lambda: os.path.getsize(log) > 20 * 1024 * 1024, 120, "20 MB of output")

        cancel = project.inv("repro.cancel", "--timeout", "30")

        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert cancel.returncode == 0, cancel.output
    record = latest(project)
    assert (record["status"], record["step"]) == ("cancelled", "repro")
    assert proc.returncode == 130
    assert os.path.getsize(log) < 2000 * 1024 * 1024  # stopped mid-stage, not drained
