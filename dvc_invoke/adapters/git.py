"""Every git command of the package, in one place, run through the workspace's shell.

Reads are probes (run for real under ``--dry``, never echoed); changes are
actions (echoed, printed instead of run under ``--dry``, retried when they
reach a remote and fail the way networks fail for a moment). What git's
output means (a rejected push, a server that refuses for good) is decided
here (and, for what may pass if tried again, in `dvc_invoke.adapters.reasons`).
Paths given and returned are relative to the DVC root, as everywhere else.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dvc_invoke.adapters import timelimits
from dvc_invoke.adapters.timelimits import TimedOut
from dvc_invoke.errors import DvcInvokeError

if TYPE_CHECKING:
    from invoke.runners import Result


class Shell(Protocol):
    """What git's commands run through: the workspace's shell."""

    root: Path
    dry: bool
    c: Any

    def probe(self, cmd: str) -> Any: ...

    def act(
        self,
        cmd: str,
        *,
        step: str,
        resume: str | None = None,
        network: bool = False,
        capture: bool = False,
        touches: bool = True,
    ) -> Any: ...


# git for reads: takes no optional lock (no index.lock for a status).
_GIT_READ = "git --no-optional-locks"


@dataclass
class GitState:
    """What ``git status --porcelain=v2 --branch`` says of the workspace."""

    commit: str | None = None  # None: no commit yet (or a dry run)
    branch: str | None = None  # None: detached HEAD (or a dry run)
    upstream: str | None = None  # e.g. "origin/main"
    ahead: int = 0
    behind: int = 0
    changed: list[str] = field(default_factory=list)  # relative to the git top

    @classmethod
    def parse(cls, out: str) -> GitState:
        state = cls()
        records = iter(out.split("\0"))
        for rec in records:
            if rec.startswith("# branch.oid "):
                oid = rec.split(" ", 2)[2]
                state.commit = None if oid == "(initial)" else oid
            elif rec.startswith("# branch.head "):
                head = rec.split(" ", 2)[2]
                state.branch = None if head == "(detached)" else head
            elif rec.startswith("# branch.upstream "):
                state.upstream = rec.split(" ", 2)[2]
            elif rec.startswith("# branch.ab "):
                _, _, ahead, behind = rec.split(" ")
                state.ahead, state.behind = int(ahead), -int(behind)
            elif rec[:2] == "1 ":
                state.changed.append(rec.split(" ", 8)[8])
            elif rec[:2] == "2 ":
                state.changed.append(rec.split(" ", 9)[9])
                next(records, None)  # the rename's original path
            elif rec[:2] == "u ":
                state.changed.append(rec.split(" ", 10)[10])
        return state


class Git:
    """The git commands of one workspace, run through its shell."""

    def __init__(self, ws: Shell):
        self.ws = ws
        self._prefix: str | None = None

    # -- the workspace's state ---------------------------------------------------
    def state(self, *, step: str = "guards") -> GitState:
        # A read takes no index.lock (git status refreshes the index when it can):
        # a host's probe must not fail a checkout another start is making there.
        res = self.ws.probe(f"{_GIT_READ} status --porcelain=v2 --branch -z --untracked-files=no")
        if res.failed:
            err = res.stderr.strip().splitlines()
            reason = err[-1] if err else f"git exited with {res.exited}"
            if "not a git repository" in reason:
                reason = f"{self.ws.root} is not in a git repository"
            raise DvcInvokeError(reason, step=step)
        return GitState.parse(res.stdout)

    @property
    def prefix(self) -> str:
        """The DVC root relative to the git top (``""`` unless ``dvc init --subdir``)."""
        if self._prefix is None:
            res = self.ws.probe("git rev-parse --show-prefix")
            self._prefix = res.stdout.strip() if res.ok else ""
        return self._prefix

    def from_top(self, path: str) -> str:
        prefix = self.prefix
        return path[len(prefix) :] if prefix and path.startswith(prefix) else path

    def changed_paths(self, pathspecs: Iterable[str], *, unknown: bool = False) -> list[str]:
        """Which of ``pathspecs`` (files or folders) differ from HEAD, untracked included;
        with ``unknown``, all of them when git cannot tell."""
        specs = sorted(set(pathspecs))
        if not specs:
            return []
        res = self.ws.probe(
            f"{_GIT_READ} status --porcelain -z --untracked-files=all -- " + shlex.join(specs)
        )
        if res.failed and unknown:
            return specs
        paths: list[str] = []
        records = iter(res.stdout.split("\0"))
        for rec in records:
            if len(rec) < 4:
                continue
            paths.append(self.from_top(rec[3:]))
            if rec[0] in "RC":
                next(records, None)
        return paths

    def head(self) -> str | None:
        res = self.ws.probe("git rev-parse --verify -q HEAD")
        if not res.ok:
            return None  # no commit yet
        return res.stdout.strip() or None

    def upstream_target(self, branch: str) -> tuple[str, str] | None:
        """The remote and remote ref that ``branch`` pushes to, if it has an upstream."""
        ref = shlex.quote(f"refs/heads/{branch}")
        res = self.ws.probe(
            f"git for-each-ref --format='%(upstream:remotename) %(upstream:remoteref)' {ref}"
        )
        words = res.stdout.split()
        if res.ok and len(words) == 2:
            return words[0], words[1]
        return None

    def ignores(self, path: str) -> bool | None:
        """Whether git ignores ``path``; None when it cannot say (not a repository)."""
        res = self.ws.probe(f"git check-ignore -q {shlex.quote(path)}")
        return {0: True, 1: False}.get(res.exited)

    # -- reads -------------------------------------------------------------------
    def show(self, rev: str, path: str) -> str | None:
        """``path`` as commit ``rev`` has it, or None when it has none."""
        res = self.ws.probe(f"git show {shlex.quote(f'{rev}:{self.prefix}{path}')}")
        return res.stdout if res.ok else None

    def tracked_at_head(self, paths: list[str]) -> set[str]:
        """Which of ``paths`` (or files under them) HEAD holds."""
        listed = shlex.join(paths)
        res = self.ws.probe(f"git ls-tree -r -z --name-only --full-name HEAD -- {listed}")
        return {self.from_top(f) for f in res.stdout.split("\0") if f}

    def is_ancestor(self, rev: str, of: str = "HEAD") -> bool:
        res = self.ws.probe(f"git merge-base --is-ancestor {shlex.quote(rev)} {shlex.quote(of)}")
        return bool(res.ok)

    def commit_of(self, rev: str) -> str | None:
        res = self.ws.probe(f"git rev-parse --verify -q {shlex.quote(rev + '^{commit}')}")
        return res.stdout.strip() or None if res.ok else None

    def has_branch(self, name: str) -> bool:
        """Whether the local branch ``name`` exists."""
        res = self.ws.probe(f"git rev-parse -q --verify {shlex.quote('refs/heads/' + name)}")
        return bool(res.ok)

    def remote_url(self, remote: str) -> str:
        """The URL git fetches ``remote`` from (empty when it has none)."""
        return str(self.ws.probe(f"git remote get-url {shlex.quote(remote)}").stdout.strip())

    def short_name(self, rev: str) -> str | None:
        """``rev``'s shortest unambiguous name, or None when git cannot say."""
        res = self.ws.probe(f"git rev-parse --short {shlex.quote(rev)}")
        return res.stdout.strip() or None if res.ok else None

    def experiments(
        self, remote: str | None = None, *, step: str | None = None
    ) -> list[tuple[str, str]]:
        """DVC's experiments as git holds them (``refs/exps/<baseline>/<name>``):
        ``(baseline commit, name)`` each; on ``remote``, as it holds them. With
        ``step``, a remote that does not answer (after the network's retries)
        stops that step, rather than holding none."""
        if remote is None:
            res = self.ws.probe("git for-each-ref --format='%(refname)' refs/exps/")
        elif step is not None:
            cmd = f"git ls-remote --refs {shlex.quote(remote)} 'refs/exps/*'"
            res = self.ws.act(cmd, step=step, network=True, capture=True, touches=False)
        else:
            res = self.ws.probe(f"git ls-remote --refs {shlex.quote(remote)} 'refs/exps/*'")
        found = []
        for line in (res.stdout or "").splitlines() if res.ok else ():
            parts = line.split()[-1].split("/") if line.strip() else []
            # refs exps <2 hex> <38 hex> <name>; DVC's own (celery, stash) are not experiments
            if len(parts) == 5 and len(parts[2]) == 2 and len(parts[3]) == 38:
                found.append((parts[2] + parts[3], parts[4]))
        return found

    def parent_of(self, rev: str) -> str | None:
        return self.commit_of(f"{rev}~1")

    def changed_since(self, rev: str) -> list[str] | None:
        """The files that differ between ``rev`` and HEAD, or None if git cannot say."""
        res = self.ws.probe(f"git diff --name-only -z {shlex.quote(rev)} HEAD")
        if not res.ok:
            return None
        return [self.from_top(f) for f in res.stdout.split("\0") if f]

    def changed_upstream(self) -> list[str]:
        """The files the branch's upstream changed since the two parted."""
        res = self.ws.probe("git diff --name-only -z HEAD...@{u}")
        return [self.from_top(f) for f in res.stdout.split("\0") if f]

    def push_dry_run(self, remote: str, ref: str) -> Result:
        """``git push --dry-run``: it runs the pre-push hook, under the push's time limit."""
        with timelimits.limited(self.ws.c, "git_push", step="guards"):
            res: Result = self.ws.probe(self._push(remote, ref, dry_run=True))
        return res

    def left_locks(self, branch: str | None) -> list[str]:
        """The lock files a crashed git left that a commit would need: the index's,
        HEAD's and the branch's (paths as git names them, from the DVC root)."""
        wanted = ["index.lock", "HEAD.lock"] + ([f"refs/heads/{branch}.lock"] if branch else [])
        paths = " ".join(f"--git-path {shlex.quote(w)}" for w in wanted)
        res = self.ws.probe(f"git rev-parse {paths}")
        if not res.ok:
            return []
        return [path for path in res.stdout.splitlines() if (self.ws.root / path).exists()]

    def config(self, *keys: str) -> dict[str, str]:
        """The values git's config sets for ``keys`` (lower case), the last one of each."""
        pattern = "^(" + "|".join(re.escape(k.lower()) for k in keys) + ")$"
        res = self.ws.probe(f"git config -z --get-regexp {shlex.quote(pattern)}")
        found = {}
        for entry in res.stdout.split("\0") if res.ok else []:
            if entry:
                key, _, value = entry.partition("\n")
                found[key.lower()] = value if "\n" in entry else "true"  # `[commit] gpgsign`
        return found

    def hooks_folder(self) -> str:
        """Where git looks for hooks (``core.hooksPath`` or the repository's), from the DVC root."""
        res = self.ws.probe("git rev-parse --git-path hooks")
        return res.stdout.strip() if res.ok else ".git/hooks"

    def cannot_sign(self) -> str | None:
        """Why git cannot sign a commit now, or None: an empty commit of HEAD's
        tree is signed as ``git commit`` would sign it (``commit-tree -S``, the same
        ``gpg.*`` settings), and written to no ref."""
        if self.head() is None:
            return None  # nothing to sign a probe of; the first commit will say
        try:
            with timelimits.limited(self.ws.c, "commit", step="guards"):
                res = self.ws.probe("git commit-tree -S -m 'signing probe' 'HEAD^{tree}'")
        except TimedOut as exc:
            return (
                f"signing did not finish within {exc.limit:g} s (the signer waits for a"
                " passphrase?): unlock the key, or raise dvc_invoke.timeouts.commit"
            )
        if res.ok:
            return None
        return failure_reason(res.stderr) or f"git commit-tree -S exited with {res.exited}"

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
        """``git push``, stopped at its time limit (``dvc_invoke.timeouts.git_push``)."""
        with timelimits.limited(self.ws.c, "git_push", step=step, resume=resume):
            self.ws.act(
                self._push(remote, ref, source=source),
                step=step,
                resume=resume,
                network=not self.ws.dry,
            )

    def commit(self, paths: list[str], message: str, *, resume: str | None = None) -> None:
        """Commit exactly ``paths``, all or nothing: a failed commit (a hook that
        refused it, a signer that failed) leaves nothing staged that would block
        the next run. A hook that hangs is stopped at ``dvc_invoke.timeouts.commit``."""
        files = shlex.join(paths)
        before = None if self.ws.dry else self.head()
        try:
            with timelimits.limited(self.ws.c, "commit", step="commit", resume=resume):
                # -f: a file git tracks under an ignored folder (`reports/` after
                # `!reports/train`) is staged, yet `git add` exits 1 without it.
                # Only paths the run owns, as git status listed them, are named.
                self.ws.act(f"git add -f -- {files}", step="commit", resume=resume)
                self.ws.act(
                    f"git commit -q -m {shlex.quote(message)} -- {files}",
                    step="commit",
                    resume=resume,
                )
        except TimedOut as exc:
            # A post-commit hook hangs after the commit is made: kept, to be pushed.
            made = self.head() != before
            if not made:
                self.ws.probe(f"git reset -q -- {files}")
            kept = "the commit was made, nothing was pushed" if made else "nothing was committed"
            raise TimedOut(exc.key, exc.limit, step="commit", resume=resume, kept=kept) from None
        except DvcInvokeError as exc:
            if not self.ws.dry:
                self.ws.probe(f"git reset -q -- {files}")
            exc.reason = failure_reason(exc.log) or exc.reason
            raise

    def replay_on_upstream(self) -> bool:
        """Rebase the branch's own commits on its upstream; undone when it does not apply."""
        from dvc_invoke.adapters.dvc.session import touched

        touched()  # teammates' commits may change the DVC files read since
        if self.ws.probe("git rebase -q @{u}").ok:
            return True
        self.ws.probe("git rebase --abort")
        return False

    def branch(self, name: str, *, step: str) -> None:
        self.ws.act(f"git branch {shlex.quote(name)} HEAD", step=step)

    def delete_merged_branch(self, name: str, *, step: str) -> None:
        """The local branch ``name``, which HEAD holds (``-d``: git refuses otherwise)."""
        self.ws.act(f"git branch -q -d {shlex.quote(name)}", step=step)

    def fast_forward(self, rev: str, *, step: str) -> None:
        """The branch forward to ``rev``, which must descend from HEAD."""
        self.ws.act(f"git merge -q --ff-only {shlex.quote(rev)}", step=step)

    def try_fast_forward(self, rev: str) -> bool:
        """The branch forward to ``rev`` if it descends from HEAD; if not, False, nothing moved."""
        return bool(self.ws.probe(f"git merge -q --ff-only {shlex.quote(rev)}").ok)

    def checkout(self, branch: str, *, step: str) -> None:
        """Switch to the local branch ``branch``."""
        self.ws.act(f"git checkout -q {shlex.quote(branch)}", step=step)

    def checkout_new(self, branch: str, commit: str, *, upstream: str, step: str) -> None:
        """A new local branch ``branch`` at ``commit``, switched to, following ``upstream``
        (``REMOTE/BRANCH``; left unset when the remote has no such branch)."""
        self.ws.act(f"git checkout -q -b {shlex.quote(branch)} {shlex.quote(commit)}", step=step)
        self.ws.probe(f"git branch -q --set-upstream-to={shlex.quote(upstream)}")

    def drop_last_commit(self, *, step: str) -> None:
        """The branch back one commit, keeping the workspace's changes."""
        self.ws.act("git reset -q --keep HEAD~1", step=step)

    def restore(self, paths: list[str], *, step: str) -> None:
        """``paths`` back as HEAD has them, in the index and the workspace."""
        self.ws.act(
            f"git restore --source=HEAD --staged --worktree -- {shlex.join(paths)}", step=step
        )

    @staticmethod
    def _push(remote: str, ref: str, *, source: str = "HEAD", dry_run: bool = False) -> str:
        flags = "--dry-run -q " if dry_run else ""
        return f"git push {flags}{shlex.quote(remote)} {shlex.quote(f'{source}:{ref}')}"


def push_rejected(output: str | None) -> bool:
    """Whether ``git push`` was rejected because the remote has commits this clone lacks."""
    text = output or ""
    return "[rejected]" in text or "non-fast-forward" in text or "fetch first" in text


def clone_line(url: str, into: str) -> str:
    """The shell line that clones ``url`` quietly into ``into``, a shell word as the
    caller's shell must read it (quoted, or ``"$HOME"/...`` on another host)."""
    return f"git clone -q {shlex.quote(url)} {into}"


def without_credentials(url: str) -> str:
    """``url`` without the user and password an http(s) URL may carry (a token,
    often): a clone elsewhere uses credentials of its own, and nothing secret is
    echoed, shown by ``--dry`` or copied to another host."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def failure_reason(output: str | None) -> str | None:
    """Why git failed, from its output: its last error line, and when that is
    only "failed to write commit object", the cause it gave before it (``gpg
    failed to sign the data``)."""
    said = [
        line.split(": ", 1)[1].strip()
        for line in (output or "").splitlines()
        if line.startswith(("error: ", "fatal: ")) and line.split(": ", 1)[1].strip()
    ]
    if not said:
        return None
    if len(said) > 1 and said[-1] == "failed to write commit object":
        return f"{'; '.join(said[-3:-1])} ({said[-1]})"
    return said[-1]


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


def run_commit(root: Path, before: str, branch: str | None) -> tuple[str, bool] | None:
    """What git holds in ``root`` of a run that started at commit ``before`` on
    ``branch`` and stopped while publishing: the commit it made (the branch moved
    on from ``before``) and whether the upstream holds it (as the last push or
    fetch left it); None when the branch did not move on, or was rewritten."""
    from invoke.context import Context

    def git(args: str) -> Any:
        cmd = f"git -C {shlex.quote(str(root))} {args}"
        return Context().run(cmd, hide=True, warn=True, in_stream=False)

    head = git("rev-parse -q --verify HEAD").stdout.strip()
    on = git("symbolic-ref -q --short HEAD").stdout.strip()
    if not before or not head or head == before or on != branch:
        return None
    if not git(f"merge-base --is-ancestor {shlex.quote(before)} {shlex.quote(head)}").ok:
        return None  # not the run's commit: the branch was rewritten since
    return head, bool(git(f"merge-base --is-ancestor {shlex.quote(head)} '@{{u}}'").ok)
