"""Real DVC remotes beyond a folder: S3 (DVC's dvc-s3 against moto's S3 server)
and SSH (dvc-ssh against the suite's sshd), both on 127.0.0.1.

Each: a run's push and its check, a teammate's fresh clone that pulls
everything and finds the pipeline up to date, an outage during the publish
tried again and resumed, and the remote's secret nowhere in what the run
printed, recorded, logged or told Slack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import (
    assert_fresh_clone_up_to_date,
    assert_one_line_error,
    free_port,
    latest,
    records,
    wait_for,
)

MESSAGE = "[DVC] Update model metrics"


def _quick(project, retries: int = 5) -> None:
    """The flow's retries, quick: a first delay of a fifth of a second."""
    (project.path / "invoke.yaml").write_text(
        f"dvc_invoke:\n  retries: {retries}\n  retry_delay: 0.2\n"
    )


def _move_remote(project, url: str, shared: dict[str, str], secret: dict[str, str]) -> None:
    """The project's DVC remote moved to ``url`` (with ``shared`` options), its
    data pushed there and the move published; ``secret`` options (credentials)
    in ``.dvc/config.local``, which git never holds."""
    project.sh(f"dvc remote modify storage url {url}")
    for key, value in shared.items():
        project.sh(f"dvc remote modify storage {key} '{value}'")
    for key, value in secret.items():
        project.sh(f"dvc remote modify --local storage {key} '{value}'")
    project.sh("dvc push")
    project.sh("git commit -q -m 'DVC remote moved' .dvc/config && git push -q")


def _pushed_outputs(project) -> list[str]:
    """The md5s of the metrics pipeline's cached outputs, as its lock file records them."""
    declared = yaml.safe_load((project.path / "metrics" / "dvc.yaml").read_text())
    uncached = {
        name
        for stage in declared["stages"].values()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get(kind, [])
        if isinstance(entry, dict)
        for name, options in entry.items()
        if (options or {}).get("cache") is False
    }
    lock = yaml.safe_load((project.path / "metrics" / "dvc.lock").read_text())
    return [
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out.get("md5") and out["path"] not in uncached
    ]


def _assert_nowhere(secret: str, project, *texts: str, slack=None) -> None:
    """``secret`` in none of ``texts``, the project's run records and logs, nor Slack."""
    assert secret not in "\n".join(texts)
    folder = project.path / ".dvc" / "tmp" / "dvc-invoke"
    written = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    assert written, "the run left no record or log to look in"
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    if slack is not None:
        assert slack.requests, "the run told Slack nothing"
        for request in slack.requests:
            assert secret not in str(request.body), request.method


class Outage:
    """Runs ``inv metrics`` while the remote goes down as the stages end, and comes
    back once the flow said it would try again: ``stop`` and ``start`` the server."""

    def __init__(self, project, tmp_path: Path, stop, start, env=None):
        self.project, self.stop, self.start = project, stop, start
        self.go = tmp_path / "go"
        self.out = tmp_path / "inv.out"
        self.env = {
            **os.environ,
            **project.env,
            "SANDBOX_WAIT": f"evaluate:{self.go}",
            **(env or {}),
        }
        self.env = {k: v for k, v in self.env.items() if not k.startswith("SLACK_")}

    def run(self, slack_env: dict[str, str]) -> tuple[int, str]:
        with open(self.out, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "invoke", "metrics"],
                cwd=self.project.path,
                env={**self.env, **slack_env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            wait_for(lambda: "evaluate" in self.project.stages_run(), 60, "the last stage")
            self.stop()  # the remote goes down as the run is about to publish
            self.go.touch()
            wait_for(lambda: "trying again" in self.out.read_text(), 60, "a retry")
            self.start()
            proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
        return proc.returncode, self.out.read_text()


# -- S3: dvc-s3 against moto's server ----------------------------------------------


class S3Server:
    """moto's S3 server in a thread of this process, on a port of 127.0.0.1; its
    buckets outlive a `stop` (they are this process's), as a real outage leaves them."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._server = ThreadedMotoServer("127.0.0.1", self.port, verbose=False)
        self.up = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()
        self.up = True

    def stop(self) -> None:
        """Down: connections are refused (the listening socket is closed, not only idle)."""
        if self.up:
            self._server.stop()
            self._server._server.server_close()  # type: ignore[union-attr]
            self.up = False

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_project(project, s3_server, monkeypatch):
    """The sandbox's project with its DVC remote in a bucket of moto's S3: the
    credentials in ``.dvc/config.local``; a teammate has them in the environment."""
    if not s3_server.up:
        s3_server.start()
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    bucket = f"team-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    # Nothing of the machine's own AWS set-up, and one try per request: the flow retries.
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    empty = project.path.parent / "aws-config"
    empty.write_text("")
    aws = {
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
    }
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    _move_remote(
        project,
        f"s3://{bucket}/dvc-store",
        shared={"endpointurl": s3_server.url},
        secret={"access_key_id": "AKIATEAMKEY", "secret_access_key": secret},
    )
    project.s3 = (s3_server, bucket, secret)
    return project


def _s3_holds(server: S3Server, bucket: str, md5s: list[str]) -> list[str]:
    keys = {
        obj["Key"]
        for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    }
    return [m for m in md5s if f"dvc-store/files/md5/{m[:2]}/{m[2:]}" not in keys]


def _teammate_has_s3_credentials(monkeypatch, secret: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATEAMKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)


def test_a_run_publishes_to_s3_and_a_teammate_pulls_it(s3_project, slack, monkeypatch):
    server, bucket, secret = s3_project.s3

    run = s3_project.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert "dvc push metrics" in run.stdout
    assert "dvc status --cloud --json metrics" in run.stdout  # the push's check
    assert s3_project.origin_log()[0] == MESSAGE
    md5s = _pushed_outputs(s3_project)
    assert md5s and _s3_holds(server, bucket, md5s) == []
    assert latest(s3_project)["status"] == "succeeded"
    _teammate_has_s3_credentials(monkeypatch, secret)
    problems = s3_project.fresh_clone_problems()
    assert problems == [], "\n".join(problems)
    _assert_nowhere(secret, s3_project, run.output, slack=slack)


def test_an_s3_outage_during_the_publish_is_tried_again_and_resumes(
    s3_project, slack, monkeypatch, tmp_path
):
    server, bucket, secret = s3_project.s3
    _quick(s3_project)
    outage = Outage(s3_project, tmp_path, server.stop, server.start)

    code, output = outage.run(slack.web_api_env())

    assert code == 0, output
    assert "dvc push: " in output and "Could not connect to the endpoint URL" in output
    assert "trying again in 0.2s (1/5)" in output
    assert "Traceback" not in output
    assert s3_project.origin_log()[0] == MESSAGE
    assert _s3_holds(server, bucket, _pushed_outputs(s3_project)) == []
    assert [r["status"] for r in records(s3_project)] == ["succeeded"]
    _teammate_has_s3_credentials(monkeypatch, secret)
    assert_fresh_clone_up_to_date(s3_project)
    _assert_nowhere(secret, s3_project, output, slack=slack)


def test_an_s3_bucket_that_is_not_there_is_not_tried_again(s3_project):
    server, bucket, secret = s3_project.s3
    _quick(s3_project)
    s3_project.sh("dvc remote modify storage url s3://no-such-bucket-here/dvc-store")
    s3_project.sh("git commit -q -m 'A bucket that is not there' .dvc/config && git push -q")

    run = s3_project.inv("metrics", "--skip", "dvc-remote")

    assert "trying again" not in run.output
    assert_one_line_error(run, "dvc push failed", "NoSuchBucket", "inv publish --pipeline metrics")
    assert secret not in run.output


# -- SSH: dvc-ssh against the suite's sshd -----------------------------------------


@pytest.fixture
def ssh_server(tmp_path, isolated_environment):
    """A real sshd of this test's own (it goes down and comes back here)."""
    from conftest import _needs
    from sshd_server import Sshd, available

    _needs("sshd", available())
    server = Sshd(tmp_path / "sshd").start(aliases=("storage-host",))
    yield server
    server.stop()


@pytest.fixture
def ssh_project(project, ssh_server, tmp_path):
    """The sandbox's project with its DVC remote on the sshd, reached with a key
    whose passphrase is in ``.dvc/config.local`` (a teammate's clone holds it there too)."""
    passphrase = f"pa55-{uuid.uuid4().hex}"
    key = tmp_path / "dvc_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)], check=True
    )
    with open(ssh_server.base / "authorized_keys", "a") as keys:
        keys.write(Path(f"{key}.pub").read_text())
    store = tmp_path / "ssh-store"
    store.mkdir()
    secret = {
        "user": os.environ.get("USER") or "root",
        "keyfile": str(key),
        "passphrase": passphrase,
    }
    _move_remote(project, f"ssh://127.0.0.1:{ssh_server.port}{store}", shared={}, secret=secret)
    project.ssh = (ssh_server, store, passphrase, secret)
    return project


def _store_holds(store: Path, md5s: list[str]) -> list[str]:
    return [m for m in md5s if not (store / "files" / "md5" / m[:2] / m[2:]).is_file()]


def _teammate_clone_problems(project, secret: dict[str, str], monkeypatch) -> list[str]:
    """A fresh clone's problems, its ``.dvc/config.local`` given the same login."""
    cloned = project.clone

    def clone_with_login(name):
        made = cloned(name)
        for key, value in secret.items():
            made.sh(f"dvc remote modify --local storage {key} '{value}'")
        return made

    monkeypatch.setattr(project, "clone", clone_with_login)
    return project.fresh_clone_problems()


def test_a_run_publishes_over_ssh_and_a_teammate_pulls_it(ssh_project, slack, monkeypatch):
    server, store, passphrase, secret = ssh_project.ssh

    run = ssh_project.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert "dvc push metrics" in run.stdout
    assert "dvc status --cloud --json metrics" in run.stdout
    assert ssh_project.origin_log()[0] == MESSAGE
    md5s = _pushed_outputs(ssh_project)
    assert md5s and _store_holds(store, md5s) == []
    problems = _teammate_clone_problems(ssh_project, secret, monkeypatch)
    assert problems == [], "\n".join(problems)
    _assert_nowhere(passphrase, ssh_project, run.output, slack=slack)


def test_an_ssh_outage_during_the_publish_is_tried_again_and_resumes(
    ssh_project, slack, tmp_path, monkeypatch
):
    server, store, passphrase, secret = ssh_project.ssh
    _quick(ssh_project)
    outage = Outage(ssh_project, tmp_path, server.stop, server.resume)

    code, output = outage.run(slack.web_api_env())

    assert code == 0, output
    assert "dvc push: " in output and "Connect call failed" in output
    assert "trying again in 0.2s (1/5)" in output
    assert "Traceback" not in output
    assert ssh_project.origin_log()[0] == MESSAGE
    assert _store_holds(store, _pushed_outputs(ssh_project)) == []
    assert [r["status"] for r in records(ssh_project)] == ["succeeded"]
    problems = _teammate_clone_problems(ssh_project, secret, monkeypatch)
    assert problems == [], "\n".join(problems)
    _assert_nowhere(passphrase, ssh_project, output, slack=slack)
