"""The checks before a run does any work: the guards (a git and DVC repository, a clean
workspace, a branch to push to) and the preflight of what needs the network (fetch,
the git and DVC remotes)."""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
from concurrent.futures import Future
from typing import TYPE_CHECKING

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.dvc import dvcfiles
from dvc_invoke.adapters.dvc.model import PipelineGraph
from dvc_invoke.adapters.dvc.remote import missing_plugin, remote_check
from dvc_invoke.adapters.git import GitState, push_rejected
from dvc_invoke.adapters.reasons import error_line
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.paths import overlaps
from dvc_invoke.config.pipelines import Pipeline
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow.plan import Plan, need_dvcfile
from dvc_invoke.runs.record import RunReport, some

if TYPE_CHECKING:
    from dvc_invoke.flow.context import RunContext


def check(
    ws: Workspace,
    p: Pipeline | None = None,
    *,
    resume: str | None = None,
    own: list[str] | None = None,
    state: GitState | None = None,
    graph_: PipelineGraph | None = None,
) -> GitState:
    """Refuse to run where a run could not be reproduced or published.

    The workspace must be a git and DVC repository whose tracked files are
    all committed (staged or not), the pipeline's dvc.yaml must exist, and a
    run that publishes needs a branch with an upstream to push to. Files the
    pipeline itself writes (``own``: its lock files, its declared metrics and
    outputs kept in git), as a failed or interrupted run leaves them, never
    block its own rerun: the run rewrites and commits them. With the run's
    ``graph_``, so do the files DVC and dvclive rewrote for it (`dvcfiles`): a
    ``dvc.yaml`` whose rewrite changes nothing DVC reads, or only dvclive's
    entries for the run's outputs; any other line in a ``.gitignore`` beside its
    outputs is someone's edit, refused. ``state``: the git state the caller just
    read, if it did.
    """
    state = state or ws.git.state()
    dvc = ws.settings.dvc
    if dvc and shutil.which(dvc) is None:  # a configured executable: found, or said now
        raise DvcInvokeError(
            f"{dvc}: command not found (config dvc_invoke.dvc)", step="guards", resume=resume
        )
    if p is not None:
        need_dvcfile(ws, p)
    _refuse_changes(ws, [ws.git.from_top(f) for f in state.changed], own or [], graph_, resume)
    if p is not None and p.commit and p.git_push:
        if state.branch is None:
            raise DvcInvokeError(
                "HEAD is detached: check out the branch the run should publish to",
                step="guards",
                resume=resume,
            )
        if state.upstream is None:
            raise DvcInvokeError(
                f"branch '{state.branch}' has no upstream to push to:"
                f" run `git push -u origin {state.branch}` once",
                step="guards",
                resume=resume,
            )
    if p is None or p.commit:
        _git_can_publish(ws, state, pushes=p is None or p.git_push, resume=resume)
    return state


def _refuse_changes(
    ws: Workspace,
    changed: list[str],
    own: list[str],
    g: PipelineGraph | None,
    resume: str | None,
) -> None:
    """Refuse uncommitted changes to tracked files that are not the run's own."""
    blocking = [f for f in changed if not overlaps(f, own)]
    foreign: dict[str, list[str]] = {}
    if g is not None:
        found = dvcfiles.survey(
            ws, g, [f for f in changed if dvcfiles.is_dvcfile(f) or dvcfiles.is_gitignore(f)]
        )
        tolerated = set(found.restore + found.own)
        blocking = [f for f in blocking if f not in tolerated]
        foreign = found.foreign
        blocking += [f for f in foreign if f not in blocking]
    if not blocking:
        return
    shown = some(
        [
            f + (f" (lines DVC did not write: {', '.join(foreign[f][:3])})" if f in foreign else "")
            for f in blocking
        ]
    )
    left = _left_by(ws, blocking)
    if left is not None:
        report, p = left
        discard, publish = tasknames.command("repro.discard"), tasknames.command("publish")
        name = shlex.quote(p)
        raise DvcInvokeError(
            f"uncommitted changes to tracked files: {shown}, left by run {report.id} of"
            f" {p} ({report.status} at {report.step or 'its start'}); throw them away with"
            f" `{discard} --pipeline {name}`, or publish them with `{publish} --pipeline"
            f" {name} --accept`",
            step="guards",
            resume=resume,
        )
    raise DvcInvokeError(
        f"uncommitted changes to tracked files: {shown}; commit or stash them",
        step="guards",
        resume=resume,
    )


def _left_by(ws: Workspace, paths: list[str]) -> tuple[RunReport, str] | None:
    """The latest run of another pipeline that ended leaving ``paths`` changed (a
    gate's refusal, a failure while publishing), with its pipeline's name."""
    from dvc_invoke.config.pipelines import resolve
    from dvc_invoke.runs.store import Store

    locks = {f for f in paths if posixpath.basename(f) == "dvc.lock"}
    if not locks:
        return None
    for report in Store(ws.root).each():
        if report.status not in ("failed", "cancelled", "lost"):
            continue
        try:
            p = resolve(ws.c, ws.root, report.pipeline)
        except DvcInvokeError:
            continue
        if posixpath.join(posixpath.dirname(p.dvcfile), "dvc.lock") in locks:
            return report, report.pipeline
    return None


# The hooks git runs for a commit and a push; one that is not executable, git skips.
COMMIT_HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg")
PUSH_HOOKS = ("pre-push",)


def _git_can_publish(ws: Workspace, state: GitState, *, pushes: bool, resume: str | None) -> None:
    """What would stop the commit (or the push) after the run, found before it:
    a lock file a crashed git left, a signer that cannot sign, hooks that are
    not where git is told to look (a hook git would skip is a warning)."""
    git = ws.git
    locks = git.left_locks(state.branch)
    if locks:
        lock = locks[0]
        raise DvcInvokeError(
            f"git's lock file {lock} is there, left by a git that crashed or still runs:"
            " a commit would fail; check that no git is running (`ps aux | grep git`),"
            f" then `rm {shlex.quote(lock)}`",
            step="guards",
            resume=resume,
        )
    config = git.config("commit.gpgsign", "core.hooksPath")
    if config.get("commit.gpgsign", "false").lower() in ("true", "yes", "on", "1"):
        why = git.cannot_sign()
        if why:
            raise DvcInvokeError(
                f"commit.gpgsign is set, but git cannot sign a commit: {why};"
                " fix the signing set-up (gpg.program, user.signingKey, the agent)"
                " or unset commit.gpgsign",
                step="guards",
                resume=resume,
            )
    hooks = git.hooks_folder()
    if "core.hookspath" in config and not (ws.root / hooks).is_dir():
        raise DvcInvokeError(
            f"core.hooksPath is {config['core.hookspath']!r}, which is not a folder"
            f" ({hooks}): git would run none of the team's hooks; fix it"
            " (`git config core.hooksPath PATH`) or unset it",
            step="guards",
            resume=resume,
        )
    for name in COMMIT_HOOKS + (PUSH_HOOKS if pushes else ()):
        hook = ws.root / hooks / name
        if hook.is_file() and not os.access(hook, os.X_OK):
            console.warn(
                f"the {name} hook {os.path.join(hooks, name)} is not executable, so git skips"
                " it: `chmod +x` it, or remove it"
            )


CHECKS = ("fetch", "git-push", "dvc-remote", "slack")


def start_git_checks(
    ctx: RunContext, p: Pipeline, state: GitState, *, skip: tuple[str, ...], resume: str | None
) -> None:
    """Begin the git half of `preflight` (a fetch, a push dry run: the network)
    in the background while DVC reads the pipeline; `preflight` takes its result."""
    ws = ctx.ws
    if ws.dry or set(skip) - set(CHECKS):
        return  # shown in order; an unknown check is refused by `preflight`
    ctx.begin(lambda: _git_checks(ws, p, state, skip=skip, resume=resume))


def preflight(
    ws: Workspace,
    run_plan: Plan,
    state: GitState,
    *,
    skip: tuple[str, ...] = (),
    resume: str | None = None,
    begun: Future[GitState] | None = None,
) -> GitState:
    """The checks that need the network, so that a long run cannot end in a
    failure that was knowable at its start. ``skip`` names checks to leave out.

    - ``fetch``: the branch is not behind its upstream (after ``git fetch``),
      so nobody runs two hours on stale code;
    - ``git-push``: the git remote accepts a push (``git push --dry-run``);
    - ``dvc-remote``: a DVC remote is configured and reachable.

    (``slack``: the run's first message is its check; see `run`.) The git
    checks may have been ``begun`` already (`start_git_checks`): their result
    is waited for here, and the run starts only after it.
    """
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise DvcInvokeError(
            f"unknown check {', '.join(unknown)} to skip (checks: {', '.join(CHECKS)})",
            step="guards",
        )
    if begun is not None:
        state = begun.result()
    else:
        state = _git_checks(ws, run_plan.pipeline, state, skip=skip, resume=resume)
    if run_plan.pull or run_plan.push:  # DVC's plugin for the remote: dry runs and skips too
        missing = missing_plugin(ws.root)
        if missing:
            raise DvcInvokeError(missing, step="guards", resume=resume)
    if (run_plan.pull or run_plan.push) and "dvc-remote" not in skip and not ws.dry:
        run_plan.remote = remote_check(ws.root)
        if run_plan.remote.problem:
            raise DvcInvokeError(run_plan.remote.problem, step="guards", resume=resume)
    return state


def _git_checks(
    ws: Workspace, p: Pipeline, state: GitState, *, skip: tuple[str, ...], resume: str | None
) -> GitState:
    """The branch is not behind its upstream (after a fetch), and the upstream
    takes a push: the git state after the fetch."""
    publishing = p.commit and p.git_push
    target = ws.git.upstream_target(state.branch) if publishing and state.branch else None
    if target is not None and "fetch" not in skip:
        remote, ref = target
        try:
            ws.git.fetch(remote, step="guards")
        except DvcInvokeError as exc:
            raise DvcInvokeError(
                f"cannot fetch from git remote '{remote}': {exc.reason}",
                step="guards",
                resume=resume,
            ) from None
        state = ws.git.state()
        if state.behind:
            raise DvcInvokeError(
                f"branch '{state.branch}' is {state.behind} commit"
                f"{'s' if state.behind > 1 else ''} behind {state.upstream}: pull first"
                " (`git pull --rebase`), so the run uses the team's latest code",
                step="guards",
                resume=resume,
            )
    if target is not None and "git-push" not in skip:
        remote, ref = target
        if ws.dry:  # reaches the remote: shown, not run
            ws.git.show_push_dry_run(remote, ref, step="guards")
            return state
        res = ws.git.push_dry_run(remote, ref)
        if res.failed and push_rejected(res.stderr):
            raise DvcInvokeError(
                f"branch '{state.branch}' is behind {remote}: it has commits this clone lacks;"
                " pull first (`git pull --rebase`)",
                step="guards",
                resume=resume,
            )
        if res.failed:
            reason = error_line(res.stderr) or f"git push --dry-run exited with {res.exited}"
            raise DvcInvokeError(
                f"git remote '{remote}' does not accept a push: {reason}",
                step="guards",
                resume=resume,
            )
    return state
