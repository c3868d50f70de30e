"""DVC commands run by DVC's own CLI entry point in this process (`inprocess`):
invoke's echo, --dry, hide and Result as for a subprocess, DVC's output where
c.run sends it, the streams put back after, and Ctrl-C stopping DVC."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from invoke import Config, Context

from dvc_invoke.adapters import reasons
from dvc_invoke.adapters.dvc import inprocess
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.errors import Cancelled, DvcInvokeError
from dvc_invoke.flow.interrupts import Interrupts


@pytest.fixture
def calls(monkeypatch):
    """The argv of each DVC command run in this process (DVC's real entry point)."""
    import dvc.cli

    seen = []
    real = dvc.cli.main

    def main(argv=None):
        seen.append(list(argv))
        return real(argv)

    monkeypatch.setattr(dvc.cli, "main", main)
    return seen


def workspace(project, monkeypatch, **config):
    monkeypatch.chdir(project.path)
    overrides = {"run": {"in_stream": False, **config.pop("run", {})}, "dvc_invoke": config}
    return Workspace(Context(Config(overrides=overrides)), project.path)


def handler_streams():
    return [(h, h.stream) for n in ("dvc", "dvc_data") for h in logging.getLogger(n).handlers]


def s3_remote_on_a_closed_port(project, monkeypatch):
    """The project's default DVC remote: S3 at a port of 127.0.0.1 nothing listens on."""
    from helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    project.sh(
        f"dvc remote add -d -f gone s3://bucket/store && dvc remote modify gone endpointurl {url}"
    )
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "1",  # botocore's own retries: one try, the flow's retries
    }.items():
        monkeypatch.setenv(key, value)


def test_a_dvc_command_runs_here_with_invokes_echo_and_result(
    canonical, monkeypatch, calls, capsys
):
    ws = workspace(canonical, monkeypatch)
    streams, before = (sys.stdout, sys.stderr), handler_streams()

    res = ws.probe(f"{ws.dvc} status --json")
    assert calls == [["status", "--json"]]
    assert res.ok and json.loads(res.stdout) == {}
    assert capsys.readouterr().out == ""  # a probe shows nothing

    ws.act(f"{ws.dvc} status", step="repro")
    out = capsys.readouterr().out
    # As invoke echoes, without its bold: captured output is no terminal.
    assert out.splitlines()[0] == f"{ws.dvc} status"
    assert "Data and pipelines are up to date." in out
    assert (sys.stdout, sys.stderr) == streams and handler_streams() == before


def test_a_failing_dvc_command_is_a_failure_with_dvcs_own_reason(canonical, monkeypatch, calls):
    ws = workspace(canonical, monkeypatch)

    with pytest.raises(DvcInvokeError) as failed:
        ws.act(f"{ws.dvc} pull no/such/file", step="pull")

    assert calls == [["pull", "no/such/file"]]
    assert failed.value.step == "pull"
    assert "no/such/file" in failed.value.reason
    assert "ERROR" in (failed.value.log or "")


def test_an_s3_endpoint_that_cannot_be_reached_is_tried_again_by_type(
    canonical, monkeypatch, calls, capsys
):
    s3_remote_on_a_closed_port(canonical, monkeypatch)
    ws = workspace(canonical, monkeypatch, retries=1, retry_delay=0.1)

    with pytest.raises(DvcInvokeError) as failed:
        ws.act(f"{ws.dvc} push", step="dvc push", network=True)

    # botocore's words match none of the text a network failure is known by
    assert "Could not connect to the endpoint URL" in failed.value.reason
    assert not reasons.transient(failed.value.log)
    assert failed.value.transient is True
    assert calls == [["push"]] * 2
    assert "trying again in 0.1s (1/1)" in capsys.readouterr().out


def test_the_exceptions_behind_a_failure_are_kept_and_a_refusal_is_not_tried_again(
    canonical, monkeypatch, calls, tmp_path
):
    import botocore.exceptions

    s3_remote_on_a_closed_port(canonical, monkeypatch)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credentials from anywhere
    (tmp_path / "aws").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws"))
    ws = workspace(canonical, monkeypatch, retries=2, retry_delay=0.1)

    res = ws.probe(f"{ws.dvc} status --cloud")
    assert res.failed
    assert any(isinstance(e, botocore.exceptions.NoCredentialsError) for e in res.exceptions)
    with pytest.raises(DvcInvokeError) as failed:
        ws.act(f"{ws.dvc} push", step="dvc push", network=True)
    assert failed.value.transient is False
    assert calls[1:] == [["push"]]  # once: no credentials is not a moment's failure
    assert "Traceback" not in (failed.value.log or "")


def test_a_dry_run_shows_the_command_and_runs_nothing(canonical, monkeypatch, calls, capsys):
    ws = workspace(canonical, monkeypatch, run={"dry": True})

    ws.act(f"{ws.dvc} push", step="publish")

    assert calls == []
    assert capsys.readouterr().out == f"{ws.dvc} push\n"


def test_a_configured_dvc_executable_runs_as_a_process(canonical, monkeypatch, calls):
    ws = workspace(canonical, monkeypatch, dvc=sys.executable.rsplit("/", 1)[0] + "/dvc")

    assert ws.probe(f"{ws.dvc} status --json").ok
    assert calls == []


def test_ctrl_c_stops_dvc_running_here_and_cancels_the_step(canonical, monkeypatch, calls):
    """DVC waits on a remote that never answers; Ctrl-C stops it as it stops the
    dvc command (252), and the step is cancelled, not failed."""

    class Silent(BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            time.sleep(30)

        do_GET = do_POST = do_HEAD  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ws = workspace(canonical, monkeypatch)
    canonical.sh(f"dvc remote add silent http://127.0.0.1:{server.server_address[1]}/store")
    canonical.sh("dvc gc -f -w -c -q")  # nothing cached: status must ask the remote

    timer = threading.Timer(
        2.0, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    )
    started = time.monotonic()
    try:
        with Interrupts() as interrupts, ws.running(stops=interrupts):
            timer.start()
            with pytest.raises(Cancelled) as cancelled:
                ws.act(f"{ws.dvc} status --cloud -r silent", step="pull")
    finally:
        timer.cancel()
        server.shutdown()

    assert calls == [["status", "--cloud", "-r", "silent"]]
    assert "interrupted (SIGINT)" in cancelled.value.reason
    assert time.monotonic() - started < 20
    assert not inprocess.running()


def test_a_dvc_of_another_environment_first_on_path_runs_as_a_process(
    canonical, monkeypatch, calls, tmp_path
):
    """The dvc a shell would run is not the one this Python imports: one run must
    not mix two DVCs on one cache, so every command goes to that one."""
    other = tmp_path / "other-env"
    other.mkdir()
    (other / "dvc").write_text(f'#!/bin/sh\nexec {sys.executable} -m dvc "$@"\n')
    (other / "dvc").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}:{os.environ['PATH']}")
    ws = workspace(canonical, monkeypatch)

    assert ws.probe(f"{ws.dvc} status --json").ok
    assert calls == []


def test_an_environment_for_commands_runs_dvc_as_a_process(canonical, monkeypatch, calls):
    ws = workspace(canonical, monkeypatch, run={"env": {"AWS_PROFILE": "ml"}})

    assert ws.probe(f"{ws.dvc} status --json").ok
    assert calls == []
