"""Every git command a run issues, in one place, through the workspace's ``c.run``.

Reads are probes (run for real under ``--dry``, never echoed); changes are
actions (echoed, printed instead of run under ``--dry``, retried when they
reach a remote and fail the way networks fail for a moment). What git's
output means (a rejected push, a server that refuses for good) is decided
here and in `workspace` (`push_rejected`, `transient`), nowhere else.
Paths given and returned are relative to the DVC root, as everywhere else.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from .errors import DvcInvokeError
from .workspace import quote_all

if TYPE_CHECKING:
    from invoke.runners import Result

    from .workspace import Workspace


class Git:
    def __init__(self, ws: Workspace):
        self.ws = ws

    # -- reads -------------------------------------------------------------------
    def show(self, rev: str, path: str) -> str | None:
        """``path`` as commit ``rev`` has it, or None when it has none."""
        res = self.ws.probe(f"git show {shlex.quote(f'{rev}:{self.ws.git_prefix}{path}')}")
        return res.stdout if res.ok else None

    def tracked_at_head(self, paths: list[str]) -> set[str]:
        """Which of ``paths`` (or files under them) HEAD holds."""
        res = self.ws.probe("git ls-tree -r -z --name-only --full-name HEAD -- " + quote_all(paths))
        return {self.ws.from_git_top(f) for f in res.stdout.split("\0") if f}

    def is_ancestor(self, rev: str, of: str = "HEAD") -> bool:
        res = self.ws.probe(f"git merge-base --is-ancestor {shlex.quote(rev)} {shlex.quote(of)}")
        return bool(res.ok)

    def commit_of(self, rev: str) -> str | None:
        res = self.ws.probe(f"git rev-parse --verify -q {shlex.quote(rev + '^{commit}')}")
        return res.stdout.strip() or None if res.ok else None

    def parent_of(self, rev: str) -> str | None:
        return self.commit_of(f"{rev}~1")

    def changed_since(self, rev: str) -> list[str] | None:
        """The files that differ between ``rev`` and HEAD, or None if git cannot say."""
        res = self.ws.probe(f"git diff --name-only -z {shlex.quote(rev)} HEAD")
        if not res.ok:
            return None
        return [self.ws.from_git_top(f) for f in res.stdout.split("\0") if f]

    def changed_upstream(self) -> list[str]:
        """The files the branch's upstream changed since the two parted."""
        res = self.ws.probe("git diff --name-only -z HEAD...@{u}")
        return [self.ws.from_git_top(f) for f in res.stdout.split("\0") if f]

    def push_dry_run(self, remote: str, ref: str) -> Result:
        res: Result = self.ws.probe(self._push(remote, ref, dry_run=True))
        return res

    # -- changes -----------------------------------------------------------------
    def fetch(self, remote: str, *, step: str, resume: str | None = None) -> None:
        cmd = f"git fetch -q {shlex.quote(remote)}"  # the remote's refs only: no file changes
        self.ws.act(cmd, step=step, resume=resume, network=True, touches=False)

    def show_push_dry_run(self, remote: str, ref: str, *, step: str) -> None:
        """Under ``--dry``: the check reaches the remote, so it is shown, not run."""
        self.ws.act(self._push(remote, ref, dry_run=True), step=step)

    def push(
        self, remote: str, ref: str, *, source: str = "HEAD", step: str, resume: str | None = None
    ) -> None:
        self.ws.act(
            self._push(remote, ref, source=source),
            step=step,
            resume=resume,
            network=not self.ws.dry,
        )

    def commit(self, paths: list[str], message: str, *, resume: str | None = None) -> None:
        """Commit exactly ``paths``, all or nothing: a failed commit (a hook that
        refused it) leaves nothing staged that would block the next run."""
        files = quote_all(paths)
        try:
            # -f: a file git tracks under an ignored folder (`reports/` after
            # `!reports/train`) is staged, yet `git add` exits 1 without it.
            # Only paths the run owns, as git status listed them, are named.
            self.ws.act(f"git add -f -- {files}", step="commit", resume=resume)
            self.ws.act(
                f"git commit -q -m {shlex.quote(message)} -- {files}", step="commit", resume=resume
            )
        except DvcInvokeError:
            if not self.ws.dry:
                self.ws.probe(f"git reset -q -- {files}")
            raise

    def replay_on_upstream(self) -> bool:
        """Rebase the branch's own commits on its upstream; undone when it does not apply."""
        from . import graph

        graph.touched()  # teammates' commits may change the DVC files read since
        if self.ws.probe("git rebase -q @{u}").ok:
            return True
        self.ws.probe("git rebase --abort")
        return False

    def branch(self, name: str, *, step: str) -> None:
        self.ws.act(f"git branch {shlex.quote(name)} HEAD", step=step)

    def fast_forward(self, rev: str, *, step: str) -> None:
        """The branch forward to ``rev``, which must descend from HEAD."""
        self.ws.act(f"git merge -q --ff-only {shlex.quote(rev)}", step=step)

    def drop_last_commit(self, *, step: str) -> None:
        """The branch back one commit, keeping the workspace's changes."""
        self.ws.act("git reset -q --keep HEAD~1", step=step)

    def restore(self, paths: list[str], *, step: str) -> None:
        """``paths`` back as HEAD has them, in the index and the workspace."""
        self.ws.act(
            f"git restore --source=HEAD --staged --worktree -- {quote_all(paths)}", step=step
        )

    @staticmethod
    def _push(remote: str, ref: str, *, source: str = "HEAD", dry_run: bool = False) -> str:
        flags = "--dry-run -q " if dry_run else ""
        return f"git push {flags}{shlex.quote(remote)} {shlex.quote(f'{source}:{ref}')}"


def refused_by_server(output: str | None) -> str | None:
    """What the server said when it refused a push for good (a protected
    branch, a pre-receive hook), or None for any other failure."""
    text = output or ""
    found = re.search(r"\[remote rejected\][^\n]*?\(([^)\n]*)\)", text)
    if not found:
        return None
    said = [
        line[len("remote:") :].strip()
        for line in text.splitlines()
        if line.startswith("remote:") and line[len("remote:") :].strip()
    ]
    return "; ".join([*said[-3:], found.group(1)])
