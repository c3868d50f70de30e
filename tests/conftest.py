"""Real git, real DVC, real processes, in temporary folders.

Each test gets its own copy of a sandbox project (``dvc_invoke.sandbox``):
a bare git origin, a local folder as DVC remote, a clone with tracked data
and two pipelines. ``inv`` runs as a subprocess, exactly as a user types it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import records
from invoke import Context

from dvc_invoke.cli import sandbox
from dvc_invoke.testing import Project as BaseProject
from dvc_invoke.testing.plugin import isolated

BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Keep dvc and git away from the machine's own config and caches."""
    home = tmp_path_factory.mktemp("home")
    env = {
        **isolated(home),  # the plugin's own isolation, for the whole session here
        "NO_PROXY": "127.0.0.1,localhost",
        # The stage commands run `python`; `dvc` is the one installed here.
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@dataclass
class Project(BaseProject):
    """A checkout of the sandbox (`dvc_invoke.testing.Project`), with the stages it ran."""

    sandbox: sandbox.Sandbox | None = None
    trace_file: Path | None = None

    def stages_run(self) -> list[str]:
        if self.trace_file is None or not self.trace_file.exists():
            return []
        return self.trace_file.read_text().split()


@pytest.fixture(scope="session")
def template(tmp_path_factory, isolated_environment) -> sandbox.Sandbox:
    base = tmp_path_factory.mktemp("template") / "sandbox"
    return sandbox.create(Context(), base, trained=True)


@pytest.fixture
def project(template, tmp_path) -> Project:
    """The sandbox's own checkout: trained, data in its workspace and cache."""
    return _copy(template, tmp_path)


@pytest.fixture(scope="session")
def canonical_template(tmp_path_factory, isolated_environment) -> sandbox.Sandbox:
    base = tmp_path_factory.mktemp("canonical") / "sandbox"
    return sandbox.create_canonical(Context(), base, trained=True)


@pytest.fixture
def canonical(canonical_template, tmp_path) -> Project:
    """A checkout of DVC's get-started layout: trained and published, data in place."""
    return _copy(canonical_template, tmp_path)


@pytest.fixture
def canonical_fresh(canonical) -> Project:
    """A teammate's fresh clone of the get-started layout: code only, no data."""
    return canonical.clone("teammate")


def _copy(template: sandbox.Sandbox, tmp_path: Path, into: Path | None = None) -> Project:
    base = (into or tmp_path) / "sandbox"
    shutil.copytree(template.base, base, symlinks=True)
    sb = sandbox.Sandbox(base, base / "origin.git", base / "dvc-remote", base / "project")
    subprocess.run(
        ["git", "remote", "set-url", "origin", str(sb.origin)], cwd=sb.project, check=True
    )
    trace = tmp_path / "stages-run.txt"
    env = {"SANDBOX_TRACE": str(trace)}
    return Project(sb.project, sb.origin, sb.remote, env, sandbox=sb, trace_file=trace)


@pytest.fixture
def small_disk(template, tmp_path) -> Project:
    """The sandbox's checkout, its origin and DVC remote on a small filesystem of
    their own (a 16 MiB tmpfs: mounting one needs root), for a stage to fill."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    said = done.stderr.decode().strip()
    _needs("a full-disk test", f"cannot mount a tmpfs here: {said}" if done.returncode else None)
    try:
        yield _copy(template, tmp_path, into=mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def fresh(project) -> Project:
    """A teammate's fresh clone: no data in its workspace or cache."""
    return project.clone("teammate")


def _needs(engine: str, missing: str | None) -> None:
    """Skip a test whose engine is not installed here, with why; under CI, fail it."""
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{engine} must run under CI: {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory, isolated_environment):
    """A real one-node SLURM cluster for this test worker (see slurm_cluster.py)."""
    from slurm_cluster import Cluster, available

    _needs("SLURM", available())
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    cluster = Cluster(tmp_path_factory.mktemp("slurm"), f"test-{worker}").start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory, isolated_environment):
    """A real OpenSSH server on 127.0.0.1: hosts gpu-1 and gpu-2 (see sshd_server.py)."""
    from sshd_server import Sshd, available

    _needs("sshd", available())
    identity = {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "dvc-invoke host"), ("EMAIL", "host@dvc-invoke.invalid"))
    }
    # A hostile ~/.bashrc, as `pyenv init` or `conda init` make one: a python of
    # its own first on PATH, in every bash that sshd starts.
    home = tmp_path_factory.mktemp("ssh-home")
    decoy = home / "decoy-bin"
    decoy.mkdir()
    for name in ("python", "python3", "dvc"):
        (decoy / name).write_text('#!/bin/sh\necho "the decoy $0 of ~/.bashrc" >&2\nexit 97\n')
        (decoy / name).chmod(0o755)
    (home / ".bashrc").write_text(f'export PATH="{decoy}:$PATH"\n')
    server = Sshd(tmp_path_factory.mktemp("sshd")).start(env={**identity, "HOME": str(home)})
    yield server
    server.stop()


@pytest.fixture
def slack(fake_slack):
    """The stand-in Slack of dvc-invoke's pytest plugin (``fake_slack``), as these tests name it."""
    return fake_slack


# Tests that build a real project (git, dvc, an origin, a DVC remote) and run
# `inv` in it: the end-to-end scenarios, in tests/e2e. `pytest tests/unit` is the inner loop.
E2E_FIXTURES = {
    "template",
    "project",
    "fresh",
    "canonical_template",
    "canonical",
    "canonical_fresh",
    "small_disk",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "e2e" in item.path.parts or E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def no_process_left_behind(request):
    """Whatever happens in a test, no run of it outlives it."""
    yield
    funcargs = request.node.funcargs
    project = funcargs.get("project") or funcargs.get("canonical")
    if project is None:
        return
    for record in records(project):
        if record.get("detached") and record.get("pgid"):
            try:
                os.killpg(record["pgid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
