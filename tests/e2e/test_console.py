"""What a run prints never decides how it ends: a terminal's encoding, a closed
pipe (`inv ... | head -1`), a terminal that hung up. Real runs, real pipes, a
real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys

import pytest
from helpers import latest, wait_ended, wait_for


def new_training_data(project):
    """A teammate's new row of training data, published: the training pipeline
    then commits, pushes to the DVC remote and to git."""
    with open(project.path / "dataset" / "train.csv", "a") as f:
        f.write("6,12.3\n")
    project.sh(f"{sys.executable} -m dvc add -q dataset/train.csv")
    project.git("commit", "-qam", "More training data")
    project.git("push", "-q")
    return project.git("rev-parse", "HEAD")


def assert_published(project, before, record):
    assert (record["status"], record["committed"], record["git_pushed"]) == (
        "succeeded",
        True,
        True,
    ), record
    assert project.origin_log()[0] == "[DVC] Update training"
    assert project.git("rev-parse", "HEAD") != before
    assert project.git("rev-parse", "origin/main") == project.git("rev-parse", "HEAD")


def _run_to_a_pipe(project, **env):
    """`inv repro --pipeline training` that publishes, its stdout and stderr pipes."""
    new_training_data(project)
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "repro", "--pipeline", "training"],
        cwd=project.path,
        env={**clean, **project.env, "INVOKE_RUN_ECHO": "1", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    return out


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_a_terminal_that_cannot_write_the_marks_gets_ascii_ones_and_the_run_publishes(
    project, encoding
):
    before = new_training_data(project)

    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "repro", "--pipeline", "training"],
        cwd=project.path,
        env={**os.environ, **project.env, "PYTHONIOENCODING": encoding},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    out, err = proc.stdout.decode(encoding), proc.stderr.decode(encoding, "backslashreplace")

    assert proc.returncode == 0, out + err
    assert "Traceback" not in out + err
    assert_published(project, before, latest(project))
    assert "OK training succeeded" in out
    assert re.search(r"branch main at [0-9a-f]+ -> [0-9a-f]+\n", out), out
    if encoding == "ascii":
        assert ">> training - pull" in out
    else:  # latin-1 has » and ·, not ✔
        assert "» training · pull" in out
    # The log is the run's own: the marks as they are.
    log = open(latest(project)["log"], encoding="utf-8").read()
    assert "✔ training succeeded" in log and "» training · publish" in log


def test_a_run_whose_output_pipe_closes_finishes_and_logs_everything(project, slack):
    before = new_training_data(project)

    # A real shell pipe: `head` reads one line and exits, the pipe closes.
    proc = subprocess.run(
        f"{sys.executable} -m invoke repro --pipeline training | head -1",
        shell=True,
        cwd=project.path,
        env={**os.environ, **project.env, **slack.web_api_env()},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr
    record = latest(project)
    assert_published(project, before, record)
    log = open(record["log"]).read()
    assert "the console's stdout went away (Broken pipe): the run goes on" in log
    assert "git push origin HEAD:refs/heads/main" in log
    assert "✔ training succeeded" in log
    (update,) = slack.calls("chat.update")
    assert update.text.startswith("training succeeded")


def test_a_foreground_run_whose_terminal_hangs_up_finishes_and_logs_everything(project, slack):
    before = new_training_data(project)
    # The run in a terminal of its own (a pseudo-terminal, its controlling one):
    # closing the terminal's side hangs it up, and the kernel sends SIGHUP to
    # the run and to every process of its session (dvc, the stage).
    main, side = pty.openpty()

    def controlling_terminal():
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "repro", "--pipeline", "training"],
        cwd=project.path,
        env={
            **os.environ,
            **project.env,
            **slack.web_api_env(),
            "SANDBOX_SLOW": "train:3",
            "SANDBOX_TRACE": str(project.trace_file),
        },
        stdin=side,
        stdout=side,
        stderr=side,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(side)
    seen = b""
    try:
        while b"train: working" not in seen:
            seen += os.read(main, 65536)
        os.killpg(proc.pid, signal.SIGHUP)  # the hangup reaches the whole group
        os.close(main)  # and the terminal is gone: writes fail with EIO
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    record = wait_ended(project)
    assert_published(project, before, record)
    assert project.stages_run() == ["train"]  # the stage itself lived through the hangup
    log = open(record["log"]).read()
    assert "the console's stdout went away" in log
    assert "✔ training succeeded" in log
    (update,) = slack.calls("chat.update")
    assert update.text.startswith("training succeeded")


def test_a_sighup_to_the_run_alone_during_publish_is_not_its_end(project):
    before = new_training_data(project)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "repro", "--pipeline", "training"],
        cwd=project.path,
        env={**os.environ, **project.env, "SANDBOX_SLOW": "train:2"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (r := latest(project)) and r["step"] == "repro", 60, "the repro")
        for _ in range(20):  # through the rest of the run: the stage, dvc push, git push
            if proc.poll() is not None:
                break
            os.kill(proc.pid, signal.SIGHUP)
            wait_for(lambda: True, 0.2)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert proc.returncode == 0, out
    assert_published(project, before, latest(project))


def test_no_color_leaves_no_escape_sequence_in_any_output(project):
    out = _run_to_a_pipe(project, NO_COLOR="1", FORCE_COLOR="1")  # NO_COLOR wins
    assert "git push" in out and "training" in out  # the echo and the steps are there
    assert out.count("\x1b[") == 0, out


def test_force_color_colours_a_pipe_the_echo_included(project):
    out = _run_to_a_pipe(project, FORCE_COLOR="1")
    echoes = [ln for ln in out.splitlines() if "git push" in ln and "\x1b[" in ln]
    assert echoes, out  # invoke's bold echo of the command
    assert "\x1b[1m" in out  # rich's bold, for the steps
    assert out.count("\x1b[") >= 10


def test_a_pipe_without_either_gets_no_colour_from_us(project):
    out = _run_to_a_pipe(project)
    steps = [ln for ln in out.splitlines() if "training" in ln and "»" in ln]
    assert steps and not any("\x1b[" in ln for ln in steps), out
