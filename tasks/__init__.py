"""This repository's own tasks: the demo, the developer loop, and the release check."""

import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from invoke import Collection, Exit, task

from dvc_invoke.cli import demo as _demo

# The tools of the Python running inv: a virtualenv works without being activated.
PY = shlex.quote(sys.executable)


@task(help={"dir": "Build the sandbox here (default: a new temporary folder)."})
def demo(c, dir=None):
    """Build a sandbox DVC project and run the whole flow there, for real."""
    _demo.run(c, dir)


@task(
    help={
        "k": "Only tests matching this expression.",
        "jobs": "Parallel workers.",
        "quick": "The unit tests only (tests/unit), not the end-to-end scenarios: a minute.",
    }
)
def test(c, k=None, jobs=2, quick=False):
    """Run the test suite (real git, real DVC, in temporary folders)."""
    select = f" -k {shlex.quote(k)}" if k else ""
    select += " tests/unit" if quick else ""
    c.run(f"{PY} -m pytest -n {int(jobs)}{select}", pty=False)


@task(
    help={
        "quick": "Small projects and data: checks the script, not the numbers.",
        "cases": "Which cases, e.g. 1,2,3 (default: all eleven).",
    }
)
def bench(c, quick=False, cases="1,2,3,4,5,6,7,8,9,10,11"):
    """Time dvc-invoke against the seed's script and bare dvc; write bench/out/results.json."""
    flags = " --quick" if quick else ""
    cmd = f"{PY} bench/bench.py{flags} --cases {shlex.quote(cases)} --json bench/out/results.json"
    c.run(cmd, pty=False)


@task
def lint(c):
    """Check style and formatting with ruff, and types with mypy --strict."""
    c.run(f"{PY} -m ruff check .")
    c.run(f"{PY} -m ruff format --check .")
    c.run(f"{PY} -m mypy")


def _version() -> str:
    text = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    found = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    if found is None:
        raise Exit('release: no version = "..." line in pyproject.toml')
    return found.group(1)


def _step(c, work, what, cmd, expect=None, exact=False, **kwargs):
    """Run one step of the release check; its failure ends the check with one line.

    ``expect``: what its output must hold (``exact``: all it must print).
    """
    result = c.run(cmd, warn=True, pty=False, in_stream=False, **kwargs)
    if result is None or c.config.run.dry:
        return
    if result.failed:
        raise Exit(f"release: {what} failed (exit {result.exited}); its files: {work}", code=1)
    out = result.stdout.strip() if exact else result.stdout
    if expect is not None and (out != expect if exact else expect not in out):
        raise Exit(f"release: {what}: expected {expect!r}, got {out[-200:]!r}", code=1)


@task(
    help={
        "dir": "Build and try here (default: a new temporary folder, removed when all passed).",
        "tests": "Also run the unit tests (tests/unit) from the unpacked sdist.",
    }
)
def release(c, dir=None, tests=True):
    """Build the sdist and wheel, check them, and try the wheel alone in a new virtualenv.

    What a user gets from PyPI: ``twine check --strict`` on both files, the wheel
    installed by itself (no checkout on the path), ``dvc-invoke --version``, the
    demo's whole flow, ``dvc-invoke init`` in a new DVC project and ``inv --list``
    there; then the sdist's own tests, run from the unpacked sdist.
    """
    version = _version()
    work = Path(dir) if dir else Path(tempfile.mkdtemp(prefix="dvc-invoke-release-"))
    q = shlex.quote
    dist, venv, project = work / "dist", work / "venv", work / "project"
    wheel = dist / f"dvc_invoke-{version}-py3-none-any.whl"
    sdist = dist / f"dvc_invoke-{version}.tar.gz"
    unpacked = work / f"dvc_invoke-{version}"
    bin = venv / "bin"
    root = q(str(Path(__file__).parent.parent))

    _step(c, work, "the build", f"{PY} -m build --sdist --wheel --outdir {q(str(dist))} {root}")
    _step(c, work, "twine check", f"{PY} -m twine check --strict {q(str(sdist))} {q(str(wheel))}")
    _step(c, work, "the new virtualenv", f"{PY} -m venv {q(str(venv))}")
    _step(c, work, "installing the wheel", f"{q(str(bin / 'pip'))} install -q {q(str(wheel))}")
    dvc_invoke = q(str(bin / "dvc-invoke"))
    _step(c, work, "dvc-invoke --version", f"{dvc_invoke} --version", f"dvc-invoke {version}", True)
    _step(c, work, "the demo", f"{dvc_invoke} demo --dir {q(str(work / 'demo'))}")
    stage = "stages:\\n  train:\\n    cmd: echo trained\\n"
    _step(
        c,
        work,
        "dvc-invoke init in a new DVC project",
        f"mkdir -p {q(str(project / 'train'))} && cd {q(str(project))} && git init -q"
        f" && {q(str(bin / 'dvc'))} init -q && printf '{stage}' > train/dvc.yaml"
        f" && {dvc_invoke} init",
    )
    _step(
        c,
        work,
        "inv --list there",
        f"cd {q(str(project))} && {q(str(bin / 'inv'))} --list",
        "train",
    )
    # The sdist carries every file of tests/ (MANIFEST.in): the same list as git's.
    listed = f"tar -tzf {q(str(sdist))} | sed -n 's|^dvc_invoke-{version}/tests/|tests/|p'"
    _step(
        c,
        work,
        "the sdist's tests/ against git's",
        f"cd {root} && diff <(git ls-files tests | sort) <({listed} | grep -v '/$' | sort)",
    )
    if tests:
        _step(c, work, "unpacking the sdist", f"tar -xzf {q(str(sdist))} -C {q(str(work))}")
        _step(c, work, "the dev extra", f"{q(str(bin / 'pip'))} install -q {q(f'{wheel}[dev]')}")
        _step(
            c,
            work,
            "the sdist's unit tests",
            f"cd {q(str(unpacked))} && {q(str(bin / 'pytest'))} tests/unit -q -n 2"
            " -p no:cacheprovider",
        )
    if not dir:
        shutil.rmtree(work, ignore_errors=True)
    if not c.config.run.dry:
        print(f"release: dvc-invoke {version} builds, installs alone and runs")


ns = Collection(demo, test, lint, bench, release)
