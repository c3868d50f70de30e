"""`inv release`, the repository's own release check (tasks/__init__.py): what it runs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Exit, MockContext, Result

import dvc_invoke

ROOT = Path(__file__).parent.parent
TASKS = ROOT / "tasks" / "__init__.py"

pytestmark = pytest.mark.skipif(not TASKS.exists(), reason="the repository's tasks/ is not here")


def load_tasks():
    spec = importlib.util.spec_from_file_location("repo_tasks", TASKS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_dry_release_shows_every_step_and_runs_none(tmp_path):
    work = tmp_path / "release"
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--dry", "release", "--dir", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    version = dvc_invoke.__version__
    wheel = f"{work}/dist/dvc_invoke-{version}-py3-none-any.whl"
    expected = [
        "-m build --sdist --wheel --outdir",
        f"-m twine check --strict {work}/dist/dvc_invoke-{version}.tar.gz {wheel}",
        f"-m venv {work}/venv",
        f"{work}/venv/bin/pip install -q {wheel}",
        f"{work}/venv/bin/dvc-invoke --version",
        f"{work}/venv/bin/dvc-invoke demo --dir {work}/demo",
        f"{work}/venv/bin/dvc init -q",
        f"{work}/venv/bin/inv --list",
        "git ls-files tests",
        f"{work}/venv/bin/pip install -q '{wheel}[dev]'",
        "pytest tests/unit",
    ]
    found = [next((i for i, line in enumerate(lines) if step in line), None) for step in expected]
    assert None not in found, dict(zip(expected, found, strict=True))
    assert found == sorted(found)  # in this order
    assert not work.exists() or not any(work.iterdir())  # nothing built or installed


def test_a_failed_step_ends_the_release_with_one_line_naming_it():
    tasks = load_tasks()
    c = MockContext(run={"bad": Result("", exited=2)})
    with pytest.raises(Exit) as stopped:
        tasks._step(c, "/w", "the build", "bad")
    assert (stopped.value.code, stopped.value.message) == (
        1,
        "release: the build failed (exit 2); its files: /w",
    )


def test_the_version_printed_must_be_exactly_the_declared_one():
    tasks = load_tasks()
    c = MockContext(run={"v": Result("dvc-invoke 0.1.0rc1\n"), "w": Result("dvc-invoke 0.1.0\n")})
    tasks._step(c, "/w", "dvc-invoke --version", "w", "dvc-invoke 0.1.0", True)
    with pytest.raises(Exit, match="expected 'dvc-invoke 0.1.0', got 'dvc-invoke 0.1.0rc1'"):
        tasks._step(c, "/w", "dvc-invoke --version", "v", "dvc-invoke 0.1.0", True)
