"""The git adapter: the commands it builds (MockContext) and how it reads git's answers."""

from __future__ import annotations

import re

import pytest
from invoke import Config, MockContext, Result

from dvc_invoke.adapters.git import refused_by_server
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.errors import DvcInvokeError


@pytest.fixture(autouse=True)
def in_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def git(tmp_path, run=None):
    cfg = Config(overrides={"run": {"in_stream": False}, "dvc_invoke": {"dvc": "dvc"}})
    c = MockContext(config=cfg, run=run or {}, repeat=True)
    ws = Workspace(c, tmp_path)
    return c, ws.git


def commands(c):
    return [call.args[0] for call in c.run.call_args_list]


def test_push_quotes_the_remote_and_the_refspec(tmp_path):
    c, g = git(tmp_path, {re.compile(r"git push .*"): Result()})
    g.push("my origin", "refs/heads/main", step="git push")
    g.push("origin", "refs/heads/dvc-invoke/x/1", source="dvc-invoke/x/1", step="git push")
    assert commands(c) == [
        "git push 'my origin' HEAD:refs/heads/main",
        "git push origin dvc-invoke/x/1:refs/heads/dvc-invoke/x/1",
    ]


def test_a_refused_commit_unstages_what_it_staged(tmp_path):
    c, g = git(
        tmp_path,
        {
            re.compile(r"git add .*"): Result(),
            re.compile(r"git commit .*"): Result(exited=1, stderr="hook said no\n"),
            re.compile(r"git reset .*"): Result(),
            re.compile(r"git rev-parse .*"): Result(stdout="1a2b3c\n"),
        },
    )
    with pytest.raises(DvcInvokeError):
        g.commit(["dvc.lock", "eval dir/m.json"], "[DVC] Update x")
    head, *changes = commands(c)
    assert head == "git rev-parse --verify -q HEAD"  # to tell, if it hangs, whether it committed
    assert [cmd.split(" -- ")[0] for cmd in changes] == [
        "git add -f",
        "git commit -q -m '[DVC] Update x'",
        "git reset -q",
    ]
    assert all(cmd.endswith("-- dvc.lock 'eval dir/m.json'") for cmd in changes)


def test_a_commit_that_failed_to_sign_says_why_in_gits_words(tmp_path):
    said = "error: gpg failed to sign the data\nfatal: failed to write commit object\n"
    c, g = git(
        tmp_path,
        {
            re.compile(r"git (add|reset|rev-parse) .*"): Result(),
            re.compile(r"git commit .*"): Result(exited=128, stderr=said),
        },
    )
    with pytest.raises(DvcInvokeError) as caught:
        g.commit(["dvc.lock"], "[DVC] Update x")
    assert caught.value.reason == "gpg failed to sign the data (failed to write commit object)"


def test_replay_is_undone_when_it_does_not_apply(tmp_path):
    c, g = git(
        tmp_path,
        {
            re.compile(r"git rebase -q .*"): Result(exited=1),
            re.compile(r"git rebase --abort"): Result(),
        },
    )
    assert g.replay_on_upstream() is False
    assert commands(c) == ["git rebase -q @{u}", "git rebase --abort"]


def test_what_a_server_said_when_it_refused_for_good():
    out = (
        "remote: GH006: Protected branch update failed for refs/heads/main.\n"
        "To github.com:team/project.git\n"
        " ! [remote rejected] HEAD -> main (protected branch hook declined)\n"
        "error: failed to push some refs to 'github.com:team/project.git'\n"
    )
    assert refused_by_server(out) == (
        "GH006: Protected branch update failed for refs/heads/main.; protected branch hook declined"
    )
    teammates = " ! [rejected]        HEAD -> main (fetch first)\n"
    assert refused_by_server(teammates) is None


def test_reading_the_state_never_rewrites_the_index(tmp_path):
    """A status that refreshes the index holds index.lock while it writes it; a
    checkout at that moment (another start on a shared host) fails. Reads take
    no lock: the index file stays the one it was."""
    import os
    import subprocess

    from invoke import Context

    def sh(*args):
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)

    sh("git", "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    sh("git", "add", "a.txt")
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    index = tmp_path / ".git" / "index"
    os.utime(tmp_path / "a.txt", (1, 1))  # its stat no longer matches: a refresh would write
    before = index.stat().st_ino, index.stat().st_mtime_ns

    ws = Workspace(Context(Config(overrides={"run": {"echo": False}})), tmp_path)
    assert ws.git.state().changed == []
    assert ws.git.changed_paths(["a.txt"]) == []
    assert (index.stat().st_ino, index.stat().st_mtime_ns) == before

    sh("git", "status", "--porcelain")  # what a plain status does, for contrast
    assert (index.stat().st_ino, index.stat().st_mtime_ns) != before
