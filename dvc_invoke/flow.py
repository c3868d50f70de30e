"""The ritual around ``dvc repro``, one function per step.

`run` chains them: guards, pull, repro, publish (commit, ``dvc push``,
``git push``), notify. Everything that can fail fast (the workspace, the
pipeline, its targets) is checked before the run starts; after that the
first failure stops the run with one line that names the step and the
command that resumes. Each step is usable alone by a project that composes
its own flow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import console, graph, metrics, notifiers, runs
from .errors import Cancelled, DvcInvokeError
from .graph import PipelineGraph, RemoteCheck
from .interrupts import Interrupts
from .paths import overlaps
from .pipelines import Pipeline, resolve, slug
from .report import RunReport, short
from .settings import settings
from .workspace import GitState, Workspace, error_line, quote_all


@dataclass
class Plan:
    """One pipeline run, resolved: what to pull, reproduce and push."""

    pipeline: Pipeline
    graph: PipelineGraph
    pull: list[str]
    push: list[str]
    force: bool = False
    upstream: bool = False
    # The DVC remote as preflight found it: a local one must still be that folder.
    remote: RemoteCheck | None = None


@dataclass
class Published:
    committed: bool = False
    pushed: tuple[str, ...] = ()
    git_pushed: bool = False
    commit: str | None = None


def plan(
    ws: Workspace, p: Pipeline, *, force: bool | None = None, upstream: bool | None = None
) -> Plan:
    """Read the pipeline from DVC and resolve its pull and push targets.

    Without ``pull``/``push`` options these are the pipeline's inputs and
    outputs; given ones are expanded to what DVC tracks, and one that
    matches nothing is an error now rather than after a two-hour run. The
    push also names the cached inputs: a published lock file references
    them, so the DVC remote must hold them (``dvc push`` skips what it has).
    ``force``/``upstream`` left None take the pipeline's own setting.
    """
    force = p.force if force is None else force
    upstream = p.upstream if upstream is None else upstream
    g = graph.load(ws.root, p.dvcfile, stages=p.stages, force=force)
    pull_targets = g.inputs if p.pull is None else g.resolve(list(p.pull), step="pull")
    push_targets = g.push_targets if p.push is None else g.resolve(list(p.push), step="dvc push")
    if p.push != ():  # push=[] pushes nothing
        push_targets = graph.collapse(push_targets + g.push_inputs)
    return Plan(p, g, pull_targets, push_targets, force, upstream)


def publish_command(p: Pipeline) -> str:
    return f"inv publish --pipeline {shlex.quote(p.name)}"


def need_dvcfile(ws: Workspace, p: Pipeline) -> None:
    if not (ws.root / p.dvcfile).is_file():
        raise DvcInvokeError(f"pipeline '{p.name}': {p.dvcfile} does not exist", step="guards")


def check(
    ws: Workspace,
    p: Pipeline | None = None,
    *,
    resume: str | None = None,
    own: list[str] | None = None,
    state: GitState | None = None,
) -> GitState:
    """Refuse to run where a run could not be reproduced or published.

    The workspace must be a git and DVC repository whose tracked files are
    all committed (staged or not), the pipeline's dvc.yaml must exist, and a
    run that publishes needs a branch with an upstream to push to. Files the
    pipeline itself writes (``own``: its lock files, its declared metrics and
    outputs kept in git), as a failed or interrupted run leaves them, never
    block its own rerun: the run rewrites and commits them. ``state``: the git
    state the caller just read, if it did.
    """
    state = state or ws.git_state()
    if p is not None:
        need_dvcfile(ws, p)
    changed = [f for f in state.changed if not overlaps(ws.from_git_top(f), own or [])]
    if changed:
        shown = _some(changed)
        raise DvcInvokeError(
            f"uncommitted changes to tracked files: {shown}; commit or stash them",
            step="guards",
            resume=resume,
        )
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
    return state


CHECKS = ("fetch", "git-push", "dvc-remote", "slack")


def preflight(
    ws: Workspace,
    run_plan: Plan,
    state: GitState,
    *,
    skip: tuple[str, ...] = (),
    resume: str | None = None,
) -> GitState:
    """The checks that need the network, so that a long run cannot end in a
    failure that was knowable at its start. ``skip`` names checks to leave out.

    - ``fetch``: the branch is not behind its upstream (after ``git fetch``),
      so nobody runs two hours on stale code;
    - ``git-push``: the git remote accepts a push (``git push --dry-run``);
    - ``dvc-remote``: a DVC remote is configured and reachable.

    (``slack``: the run's first message is its check; see `run`.)
    """
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise DvcInvokeError(
            f"unknown check {', '.join(unknown)} to skip (checks: {', '.join(CHECKS)})",
            step="guards",
        )
    p = run_plan.pipeline
    publishing = p.commit and p.git_push
    target = ws.upstream_target(state.branch) if publishing and state.branch else None
    if target is not None and "fetch" not in skip:
        remote, ref = target
        try:
            ws.act(f"git fetch -q {shlex.quote(remote)}", step="guards", network=True)
        except DvcInvokeError as exc:
            raise DvcInvokeError(
                f"cannot fetch from git remote '{remote}': {exc.reason}",
                step="guards",
                resume=resume,
            ) from None
        state = ws.git_state()
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
        cmd = f"git push --dry-run -q {shlex.quote(remote)} {shlex.quote(f'HEAD:{ref}')}"
        if ws.dry:  # reaches the remote: shown, not run
            ws.act(cmd, step="guards")
            return state
        res = ws.probe(cmd)
        if res.failed and _rejected(res.stderr):
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
    if (run_plan.pull or run_plan.push) and "dvc-remote" not in skip and not ws.dry:
        run_plan.remote = graph.remote_check(ws.root)
        if run_plan.remote.problem:
            raise DvcInvokeError(run_plan.remote.problem, step="guards", resume=resume)
    return state


def pull(ws: Workspace, plan: Plan, *, resume: str | None = None) -> list[str]:
    """``dvc pull`` the run's inputs, all in one call; then the outputs of its
    own stages that are up to date but missing from the workspace.

    Without those, a fresh clone would run every stage again, as ``dvc
    repro`` sees its outputs missing. They are pulled ``--allow-missing``:
    one that the remote lacks is simply built again by ``dvc repro``.
    """
    fetch = [f for f in plan.graph.fetch if not overlaps(f, plan.pull)]
    if fetch:
        # Into the cache only: the workspace keeps what is there; the old
        # metrics are read from the cache when they are compared.
        cmd = f"{ws.dvc} fetch {quote_all(fetch)}"
        try:
            ws.act(cmd, step="pull", resume=resume, network=True)
        except DvcInvokeError as exc:
            console.warn(f"the metrics as last published are not on the remote: {exc.reason}")
    if not plan.pull and not plan.graph.restore:
        if not fetch:
            console.info("nothing to pull")
        return []
    if plan.pull:
        ws.act(f"{ws.dvc} pull {quote_all(plan.pull)}", step="pull", resume=resume, network=True)
    restore = [r for r in plan.graph.restore if not overlaps(r, plan.pull)]
    if restore:
        cmd = f"{ws.dvc} pull --allow-missing {quote_all(restore)}"
        ws.act(cmd, step="pull", resume=resume, network=True)
    return plan.pull + restore


def reproduce(ws: Workspace, plan: Plan, *, resume: str | None = None) -> None:
    """Reproduce the pipeline's own stages; forcing never reaches upstream pipelines.

    ``dvc repro --force metrics/dvc.yaml`` would re-run every stage the
    metrics depend on, model training included. The pipeline's own stages
    are given with ``--single-item``, dependencies first (DVC runs them in
    the order given). Upstream pipelines, with ``upstream``, run before as
    whole runs of their own (`rebuild_upstream`).
    """
    flag = "--force " if plan.force else ""
    cmd = f"{ws.dvc} repro --single-item {flag}{quote_all(repro_targets(plan))}"
    ws.act(cmd, step="repro", resume=resume, hints=False)


def warn_stale_upstream(ws: Workspace, plan: Plan) -> None:
    """One line naming the upstream pipelines a run reads stale results of."""
    ups = [u for u in plan.graph.stale_upstream if u.stale]
    if plan.upstream or not ups:
        return
    what = "; ".join(f"{_upstream_name(ws, u.dvcfile)} ({', '.join(u.stale)})" for u in ups)
    console.warn(
        f"upstream is stale: {what}; this run reads its last published results"
        " (--upstream runs it first)"
    )


def _upstream_name(ws: Workspace, dvcfile: str) -> str:
    try:
        return resolve(ws.c, ws.root, dvcfile).name
    except DvcInvokeError:
        return dvcfile


def rebuild_upstream(ws: Workspace, plan: Plan, skip: tuple[str, ...]) -> list[str]:
    """With ``upstream``: each stale upstream pipeline's whole flow, dependencies
    first (its stages, gates, metrics, commit and push), as a run of its own.

    A pipeline's lock is never published next to stale metrics of its own:
    a gate refusing an upstream model stops the run there. Returns the
    names of the pipelines that ran.
    """
    ran = []
    for up in plan.graph.stale_upstream:
        p = resolve(ws.c, ws.root, up.dvcfile)
        why = ", ".join(up.stale) or "what it reads from runs first"
        console.info(f"upstream {p.name} must run first: {why}")
        try:
            run(ws.c, p.name, force=False, upstream=False, skip=skip)
        except DvcInvokeError as exc:
            raise DvcInvokeError(
                f"upstream pipeline {p.name}: {exc.what()}", step="upstream", resume=exc.resume
            ) from None
        ran.append(p.name)
    return ran


def repro_targets(plan: Plan) -> list[str]:
    """The fewest targets that mean the pipeline's own stages, in order.

    DVC collects each target on its own (a 2,000-stage pipeline named stage
    by stage waits minutes before its first stage). With ``--single-item``,
    a dvc.yaml target is its stages in the file's order: when those are the
    pipeline's own stages in dependency order, the file says the same.
    """
    g, dvcfile = plan.graph, plan.pipeline.dvcfile
    if dvcfile and g.file_stages and g.stages == [graph.address(dvcfile, n) for n in g.file_stages]:
        return [dvcfile]
    return list(g.stages)


def measure(ws: Workspace, plan: Plan, rev: str | None) -> list[metrics.Change] | None:
    """The pipeline's metrics (changed or not) and the params that changed, against ``rev``.

    A comparison that cannot be made is a warning (None), not a failure; a
    gate then refuses to publish, since it cannot tell better from worse.
    """
    if ws.dry or not rev:
        return None if ws.dry else []
    from dvc.exceptions import DvcException

    try:
        changes = metrics.compare(ws.root, rev, plan.graph.metric_files)
    except (DvcException, OSError, ValueError) as exc:
        console.warn(f"cannot compare metrics with {short(rev)}: {exc}")
        return None
    old, new = {}, {}
    for lock in plan.graph.lockfiles:
        shown = ws.probe(f"git show {shlex.quote(f'{rev}:{ws.git_prefix}{lock}')}")
        old[lock] = shown.stdout if shown.ok else None
        path = ws.root / lock
        new[lock] = path.read_text() if path.is_file() else None
    return changes + metrics.param_changes(old, new)


def _gate(
    ws: Workspace,
    plan: Plan,
    state: GitState,
    changes: list[metrics.Change] | None,
    resume: str,
) -> None:
    gates = plan.pipeline.gates
    if not gates or ws.dry:
        return
    if changes is None:
        changes = measure(ws, plan, state.commit)
    if changes is None:
        problems = ["the metrics could not be compared with the last commit"]
    else:
        problems = metrics.regressions(gates, changes)
    if problems:
        raise DvcInvokeError(
            "metrics got worse: " + "; ".join(problems) + "; nothing was committed"
            " (to publish it anyway, accept it)",
            step="gate",
            resume=f"{resume} --accept",
        )


def publish(
    ws: Workspace,
    plan: Plan,
    *,
    always_push: bool = False,
    expect: GitState | None = None,
    changes: list[metrics.Change] | None = None,
    accept: bool = False,
    rerun: str | None = None,
) -> Published:
    """Commit what the run changed, ``dvc push`` its data, then ``git push``.

    Only the lock files, DVC's .gitignore entries and outputs kept in git
    are committed, never anything else in the workspace. Data reaches the
    DVC remote before the commit reaches git, so no teammate can fetch a
    lock file whose data is missing. Run again after a failure, it finishes
    what is left: each part is skipped when there is nothing to do.
    """
    p, done = plan.pipeline, Published()
    resume = publish_command(p) + (" --accept" if accept else "")
    state = ws.git_state(step="commit")
    if expect is not None and not ws.dry:
        _refuse_moved_workspace(ws, plan, expect, state, resume)
    if not accept:
        _gate(ws, plan, state, changes, resume)
    if p.commit:
        paths = plan.graph.git_paths()
        changed = paths if ws.dry else ws.changed_paths(paths)
        if changed:
            if not ws.dry:
                _refuse_inconsistent(ws, plan, rerun)
            _commit(ws, changed, p.commit_message, resume)
            done.committed = True
            state.ahead += 1
        else:
            console.info("nothing changed that git tracks: no commit")
    missed = [o for o in plan.graph.push_targets if not overlaps(o, plan.push)]
    if missed:
        console.warn("outputs left out of push=[...] stay local only: " + ", ".join(missed))
    unpublished = done.committed or state.ahead > 0 or not p.commit or ws.dry
    if plan.push and (unpublished or always_push):
        _refuse_moved_remote(plan, resume)
        push = f"{ws.dvc} push {quote_all(plan.push)}"
        ws.act(push, step="dvc push", resume=resume, network=True)
        _verify_remote(ws, plan, resume)
        # Reported: the run's own data (its inputs were only made sure of).
        done.pushed = tuple(t for t in plan.push if t not in plan.graph.push_inputs)
    if p.commit and p.git_push:
        if state.ahead > 0 or ws.dry:
            _push_branch(ws, plan, state, resume, ours=done.committed)
            done.git_pushed = True
        else:
            console.info(f"{state.branch or 'HEAD'} is up to date with its upstream: no git push")
    done.commit = ws.head()
    return done


def _commit(ws: Workspace, paths: list[str], message: str, resume: str) -> None:
    """Commit exactly ``paths``, all or nothing: a failed commit (a hook that
    refused it) leaves nothing staged that would block the next run."""
    files = quote_all(paths)
    try:
        # -f: a file git tracks under an ignored folder (`reports/` after
        # `!reports/train`) is staged, yet `git add` exits 1 without it.
        # Only paths the run owns, as git status listed them, are named.
        ws.act(f"git add -f -- {files}", step="commit", resume=resume)
        ws.act(f"git commit -q -m {shlex.quote(message)} -- {files}", step="commit", resume=resume)
    except DvcInvokeError:
        if not ws.dry:
            ws.probe(f"git reset -q -- {files}")
        raise


def _refuse_inconsistent(ws: Workspace, plan: Plan, rerun: str | None = None) -> None:
    """Publish only a state that a fresh clone finds up to date.

    Refused: files the run's stages read that git does not hold as they are
    (params changed by ``dvc exp run``, a script edited meanwhile), and stages
    of the lock files to commit that DVC does not find up to date (a run that
    stopped halfway, an output changed after the run).
    """
    g, p = plan.graph, plan.pipeline
    rerun = rerun or default_command(p.name, force=plan.force, upstream=plan.upstream)
    own = g.git_paths()
    used = [f for f in ws.changed_paths(g.depends_on) if not overlaps(f, own)]
    if used:
        raise DvcInvokeError(
            f"the run used files git does not hold as they are: {_some(used)};"
            " commit them (or restore them and run again), so that the lock file"
            " matches the commit; nothing was committed",
            step="commit",
            resume=f"git commit, then {publish_command(p)}",
        )
    siblings = [graph.address(p.dvcfile, n) for n in g.file_stages]
    stale = graph.stale(ws.root, list(dict.fromkeys(g.stages + siblings)))
    if stale:
        raise DvcInvokeError(
            f"the pipeline is not up to date, so a fresh clone would run again: {_some(stale)};"
            " nothing was committed",
            step="commit",
            resume=f"{rerun} (or `inv repro.discard --pipeline {shlex.quote(p.name)}`)",
        )


def _some(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _refuse_moved_remote(plan: Plan, resume: str) -> None:
    moved = plan.remote.moved() if plan.remote is not None else None
    if moved:
        raise DvcInvokeError(
            f"{moved}: nothing was pushed; mount or restore it", step="dvc push", resume=resume
        )


def _verify_remote(ws: Workspace, plan: Plan, resume: str) -> None:
    """Before anything reaches git, the DVC remote holds every object the
    commit references: ``dvc push`` says "Everything is up to date" and exits
    0 when the local cache lacks an object, so its word is not enough."""
    cmd = f"{ws.dvc} status --cloud --json {quote_all(plan.push)}"
    res = ws.act(cmd, step="dvc push", resume=resume, network=True, capture=True)
    if ws.dry:
        return
    try:
        status = json.loads((res.stdout or "").strip() or "{}")
    except ValueError:
        raise DvcInvokeError(
            f"cannot read what `dvc status --cloud` said: {res.stdout.strip()[:200]}",
            step="dvc push",
            resume=resume,
        ) from None
    _refuse_moved_remote(plan, resume)
    lacking = [p for p, st in status.items() if st in ("new", "missing")]
    if lacking:
        nowhere = [p for p in lacking if status[p] == "missing"]
        where = (
            f"{_some(nowhere)} exist neither in this cache nor on the remote:"
            " `dvc push` them from the machine that made them"
            if nowhere
            else f"the push of {_some(lacking)} did not complete"
        )
        raise DvcInvokeError(
            f"the DVC remote lacks data the commit references: {where}; nothing was pushed to git",
            step="dvc push",
            resume=resume,
        )


def _refuse_moved_workspace(
    ws: Workspace, plan: Plan, expect: GitState, state: GitState, resume: str
) -> None:
    """A run never commits onto a workspace that moved under it.

    Its lock file describes the code it started from: if HEAD, the branch,
    or any tracked file other than the run's own outputs changed meanwhile,
    committing would record results for code that did not produce them.
    """
    moved = []
    if state.branch != expect.branch:
        moved.append(f"the branch is now {state.branch or '(detached)'} (was {expect.branch})")
    if state.commit != expect.commit:
        moved.append(f"HEAD moved to {short(state.commit)} (was {short(expect.commit)})")
    own = plan.graph.git_paths()
    others = [f for f in map(ws.from_git_top, state.changed) if not overlaps(f, own)]
    if others:
        moved.append("changed during the run: " + ", ".join(others[:5]))
    if moved:
        # Only files changed: most often a stage writes a git-tracked file its
        # dvc.yaml does not declare (an HTML report, say).
        hint = (
            " (if a stage of the run wrote them: git tracks them but no dvc.yaml"
            " declares them; commit them yourself, `git add -f` if git ignores them,"
            " or declare them in the stage's dvc.yaml as outs, metrics or plots)"
            if others and len(moved) == 1
            else ""
        )
        raise DvcInvokeError(
            "the workspace moved during the run: "
            + "; ".join(moved)
            + f"; nothing was committed{hint}",
            step="commit",
            resume=f"review `git status` and `git log`, then {resume}",
        )


def _upstream(ws: Workspace, state: GitState, resume: str) -> tuple[str, str]:
    if state.branch is None:
        raise DvcInvokeError("HEAD is detached: nothing to push to", step="git push", resume=resume)
    target = ws.upstream_target(state.branch)
    if target is None:
        raise DvcInvokeError(
            f"branch '{state.branch}' has no upstream: run `git push -u origin {state.branch}`",
            step="git push",
            resume=resume,
        )
    return target


def _push_branch(ws: Workspace, plan: Plan, state: GitState, resume: str, *, ours: bool) -> None:
    """``git push`` the branch; when a teammate pushed meanwhile, replay and push again.

    The run's commit is replayed on top of the teammates' commits only when
    they touch nothing the run depends on (its stages' deps and dvc.yaml, the
    files behind its inputs, the files it commits). Otherwise the run's lock
    file is stale for the new code: it is not pushed to the branch; the
    commit is kept on a branch of its own, and the branch goes back to where
    the run started, so that no later `git push` publishes it by accident.
    """
    remote, ref = _upstream(ws, state, resume)
    push = f"git push {shlex.quote(remote)} {shlex.quote(f'HEAD:{ref}')}"
    if ws.dry:
        ws.act(push, step="git push", resume=resume)
        return
    for _ in range(3):
        try:
            ws.act(push, step="git push", resume=resume, network=True)
            return
        except DvcInvokeError as exc:
            said = _refused_by_server(exc.log)
            if said is not None:
                _keep_aside(ws, plan, state, remote, why=f"{remote} refused it: {said}", ours=ours)
            if not _rejected(exc.log):
                raise
        console.warn("git push was rejected: teammates pushed meanwhile; fetching their commits")
        ws.act(f"git fetch -q {shlex.quote(remote)}", step="git push", resume=resume, network=True)
        theirs = ws.probe("git diff --name-only -z HEAD...@{u}").stdout.split("\0")
        touched = [
            f
            for f in map(ws.from_git_top, filter(None, theirs))
            if overlaps(f, plan.graph.depends_on + plan.graph.git_paths())
        ]
        if touched or not ws.probe("git rebase -q @{u}").ok:
            ws.probe("git rebase --abort")
            why = (
                f"teammates changed what {plan.pipeline.name} depends on ({', '.join(touched[:5])})"
                if touched
                else "teammates' commits do not replay cleanly under the run's commit"
            )
            _keep_aside(ws, plan, state, remote, why=why, ours=ours, stale=True)
        console.info(f"replayed the run's commit on top of {state.upstream}")
    raise DvcInvokeError(
        "git push kept being rejected: teammates keep pushing", step="git push", resume=resume
    )


def _rejected(output: str | None) -> bool:
    text = output or ""
    return "[rejected]" in text or "non-fast-forward" in text or "fetch first" in text


def _refused_by_server(output: str | None) -> str | None:
    """What the server said when it refused the push for good (a protected
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


def _keep_aside(
    ws: Workspace,
    plan: Plan,
    state: GitState,
    remote: str,
    *,
    why: str,
    ours: bool,
    stale: bool = False,
) -> None:
    """Keep the run's commit on a branch of its own and refuse the push, saying why.

    A stale run's branch is pushed only with ``push_side_branch``; a run the
    server refused (a protected branch) is pushed for review, as a pull
    request would want it. The branch goes back to where the run started.
    """
    p = plan.pipeline
    side = f"dvc-invoke/{slug(p.name)}/{time.strftime('%Y%m%d-%H%M%S')}"
    ws.act(f"git branch {shlex.quote(side)} HEAD", step="git push")
    where = f"kept on branch {side}"
    pushed = False
    if settings(ws.c).push_side_branch or not stale:
        spec = shlex.quote(f"{side}:refs/heads/{side}")
        try:
            ws.act(f"git push {shlex.quote(remote)} {spec}", step="git push", network=True)
            where += f" (pushed to {remote})"
            pushed = True
        except DvcInvokeError:
            if stale:
                raise
            where += f" (not pushed: {remote} refused it too)"
    if ours:
        ws.act("git reset -q --keep HEAD~1", step="git push")
        where += f"; {state.branch} is back where the run started"
    if stale:
        raise DvcInvokeError(
            f"git push rejected: {why}, so the run's results are stale for the new code;"
            f" nothing was pushed to {state.branch}; the run's commit is {where}",
            step="git push",
            resume="git pull, then "
            + default_command(p.name, force=plan.force, upstream=plan.upstream),
        )
    review = "open a pull request from it" if pushed else f"push it where {remote} allows"
    raise DvcInvokeError(
        f"git push rejected for good: {why}; nothing was pushed to {state.branch};"
        f" the run's commit (its data is on the DVC remote) is {where}",
        step="git push",
        resume=f"{review}: {side}",
    )


def default_command(name: str, *, force: bool, upstream: bool) -> str:
    command = f"inv repro --pipeline {shlex.quote(name)}"
    command += " --force" if force else ""
    command += " --upstream" if upstream else ""
    return command


def run(
    c: Any,
    name: str,
    *,
    force: bool | None = None,
    upstream: bool | None = None,
    detach: bool = False,
    command: str | None = None,
    skip: tuple[str, ...] | list[str] = (),
) -> RunReport | None:
    """The whole flow for pipeline ``name``; raises `DvcInvokeError` on failure.
    ``force``/``upstream`` left None take the pipeline's own setting.

    Everything that can fail fast runs here, in the foreground: the
    pipeline, the guards, its targets, the Slack set-up, and whether another
    run holds the workspace. With ``detach`` the rest then runs in a
    background process that survives the terminal, and this returns at once.
    """
    ws = Workspace(c)
    p = resolve(c, ws.root, name)
    command = command or default_command(name, force=bool(force), upstream=bool(upstream))
    # Set in the process that --detach started: run in it, do not detach again.
    adopted = os.environ.pop(runs.ENV_RUN, None)
    skip = tuple(skip or ())
    state = ws.git_state()  # not a git repository: say so before anything else
    need_dvcfile(ws, p)
    run_plan = plan(ws, p, force=force, upstream=upstream)
    state = check(ws, p, resume=command, own=run_plan.graph.git_paths(), state=state)
    if not adopted:
        warn_stale_upstream(ws, run_plan)
    # A dry run tells nobody: it shows on the console what the run would do.
    chain: list[Any] = [notifiers.ConsoleNotifier()]
    if not ws.dry:
        chain = notifiers.notifiers(c, ws.root, slack=p.slack)
    if not adopted:
        state = preflight(ws, run_plan, state, skip=skip, resume=command)
    elif "dvc-remote" not in skip:
        run_plan.remote = graph.remote_check(ws.root)
    if ws.dry:
        report = RunReport(pipeline=p.name, command=command, step="pull")
        report.branch, report.commit_before = state.branch, state.commit
        if detach and not adopted:
            report.id, report.log = "RUN-ID", str(runs.Store(ws.root).log_path("RUN-ID"))
            launch(ws, report)
            console.result(True, "dry run: nothing was started")
            return None
        return _execute(ws, run_plan, report, chain, state, None, skip=skip)
    store = runs.Store(ws.root)
    if adopted:
        report = store.adopt(adopted, p.name)
    else:
        report = RunReport(
            pipeline=p.name,
            command=command,
            step="pull",
            detached=detach,
            slack=dict(p.slack) if p.slack else None,
        )
        report.branch, report.commit_before = state.branch, state.commit
        if not detach:
            report.pid = os.getpid()
            # The process group is the run's to kill only when it leads it (a
            # shell's job); started by a script, the group is the script's.
            report.pgid = os.getpgrp() if os.getpgrp() == report.pid else None
            report.process_started = runs.process_identity(report.pid)
        tell_lost(c, ws, store.claim(report))
        launched = False
        try:
            if "slack" not in skip:
                refusals = notifiers.announce(chain, report)
                if refusals:
                    raise DvcInvokeError(
                        f"Slack refused the run's first message ({'; '.join(refusals)}):"
                        " fix SLACK_BOT_TOKEN / SLACK_CHANNEL, or run with --skip slack",
                        step="guards",
                    )
                store.save(report)
            if detach:
                launch(ws, report)
                launched = True
        except BaseException:
            # Refused, interrupted or cut off (a closed pipe) before the run
            # started: no record may claim the workspace for a run that never was.
            if not launched:
                store.forget(report)
            raise
        if detach:
            with contextlib.suppress(BrokenPipeError):
                console.result(True, f"{p.name} is running in the background as run {report.id}")
                console.info(f"log:     {report.log}")
                console.info(f"follow:  inv repro.logs --run {report.id} --follow")
                console.info(f"cancel:  inv repro.cancel --run {report.id}")
            return report
    announced = not adopted and "slack" not in skip
    with runs.marked(report):
        return _execute(ws, run_plan, report, chain, state, store, announced=announced, skip=skip)


def _execute(
    ws: Workspace,
    run_plan: Plan,
    report: RunReport,
    chain: list[Any],
    start: GitState,
    store: runs.Store | None,
    *,
    announced: bool = False,
    skip: tuple[str, ...] = (),
) -> RunReport:
    """Pull, repro, publish and notify, keeping the run's record and log.

    With ``upstream``, the stale upstream pipelines run first, each a run
    of its own; the pipeline is then read again, from the commit they left.
    """

    def save(step: str | None = None) -> None:
        report.step = step if step is not None else report.step
        if store is not None:
            store.save(report)

    p, command = run_plan.pipeline, report.command
    keep_log = store is not None and report.log is not None and not report.detached
    log = open(report.log, "a") if keep_log and report.log else None  # noqa: SIM115
    with contextlib.ExitStack() as stack, Interrupts() as interrupts:
        if log is not None:
            stack.enter_context(log)
            stack.enter_context(console.log_to(log))
        ws.interrupts, ws.log = interrupts, log
        try:
            if not announced and store is not None:
                notifiers.deliver(chain, report)
            if run_plan.upstream and run_plan.graph.stale_upstream:
                save("upstream")
                ups = ", ".join(u.dvcfile for u in run_plan.graph.stale_upstream)
                console.step(p.name, "upstream", ups)
                if rebuild_upstream(ws, run_plan, skip) and not ws.dry:
                    remote = run_plan.remote
                    run_plan = plan(ws, p, force=run_plan.force, upstream=True)
                    run_plan.remote = remote
                    start = ws.git_state(step="upstream")
            save("pull")
            console.step(p.name, "pull")
            report.pulled = pull(ws, run_plan, resume=command)
            save("repro")
            detail = ", ".join(run_plan.graph.stages) + (" (forced)" if run_plan.force else "")
            console.step(p.name, "repro", detail)
            reproduce(ws, run_plan, resume=command)
            changes = measure(ws, run_plan, start.commit)
            report.metrics = [
                {**c.to_dict(), **({"gated": True} if _gated(p, c.name) else {})}
                for c in changes or []
                if c.changed
            ]
            save("publish")
            console.step(p.name, "publish")
            done = publish(ws, run_plan, expect=start, changes=changes, rerun=command)
        except (DvcInvokeError, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):
                exc = Cancelled("interrupted (SIGINT)", step=report.step, resume=command)
            resume = exc.resume or command
            if isinstance(exc, Cancelled) and report.step == "publish":
                resume = publish_command(p)
            elif isinstance(exc, Cancelled) and report.step == "repro" and not ws.dry:
                resume = _after_interrupted_repro(ws, run_plan, command)
            report.commit_after = ws.head()
            if log is not None:
                log.flush()
            tail = runs.read_tail(report.log) or exc.log
            status = "cancelled" if isinstance(exc, Cancelled) else "failed"
            report.step = exc.step or report.step
            report.end(status, reason=exc.reason, resume=resume, log_tail=tail)
            notifiers.deliver(chain, report)
            save()
            if isinstance(exc, Cancelled):
                raise Cancelled(exc.reason, step=report.step, resume=resume) from None
            raise exc from None
        finally:
            ws.interrupts, ws.log = None, None
        if store is None:  # a dry run
            console.result(True, f"dry run of {p.name}: nothing was done")
            return report
        report.committed, report.git_pushed = done.committed, done.git_pushed
        report.pushed = list(done.pushed)
        report.commit_after = done.commit
        report.end("succeeded")
        notifiers.deliver(chain, report)
        save(None)
    return report


def _gated(p: Pipeline, name: str) -> bool:
    return any(g.matches(name) for g in p.gates or ())


def _after_interrupted_repro(ws: Workspace, plan: Plan, rerun: str) -> str:
    """What to run after an interrupt during repro: when DVC finished the
    stages anyway (the interrupt reached the run alone), publishing them, not
    running them again."""
    if not ws.changed_paths(plan.graph.lockfiles):
        return rerun  # no stage got as far as its lock
    try:
        unfinished = graph.stale(ws.root, plan.graph.stages, outputs_here=True)
    except DvcInvokeError:
        return rerun
    return rerun if unfinished else publish_command(plan.pipeline)


def discard(ws: Workspace, p: Pipeline) -> list[str]:
    """Put the pipeline's own files back as HEAD has them, after a failed or
    refused run: its lock files and the files git holds for it with
    ``git restore``, its cached outputs with ``dvc checkout --force``. Nothing
    else in the workspace is touched. Returns what git restored."""
    if not ws.dry:
        runs.Store(ws.root).free()  # never under a run that is still writing
    run_plan = plan(ws, p, force=True)  # forced: nothing to restore from the remote here
    own = run_plan.graph.git_paths()
    at_head = ws.probe("git ls-tree -r -z --name-only --full-name HEAD -- " + quote_all(own))
    known = {ws.from_git_top(f) for f in at_head.stdout.split("\0") if f}
    changed = [f for f in ws.changed_paths(own) if f in known]
    if changed:
        ws.act(
            f"git restore --source=HEAD --staged --worktree -- {quote_all(changed)}", step="discard"
        )
    outputs = run_plan.graph.push_targets
    if outputs:
        ws.act(f"{ws.dvc} checkout --force {quote_all(outputs)}", step="discard")
    return changed


def finish(c: Any, name: str, *, accept: bool = False) -> Published:
    """``inv publish``: publish a pipeline's results by hand, and tell the team.

    When the pipeline's latest run failed or was cancelled while publishing
    (its resume command is ``inv publish``), that run is finished: its record
    and its Slack message turn to succeeded, so that nobody keeps waiting for
    data that is now on the remote. Otherwise the team hears of a publish
    that committed or pushed something; one with nothing to do stays quiet.
    A publish that fails again tells only the console: the team already knows.
    """
    ws = Workspace(c)
    p = resolve(c, ws.root, name)
    store = runs.Store(ws.root)
    if not ws.dry:
        # Never commit under a run that is still writing to the workspace.
        tell_lost(c, ws, store.free())
    before = ws.git_state(step="commit")
    if p.commit and p.git_push and before.branch is None:
        raise DvcInvokeError(
            "HEAD is detached: a commit here would be lost on the next checkout;"
            " check out the branch to publish to",
            step="commit",
            resume=publish_command(p),
        )
    run_plan = plan(ws, p)
    pending = None if ws.dry else unpublished_run(store, p, before, ws, run_plan)
    if run_plan.push and not ws.dry:
        run_plan.remote = graph.remote_check(ws.root)
        if run_plan.remote.problem:
            raise DvcInvokeError(
                run_plan.remote.problem, step="dvc push", resume=publish_command(p)
            )
    chain = notifiers.notifiers(c, ws.root, slack=p.slack)
    console.step(p.name, "publish", f"run {pending.id}" if pending else "")
    done = publish(ws, run_plan, always_push=True, accept=accept)
    if ws.dry:
        return done
    command = publish_command(p) + (" --accept" if accept else "")
    if pending is not None:
        report = pending
        # The run made its commit before publishing failed: HEAD moved under it.
        moved = report.commit_after not in (None, report.commit_before)
        report.committed = report.committed or done.committed or moved
        report.git_pushed = report.git_pushed or done.git_pushed
    elif done.committed or done.git_pushed:
        report = RunReport(
            pipeline=p.name, command=command, slack=dict(p.slack) if p.slack else None
        )
        report.branch, report.commit_before = before.branch, before.commit
        report.committed, report.git_pushed = done.committed, done.git_pushed
    else:
        console.result(True, f"{p.name}: already published at {short(done.commit)}")
        return done
    report.step, report.published_by = None, command
    report.pushed, report.commit_after = list(done.pushed), done.commit
    report.end("succeeded")
    notifiers.deliver(chain, report)
    if pending is not None:
        store.save(report)
        if report.log and os.path.isfile(report.log):
            with open(report.log, "a") as log:
                log.write(f"\n✔ {p.name} succeeded: published by hand with {command}\n")
    return done


def unpublished_run(
    store: runs.Store,
    p: Pipeline,
    state: GitState,
    ws: Workspace | None = None,
    run_plan: Plan | None = None,
) -> RunReport | None:
    """The pipeline's latest run, if it ended waiting for ``inv publish`` on the
    branch the workspace is on, at the commit it is at now or one that only
    adds commits the run's results do not depend on (a report the user
    committed by hand, say); else what is published is not that run's work."""
    for report in store.all():
        if report.pipeline == p.name:
            waiting = report.status in ("failed", "cancelled")
            # "inv publish …", or "review `git status`, then inv publish …"
            waiting = waiting and publish_command(p) in (report.resume or "")
            here = report.branch == state.branch and (
                report.commit_after == state.commit
                or _only_unrelated_since(ws, run_plan, report.commit_after)
            )
            return report if waiting and here else None
    return None


def _only_unrelated_since(ws: Workspace | None, run_plan: Plan | None, rev: str | None) -> bool:
    """Whether HEAD descends from ``rev`` through commits that touch nothing
    the pipeline's results depend on."""
    if ws is None or run_plan is None or not rev:
        return False
    if not ws.probe(f"git merge-base --is-ancestor {shlex.quote(rev)} HEAD").ok:
        return False
    changed = ws.probe(f"git diff --name-only -z {shlex.quote(rev)} HEAD")
    if not changed.ok:
        return False
    deps = run_plan.graph.depends_on
    return not any(overlaps(ws.from_git_top(f), deps) for f in changed.stdout.split("\0") if f)


def tell_lost(c: Any, ws: Workspace, lost: list[RunReport]) -> None:
    """Tell the team about runs found dead, each with its own pipeline's Slack set-up."""
    for report in lost:
        console.warn(f"run {report.id} ({report.pipeline}) was lost: its process is gone")
        runs.tell_lost([report], notifiers.notifiers(c, ws.root, slack=report.slack))
        runs.Store(ws.root).save(report)


def relaunch_argv() -> list[str]:
    """The command line of this process, to run again in the background."""
    program = sys.argv[0]
    if os.path.basename(program) in ("inv", "invoke") or program.endswith("__main__.py"):
        return [sys.executable, "-m", "invoke", *sys.argv[1:]]
    return [program, *sys.argv[1:]]  # a program of its own, built on invoke


def launch(ws: Workspace, report: RunReport) -> None:
    """Start the run in a new session that survives the terminal and the ssh session.

    invoke's ``disown=True`` only stops waiting; the command detaches itself:
    ``setsid`` (a session of its own, away from the terminal's hangup),
    ``nohup``, output to the run's log and nothing on stdin. After the run's
    process ends, however it ends, ``python -m dvc_invoke settle`` reports the
    run as lost if it left no result.
    """
    assert report.id and report.log
    settle = [sys.executable, "-m", "dvc_invoke", "settle", str(ws.root), report.id]
    inner = f"{quote_all(relaunch_argv())}; {quote_all(settle)}"
    setsid = "setsid " if shutil.which("setsid") else ""
    cmd = (
        f"cd {shlex.quote(os.getcwd())} && {runs.ENV_RUN}={shlex.quote(report.id)}"
        f" {setsid}nohup sh -c {shlex.quote(inner)}"
        f" > {shlex.quote(report.log)} 2>&1 < /dev/null"
    )
    ws.c.run(cmd, disown=True, hide=True, in_stream=False)
