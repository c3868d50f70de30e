"""What the DVC session relies on of DVC's private API, pinned against the
installed DVC: a ``Repo``'s ``_reset`` and ``_lock_depth``, ``repo.stage.collect``
of a dvc.yaml, and ``dvc.cli.main`` returning DVC's exit code in this process.
Each test builds a real git + DVC project; a DVC release that changes one of
them fails here, not halfway through a user's run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_invoke.adapters.dvc import session
from dvc_invoke.errors import DvcInvokeError

PIPELINE = """\
stages:
  prep:
    cmd: {prep}
    outs: [prepared.txt]
  train:
    cmd: echo train
    deps: [prepared.txt]
    outs: [model.txt]
"""


@pytest.fixture
def plain_project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "dvc.yaml").write_text(PIPELINE.format(prep="echo one"))
    subprocess.run(
        "git init -q && dvc init -q && dvc config core.analytics false",
        shell=True,
        cwd=root,
        check=True,
    )
    monkeypatch.chdir(root)  # DVC reads the project it is run in, as the dvc command does
    return root


def rewrite_prep(root: Path, command: str) -> None:
    (root / "dvc.yaml").write_text(PIPELINE.format(prep=command))


def prep_command(repo) -> str:
    (stage,) = [s for s in repo.index.stages if s.name == "prep"]
    return stage.cmd


def test_a_repo_keeps_what_it_read_until_it_is_reset(plain_project):
    from dvc.repo import Repo

    with Repo(os.fspath(plain_project)) as repo:
        assert callable(repo._reset)
        assert prep_command(repo) == "echo one"
        rewrite_prep(plain_project, "echo two")
        assert prep_command(repo) == "echo one"  # what it read holds: the reason to reset
        repo._reset()
        assert prep_command(repo) == "echo two"


def test_a_repos_lock_depth_counts_dvcs_own_locks(plain_project):
    from dvc.repo import Repo, lock_repo

    with Repo(os.fspath(plain_project)) as repo:
        assert repo._lock_depth == 0
        with lock_repo(repo):
            assert repo._lock_depth == 1
            with lock_repo(repo):  # nested: DVC takes its lock once
                assert repo._lock_depth == 2
        assert repo._lock_depth == 0


def test_collect_returns_the_stages_of_a_dvc_yaml(plain_project):
    from dvc.repo import Repo

    with Repo(os.fspath(plain_project)) as repo:
        stages = repo.stage.collect(os.fspath(plain_project / "dvc.yaml"))
        assert sorted(s.name for s in stages) == ["prep", "train"]
        by_address = session.collect(repo, plain_project, "dvc.yaml")
    assert sorted(by_address) == ["prep", "train"]
    assert by_address["train"].cmd == "echo train"


@pytest.mark.parametrize("args", [["status"], ["remote", "default"], ["status", "--bogus"]])
def test_dvcs_command_line_returns_its_exit_code_in_this_process(plain_project, args):
    dvc = [sys.executable, "-m", "dvc"]
    expected = subprocess.run(dvc + args, capture_output=True, check=False).returncode
    assert session.run_cli(args) == expected
    assert (expected == 0) == (args == ["status"])  # the cases differ: a code, not a constant


def test_a_session_reads_the_project_again_only_after_a_command_ran(plain_project):
    with session.session(plain_project):
        with session.opened(plain_project) as repo:
            assert prep_command(repo) == "echo one"
        rewrite_prep(plain_project, "echo two")
        with session.opened(plain_project) as again:
            assert again is repo  # one Repo for every read
            assert prep_command(again) == "echo one"  # nothing ran since: one parse
        session.touched()
        with session.opened(plain_project) as again:
            assert prep_command(again) == "echo two"


def test_a_project_dvc_cannot_read_is_one_line(tmp_path):
    with pytest.raises(DvcInvokeError, match="DVC cannot read the project: "):
        with session.session(tmp_path):
            pass
