"""A throw-away DVC project to test a team's pipeline tasks against: real git, real DVC.

`build` lays out, under one folder: ``origin.git`` (a bare repository, the
team's origin), ``dvc-remote`` (a local folder, the default DVC remote) and
``project`` (a checkout with the team's files, ``dvc init``-ed, its data
``dvc add``-ed, committed and pushed to both). `Project` runs ``inv`` in it
as a user types it, and inspects origin and the DVC remote.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    """A finished ``inv`` process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Project:
    """A checkout of a throw-away project, beside its origin and its DVC remote."""

    path: Path
    origin: Path
    remote: Path
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # for every `inv`

    def inv(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Run:
        """``inv ARGS`` in the project, as a subprocess (no Slack unless ``env`` sets it)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
        proc = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=cwd or self.path,
            env={**clean, **self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def sh(self, cmd: str, *, check: bool = True) -> str:
        """A shell command in the project; its stdout (a failure raises, with its output)."""
        proc = subprocess.run(
            cmd, shell=True, cwd=self.path, capture_output=True, text=True, timeout=900
        )
        if check and proc.returncode:
            raise AssertionError(f"{cmd!r} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def git(self, *args: str) -> str:
        return self.sh("git " + " ".join(shlex.quote(a) for a in args)).strip()

    def origin_log(self, branch: str = "main") -> list[str]:
        """The subjects of the commits on origin's ``branch``, newest first."""
        out = subprocess.run(
            ["git", "--git-dir", str(self.origin), "log", "--format=%s", branch],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.splitlines()

    def remote_objects(self) -> set[str]:
        """The hashes of the objects in the DVC remote."""
        found = set()
        for path in self.remote.rglob("*"):
            if path.is_file():
                rel = path.relative_to(self.remote).parts
                found.add("".join(rel[-2:]).removesuffix(".dir"))
        return found

    def clone(self, name: str) -> Project:
        """A teammate's fresh clone beside this one: code only, the data in the DVC remote."""
        dest = self.path.parent / name
        subprocess.run(
            ["git", "clone", "-q", str(self.origin), str(dest)], check=True, capture_output=True
        )
        _identify(dest)
        return dataclasses.replace(self, path=dest)

    def fresh_clone_problems(self, name: str = "check-clone") -> list[str]:
        """What stops a fresh clone of origin from pulling everything and finding
        every pipeline up to date (the invariant after anything publishes)."""
        clone = self.clone(name)
        problems = []
        pulled = subprocess.run(
            [sys.executable, "-m", "dvc", "pull", "-q"],
            cwd=clone.path,
            capture_output=True,
            text=True,
        )
        if pulled.returncode:
            problems.append(f"dvc pull: {pulled.stderr.strip()}")
        status = subprocess.run(
            [sys.executable, "-m", "dvc", "status"], cwd=clone.path, capture_output=True, text=True
        ).stdout
        if "Data and pipelines are up to date" not in status:
            problems.append(f"dvc status: {status.strip()}")
        changed = clone.git("status", "--porcelain")
        if changed:
            problems.append(f"git status: {changed}")
        return problems


def _identify(repo: Path) -> None:
    for key, value in (("user.name", "dvc-invoke test"), ("user.email", "test@dvc-invoke.invalid")):
        subprocess.run(["git", "config", key, value], cwd=repo, check=True)


def _files_of(source: Path) -> dict[str, bytes]:
    """The files git tracks in ``source``: DVC's own folder left out (``dvc init``
    makes it anew, with a local remote), and the lock files (the data they
    record is not here: the first run makes them)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=source, capture_output=True, check=True
    ).stdout.decode()
    return {
        rel: (source / rel).read_bytes()
        for rel in listed.split("\0")
        if rel
        and not rel.startswith(".dvc/")
        and rel.rsplit("/", 1)[-1] != "dvc.lock"
        and (source / rel).is_file()
    }


def build(
    base: Path,
    files: Mapping[str, str | bytes] | Path,
    *,
    extra: Mapping[str, str | bytes] | None = None,
    data: Iterable[str] = (),
    message: str = "Project: code, data and pipelines",
) -> Project:
    """A project under ``base`` from ``files`` (relative path -> content, or a
    folder whose git-tracked files are copied, see `_files_of`), ``extra``
    files over them (small data of the right format, say), and ``data`` (paths
    among them) ``dvc add``-ed; committed and pushed to a bare origin and a
    local DVC remote. Every ``.dvc`` file left must find its data here."""
    base = Path(base).resolve()
    origin, remote, path = base / "origin.git", base / "dvc-remote", base / "project"
    content: dict[str, str | bytes] = {}
    content.update(_files_of(Path(files)) if isinstance(files, (str, Path)) else files)
    content.update(extra or {})
    data = list(data)
    for added in data:  # `dvc add` writes its .dvc file anew
        content.pop(added.rstrip("/") + ".dvc", None)
    remote.mkdir(parents=True)
    dvc = [sys.executable, "-m", "dvc"]

    def run(*cmd: str, cwd: Path = path) -> None:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if done.returncode:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")

    run("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=base)
    run("git", "init", "-q", "-b", "main", str(path), cwd=base)
    _identify(path)
    for rel, text in content.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode() if isinstance(text, str) else text)
    run("git", "remote", "add", "origin", str(origin))
    run(*dvc, "init", "-q")
    run(*dvc, "config", "core.analytics", "false")
    # Relative, so that every clone beside project/ (a teammate's) finds it.
    run(*dvc, "remote", "add", "-d", "storage", "../dvc-remote")
    if data:
        run(*dvc, "add", "-q", *data)
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", message)
    run(*dvc, "push", "-q")
    run("git", "push", "-q", "-u", "origin", "main")
    return Project(path, origin, remote)
