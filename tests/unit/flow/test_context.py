"""RunContext: the checks begun early run in the background, and the run waits for them."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from invoke import Context

from dvc_invoke.adapters.git import GitState
from dvc_invoke.flow.context import RunContext


@pytest.fixture
def dvc_repo(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_check_begun_early_runs_beside_the_run_and_hands_over_its_result(dvc_repo):
    release, ran_in = threading.Event(), []

    def check():
        ran_in.append(threading.current_thread())
        release.wait(10)
        return GitState(branch="main")

    with RunContext(Context()) as ctx:
        ctx.begin(check)
        assert ctx.checks is not None and not ctx.checks.done()  # the run goes on meanwhile
        release.set()
        assert ctx.checks.result(timeout=10).branch == "main"

    assert ran_in and ran_in[0] is not threading.main_thread()


def test_the_run_ends_only_after_its_checks_and_their_error_is_not_raised_there(dvc_repo):
    finished = []

    def check():
        time.sleep(0.5)
        finished.append(True)
        raise RuntimeError("the fetch failed")

    with RunContext(Context()) as ctx:
        ctx.begin(check)  # the run fails before it asks for the result

    assert finished == [True]
    assert isinstance(ctx.checks.exception(), RuntimeError)


def test_the_settings_are_the_workspaces_validated_once(dvc_repo):
    with RunContext(Context()) as ctx:
        assert ctx.settings is ctx.ws.settings
