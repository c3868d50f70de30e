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
from helpers import Run, records
from invoke import Context

from dvc_invoke import sandbox

BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Keep dvc and git away from the machine's own config and caches."""
    home = tmp_path_factory.mktemp("home")
    env = {
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_TERMINAL_PROMPT": "0",
        "NO_PROXY": "127.0.0.1,localhost",
        # The stage commands run `python`; `dvc` is the one installed here.
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    (home / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@dataclass
class Project:
    """A checkout of the sandbox, with the means to drive and inspect it."""

    path: Path
    sandbox: sandbox.Sandbox
    trace_file: Path

    def inv(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
        proc = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=cwd or self.path,
            env={**clean, "SANDBOX_TRACE": str(self.trace_file), **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def sh(self, cmd: str, *, check: bool = True) -> str:
        proc = subprocess.run(
            cmd, shell=True, cwd=self.path, capture_output=True, text=True, timeout=300
        )
        if check and proc.returncode:
            raise AssertionError(f"{cmd!r} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def git(self, *args: str) -> str:
        return self.sh("git " + " ".join(_q(a) for a in args)).strip()

    def origin_log(self, branch: str = "main") -> list[str]:
        out = subprocess.run(
            ["git", "--git-dir", str(self.sandbox.origin), "log", "--format=%s", branch],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.splitlines()

    def stages_run(self) -> list[str]:
        if not self.trace_file.exists():
            return []
        return self.trace_file.read_text().split()

    def clone(self, name: str) -> Project:
        """A teammate's fresh clone beside this one: code only, data in the DVC remote."""
        dest = self.sandbox.base / name
        sandbox.clone(Context(), self.sandbox, dest)
        return Project(dest, self.sandbox, self.trace_file)


def _q(word: str) -> str:
    import shlex

    return shlex.quote(word)


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


def _copy(template: sandbox.Sandbox, tmp_path: Path) -> Project:
    base = tmp_path / "sandbox"
    shutil.copytree(template.base, base, symlinks=True)
    sb = sandbox.Sandbox(base, base / "origin.git", base / "dvc-remote", base / "project")
    subprocess.run(
        ["git", "remote", "set-url", "origin", str(sb.origin)], cwd=sb.project, check=True
    )
    return Project(sb.project, sb, tmp_path / "stages-run.txt")


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
    server = Sshd(tmp_path_factory.mktemp("sshd")).start(env=identity)
    yield server
    server.stop()


@pytest.fixture
def slack():
    """A stand-in Slack server on 127.0.0.1 for one test."""
    from slack_server import SlackServer

    with SlackServer() as server:
        yield server


# Tests that build a real project (git, dvc, an origin, a DVC remote) and run
# `inv` in it: the end-to-end scenarios. `pytest -m "not e2e"` is the inner loop.
E2E_FIXTURES = {
    "template",
    "project",
    "fresh",
    "canonical_template",
    "canonical",
    "canonical_fresh",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
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
