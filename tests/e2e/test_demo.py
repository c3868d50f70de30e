"""The demo a new user runs first: `inv demo` / `python -m dvc_invoke.demo`."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e  # a whole sandbox, built and run


def test_demo_runs_the_whole_flow_and_shows_what_landed(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dvc_invoke.cli.demo", "--dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    origin = tmp_path / "sandbox" / "origin.git"
    log = subprocess.run(
        ["git", "--git-dir", str(origin), "log", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert log[:2] == ["[DVC] Update model metrics", "[DVC] Update training"]
    # The teammate's clone pulled the model it never trained.
    gpu = tmp_path / "sandbox" / "gpu-box"
    assert (gpu / "model" / "model.json").is_file()
    assert (gpu / "metrics" / "scores.json").is_file()
    assert "dvc pull training/dvc.yaml:train dataset/testset.dvc" in proc.stdout
    remote_files = [p for p in (tmp_path / "sandbox" / "dvc-remote").rglob("*") if p.is_file()]
    assert f"objects in the DVC remote ({tmp_path / 'sandbox' / 'dvc-remote'}): " in proc.stdout
    assert f": {len(remote_files)}\n" in proc.stdout
    assert str(tmp_path) in proc.stdout


def test_the_demos_tasks_py_is_the_one_the_readme_shows():
    from pathlib import Path

    from dvc_invoke.cli.sandbox import TASKS_PY

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"```python\n{TASKS_PY}```" in readme
