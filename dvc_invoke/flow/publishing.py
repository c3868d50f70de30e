"""Publishing a run's results: the gates, the commit, ``dvc push`` and its check, ``git push``.

Data reaches the DVC remote, and is verified there, before the lock file
reaches git; a push that teammates' commits make stale keeps the run's
commit on a branch of its own; nothing inconsistent is ever committed."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from dvc_invoke import console, tasknames
from dvc_invoke.adapters import timelimits
from dvc_invoke.adapters.dvc import dvcfiles, metrics, staleness
from dvc_invoke.adapters.dvc import remote as dvc_remote
from dvc_invoke.adapters.dvc.model import address
from dvc_invoke.adapters.git import GitState, push_rejected, refused_by_server
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.config.paths import overlaps
from dvc_invoke.config.pipelines import slug
from dvc_invoke.errors import Cancelled, DvcInvokeError
from dvc_invoke.flow.plan import Plan, default_command, publish_command
from dvc_invoke.runs.metrics import Change, regressions, unmatched
from dvc_invoke.runs.record import short, some

_NO_GIT = "nothing was pushed to git"


@dataclass
class Published:
    committed: bool = False
    pushed: tuple[str, ...] = ()
    git_pushed: bool = False
    commit: str | None = None
    # DVC files a stage rewrote with entries of its own (dvclive's), committed with the lock.
    rewritten: tuple[str, ...] = ()


def measure(ws: Workspace, plan: Plan, rev: str | None) -> list[Change] | None:
    """The pipeline's metrics (changed or not) and the params that changed, against ``rev``;
    none when nothing changed and the pipeline has no gate to read them.

    A comparison that cannot be made is a warning (None), not a failure; a
    gate then refuses to publish, since it cannot tell better from worse.
    """
    if ws.dry or not rev:
        return None if ws.dry else []
    from dvc.exceptions import DvcException

    # Nothing git tracks changed since ``rev`` (the lock files included, so no
    # cached output either): the metrics are those of ``rev``, read once.
    unchanged = ws.git.head() == rev and not ws.git.changed_paths(
        plan.graph.lockfiles + plan.graph.declared + plan.graph.metric_files, unknown=True
    )
    if unchanged and not plan.pipeline.gates:
        return []  # nothing moved, and no gate asks for the values that did not
    try:
        changes = metrics.compare(ws.root, rev, plan.graph.metric_files, unchanged=unchanged)
    except (DvcException, OSError, ValueError) as exc:
        console.warn(f"cannot compare metrics with {short(rev)}: {exc}")
        return None
    if unchanged:
        return changes
    old, new = {}, {}
    for lock in plan.graph.lockfiles:
        old[lock] = ws.git.show(rev, lock)
        path = ws.root / lock
        new[lock] = path.read_text() if path.is_file() else None
    return changes + metrics.param_changes(old, new)


def baseline(ws: Workspace, state: GitState) -> str | None:
    """The commit metrics are compared with: what the branch's upstream last
    published, as fetched (the commit a teammate's fresh clone gets), whatever
    local commits lie between it and HEAD; HEAD's without an upstream."""
    if state.branch and state.upstream:
        return ws.git.commit_of("@{upstream}") or state.commit
    return state.commit


def _gate(
    ws: Workspace,
    plan: Plan,
    state: GitState,
    changes: list[Change] | None,
    resume: str,
) -> None:
    gates = plan.pipeline.gates
    if not gates or ws.dry:
        return
    if changes is None:
        changes = measure(ws, plan, baseline(ws, state))
    if changes is None:
        problems = ["the metrics could not be compared with what the branch last published"]
    else:
        problems = regressions(gates, changes)
        mismatched = unmatched(gates, changes, plan.graph.metric_files)
        if mismatched and not problems:  # nothing got worse: a gate to mend, not to accept
            raise DvcInvokeError(
                "; ".join(mismatched) + "; nothing was committed",
                step="gate",
                resume=f"mend the gate, then {resume}",
            )
        problems += mismatched
    if problems:
        raise DvcInvokeError(
            "metrics got worse: " + "; ".join(problems) + "; nothing was committed",
            step="gate",
            resume=f"{resume} --accept",
        )


def publish(
    ws: Workspace,
    plan: Plan,
    *,
    always_push: bool = False,
    expect: GitState | None = None,
    changes: list[Change] | None = None,
    accept: bool = False,
    rerun: str | None = None,
    aside: str | None = None,
    ran: bool = True,
    also: tuple[str, ...] = (),
) -> Published:
    """Commit what the run changed, ``dvc push`` its data, then ``git push``.

    Only the lock files, DVC's .gitignore entries and outputs kept in git
    are committed, never anything else in the workspace. ``aside``: HEAD is
    a run's commit that was kept on that branch (origin refused it): checked
    as a commit of the run's would be, and kept there again if refused again.
    ``ran``: whether stages ran; under ``--dry`` a run whose stages will not
    run shows only the commit and pushes that what is there now calls for. Data reaches the
    DVC remote before the commit reaches git, so no teammate can fetch a
    lock file whose data is missing. Run again after a failure, it finishes
    what is left: each part is skipped when there is nothing to do. ``also``:
    files the pipeline reads, committed with the lock (an applied experiment's
    params).
    """
    p, done = plan.pipeline, Published()
    resume = publish_command(p) + (" --accept" if accept else "")
    unknown = ws.dry and ran  # what the stages will change is not known yet
    state = ws.git.state(step="commit")
    found = dvcfiles.Survey() if ws.dry else _settle_rewrites(ws, plan, state, resume)
    done.rewritten = tuple(f for f in found.own if dvcfiles.is_dvcfile(f))
    if expect is not None and not ws.dry:
        _refuse_moved_workspace(ws, plan, expect, state, resume, found)
    if not accept:
        _gate(ws, plan, state, changes, resume)
    if p.commit:
        done.committed = _commit(
            ws, plan, done.rewritten + also, resume, rerun, unknown=unknown, aside=aside
        )
        state.ahead += int(done.committed)
    missed = [o for o in plan.graph.push_targets if not overlaps(o, plan.push)]
    if missed:
        console.warn("outputs left out of push=[...] stay local only: " + ", ".join(missed))
    unpublished = done.committed or state.ahead > 0 or not p.commit or unknown
    if plan.push and (unpublished or always_push):
        _push_data(ws, plan, resume)
        # Reported: the run's own data (its inputs were only made sure of).
        done.pushed = tuple(t for t in plan.push if t not in plan.graph.push_inputs)
    if p.commit and p.git_push:
        if state.ahead > 0 or unknown or (ws.dry and done.committed):
            _push_branch(ws, plan, state, resume, ours=done.committed or bool(aside), aside=aside)
            done.git_pushed = True
        else:
            console.info(f"{state.branch or 'HEAD'} is up to date with its upstream: no git push")
    done.commit = ws.git.head()
    return done


def _commit(
    ws: Workspace,
    plan: Plan,
    rewritten: tuple[str, ...],
    resume: str,
    rerun: str | None,
    *,
    unknown: bool,
    aside: str | None,
) -> bool:
    """Commit the run's own files that changed (all of them when a dry run cannot
    know yet), after the consistency check; whether a commit was made."""
    paths = plan.graph.git_paths() + list(rewritten)
    changed = paths if unknown else ws.git.changed_paths(paths)
    if not changed:
        if aside and not ws.dry:
            _refuse_inconsistent(ws, plan, rerun)
        console.info("nothing changed that git tracks: no commit")
        return False
    if not ws.dry:
        _refuse_inconsistent(ws, plan, rerun, rewritten)
    ws.git.commit(changed, plan.pipeline.commit_message, resume=resume)
    return True


def _push_data(ws: Workspace, plan: Plan, resume: str) -> None:
    """``dvc push`` of the run's data, stopped at its time limit, then verified on the remote."""
    _refuse_moved_remote(plan, resume)
    push = f"{ws.dvc} push {quote_all(plan.push)}"
    # A limit runs dvc as a process (only a process can be stopped).
    with timelimits.limited(ws.c, "dvc_push", step="dvc push", resume=resume, kept=_NO_GIT):
        ws.act(push, step="dvc push", resume=resume, network=True)
    _verify_remote(ws, plan, resume)


def _settle_rewrites(ws: Workspace, plan: Plan, state: GitState, resume: str) -> dvcfiles.Survey:
    """What DVC and dvclive rewrote for the run among the changed tracked files:
    a ``dvc.yaml`` rewritten with nothing DVC reads changed gets its committed
    text back; dvclive's entries for the run's outputs are the run's to commit;
    a line of someone else's in DVC's ``.gitignore`` refuses the commit."""
    changed = [ws.git.from_top(f) for f in state.changed]
    found = dvcfiles.survey(
        ws, plan.graph, [f for f in changed if dvcfiles.is_dvcfile(f) or dvcfiles.is_gitignore(f)]
    )
    if found.foreign:
        lines = "; ".join(f"{f}: {', '.join(v[:3])}" for f, v in found.foreign.items())
        raise DvcInvokeError(
            f"lines DVC did not write changed during the run ({lines}); nothing was committed;"
            " restore them (`git restore` the files, then the run's own lines come back"
            " with its rerun) or commit them apart",
            step="commit",
            resume=resume,
        )
    if found.restore:
        ws.git.restore(found.restore, step="commit")
        console.info(
            f"{some(found.restore)}: rewritten by a stage (dvclive) with nothing DVC reads"
            " changed; the committed text is kept"
        )
    for path in found.own:
        if dvcfiles.is_dvcfile(path):
            entries = some(found.rewrites[path].entries, 3)
            console.info(
                f"{path}: dvclive's entries for the run's outputs ({entries}) are committed"
            )
    return found


def _refuse_inconsistent(
    ws: Workspace, plan: Plan, rerun: str | None = None, rewritten: tuple[str, ...] = ()
) -> None:
    """Publish only a state that a fresh clone finds up to date.

    Refused: files the run's stages read that git does not hold as they are
    (params changed by ``dvc exp run``, a script edited meanwhile), and stages
    of the lock files to commit that DVC does not find up to date (a run that
    stopped halfway, an output changed after the run).
    """
    g, p = plan.graph, plan.pipeline
    rerun = rerun or default_command(p.name, force=plan.force, upstream=plan.upstream)
    own = g.git_paths() + list(rewritten)
    used = [f for f in ws.git.changed_paths(g.depends_on) if not overlaps(f, own)]
    if used:
        refused = DvcInvokeError(
            f"the run used files git does not hold as they are: {some(used)};"
            " commit them (or restore them and run again), so that the lock file"
            " matches the commit; nothing was committed",
            step="commit",
            resume=f"git commit -m {shlex.quote(f'Inputs of {p.name}')} -- {quote_all(used)},"
            f" then {publish_command(p)}",
        )
        refused.to_commit = used
        raise refused
    siblings = [address(p.dvcfile, n) for n in g.file_stages]
    stale = staleness.stale(ws.root, list(dict.fromkeys(g.stages + siblings)))
    if stale:
        discard = tasknames.command("repro.discard")
        raise DvcInvokeError(
            f"the pipeline is not up to date, so a fresh clone would run again: {some(stale)};"
            " nothing was committed",
            step="commit",
            resume=f"{rerun} (or `{discard} --pipeline {shlex.quote(p.name)}`)",
        )


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
    status = dvc_remote.lacking(ws, plan.push, step="dvc push", resume=resume)
    if ws.dry:
        return
    _refuse_moved_remote(plan, resume)
    lacking = list(status)
    if lacking:
        nowhere = [p for p in lacking if status[p] == "missing"]
        where = (
            f"{some(nowhere)} exist neither in this cache nor on the remote:"
            " `dvc push` them from the machine that made them"
            if nowhere
            else f"the push of {some(lacking)} did not complete"
        )
        raise DvcInvokeError(
            f"the DVC remote lacks data the commit references: {where}; nothing was pushed to git",
            step="dvc push",
            resume=resume,
        )


def _refuse_moved_workspace(
    ws: Workspace,
    plan: Plan,
    expect: GitState,
    state: GitState,
    resume: str,
    found: dvcfiles.Survey | None = None,
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
    found = found or dvcfiles.Survey()
    own = plan.graph.git_paths() + found.own + found.restore
    others = [f for f in map(ws.git.from_top, state.changed) if not overlaps(f, own)]
    if moved:
        if others:
            moved.append("changed during the run: " + some(others))
        raise DvcInvokeError(
            "the workspace moved during the run: " + "; ".join(moved) + "; nothing was committed",
            step="commit",
            resume=f"review `git status` and `git log`, then {resume}",
        )
    rewrites = [found.rewrites[f] for f in others if f in found.rewrites]
    if rewrites:
        raise DvcInvokeError(
            "; ".join(dvcfiles.dvclive_hint(r) for r in rewrites) + "; nothing was committed",
            step="commit",
            resume=resume,
        )
    if others:
        # Most often a stage wrote a file git tracks that its dvc.yaml does not
        # declare (an HTML report, say); or someone edited it meanwhile.
        files = some(others)
        refused = DvcInvokeError(
            f"files no dvc.yaml declares changed during the run: {files}; nothing was"
            " committed. Written by a stage: commit them yourself (`git add -f` if git"
            " ignores them), or declare them in its dvc.yaml as outs, metrics or plots."
            " Edited by hand: commit or restore them",
            step="commit",
            resume=resume,
        )
        refused.to_commit = others
        raise refused


def _upstream(ws: Workspace, state: GitState, resume: str) -> tuple[str, str]:
    if state.branch is None:
        raise DvcInvokeError("HEAD is detached: nothing to push to", step="git push", resume=resume)
    target = ws.git.upstream_target(state.branch)
    if target is None:
        raise DvcInvokeError(
            f"branch '{state.branch}' has no upstream: run `git push -u origin {state.branch}`",
            step="git push",
            resume=resume,
        )
    return target


def _push_branch(
    ws: Workspace, plan: Plan, state: GitState, resume: str, *, ours: bool, aside: str | None = None
) -> None:
    """``git push`` the branch; when a teammate pushed meanwhile, replay and push again.

    The run's commit is replayed on top of the teammates' commits only when
    they touch nothing the run depends on (its stages' deps and dvc.yaml, the
    files behind its inputs, the files it commits). Otherwise the run's lock
    file is stale for the new code: it is not pushed to the branch; the
    commit is kept on a branch of its own, and the branch goes back to where
    the run started, so that no later `git push` publishes it by accident.
    """
    remote, ref = _upstream(ws, state, resume)
    git = ws.git
    if ws.dry:
        git.push(remote, ref, step="git push", resume=resume)
        return
    for _ in range(3):
        try:
            git.push(remote, ref, step="git push", resume=resume)
            return
        except DvcInvokeError as exc:
            said = refused_by_server(exc.log)
            if said is not None:
                why = f"{remote} refused it: {said}"
                _keep_aside(ws, plan, state, remote, why=why, ours=ours, side=aside)
            if not push_rejected(exc.log):
                raise
        console.warn("git push was rejected: teammates pushed meanwhile; fetching their commits")
        git.fetch(remote, step="git push", resume=resume)
        touched = [
            f
            for f in git.changed_upstream()
            if overlaps(f, plan.graph.depends_on + plan.graph.git_paths())
        ]
        if touched or not git.replay_on_upstream():
            why = (
                f"teammates changed what {plan.pipeline.name} depends on ({', '.join(touched[:5])})"
                if touched
                else "teammates' commits do not replay cleanly under the run's commit"
            )
            _keep_aside(ws, plan, state, remote, why=why, ours=ours, stale=True, side=aside)
        console.info(f"replayed the run's commit on top of {state.upstream}")
    raise DvcInvokeError(
        "git push kept being rejected: teammates keep pushing", step="git push", resume=resume
    )


def _keep_aside(
    ws: Workspace,
    plan: Plan,
    state: GitState,
    remote: str,
    *,
    why: str,
    ours: bool,
    stale: bool = False,
    side: str | None = None,
) -> None:
    """Keep the run's commit on a branch of its own and refuse the push, saying why.

    A stale run's branch is pushed only with ``push_side_branch``; a run the
    server refused (a protected branch) is pushed for review, as a pull
    request would want it. The branch goes back to where the run started.
    """
    p = plan.pipeline
    git = ws.git
    if side is None:  # else the run's commit is on that branch already
        side = f"dvc-invoke/{slug(p.name)}/{time.strftime('%Y%m%d-%H%M%S')}"
        git.branch(side, step="git push")
    where = f"kept on branch {side}"
    pushed = False
    try:
        if ws.settings.push_side_branch or not stale:
            try:
                git.push(remote, f"refs/heads/{side}", source=side, step="git push")
                where += f" (pushed to {remote})"
                pushed = True
            except Cancelled:
                raise
            except DvcInvokeError as exc:
                where += f" (not pushed: {refused_by_server(exc.log) or exc.reason})"
    finally:
        # Whatever happened to the side branch, the run's commit leaves this one.
        if ours:
            git.drop_last_commit(step="git push")
    if ours:
        where += f"; {state.branch} is back where the run started"
    if stale:
        refused = DvcInvokeError(
            f"git push rejected: {why}, so the run's results are stale for the new code;"
            f" nothing was pushed to {state.branch}; the run's commit is {where}",
            step="git push",
            resume="git pull, then "
            + default_command(p.name, force=plan.force, upstream=plan.upstream),
        )
    else:
        if pushed:
            review, resume = "", f"open a pull request from {side}"
        else:  # a command of its own: inv publish puts the commit back and pushes it
            review, resume = f"; push it where reviews happen (`git push REMOTE {side}`)", None
        refused = DvcInvokeError(
            f"git push rejected for good: {why}; nothing was pushed to {state.branch};"
            f" the run's commit (its data is on the DVC remote) is {where}{review}",
            step="git push",
            resume=(f"{resume}, or " if resume else "")
            + f"{publish_command(p)} once {remote} accepts pushes to {state.branch}",
        )
    refused.kept = side
    raise refused
