"""Publishing by hand (``inv publish``), finishing a run that stopped while
publishing, and throwing away what a failed run left (``inv repro.discard``)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from typing import Any

from dvc_invoke import console
from dvc_invoke.adapters.dvc import dvcfiles
from dvc_invoke.adapters.dvc.model import PipelineGraph
from dvc_invoke.adapters.dvc.remote import remote_check
from dvc_invoke.adapters.dvc.session import session
from dvc_invoke.adapters.git import GitState
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.config.paths import overlaps
from dvc_invoke.config.pipelines import Pipeline, resolve
from dvc_invoke.errors import Cancelled, DvcInvokeError
from dvc_invoke.flow import notifiers
from dvc_invoke.flow.holding import free
from dvc_invoke.flow.lost import tell_lost
from dvc_invoke.flow.plan import Plan, plan, publish_command
from dvc_invoke.flow.publishing import Published, publish
from dvc_invoke.runs.record import RunReport, short
from dvc_invoke.runs.store import Store


def discard(ws: Workspace, p: Pipeline) -> list[str]:
    """Put the workspace back as HEAD has it for the pipeline, after a failed or
    refused run, and nothing else.

    What HEAD has that the run changed is restored (its lock files and the
    files git holds for it with ``git restore``, its cached outputs with ``dvc
    checkout --force``, a ``dvc.yaml`` dvclive rewrote); what the run made that
    HEAD does not have is removed (a first lock file, the outputs it records,
    DVC's ``.gitignore`` lines for them). In a ``.gitignore`` only DVC's lines
    are put back: a line of someone else's stays. Returns what it restored and
    removed, one phrase each."""
    if not ws.dry:
        free(Store(ws.root))  # never under a run that is still writing
    run_plan = plan(ws, p, force=True)  # forced: nothing to restore from the remote here
    g, git = run_plan.graph, ws.git
    own = g.git_paths()
    known = git.tracked_at_head(own)
    changed = ws.git.changed_paths(own)
    state = ws.git.state(step="discard")
    found = dvcfiles.survey(ws, g, [ws.git.from_top(f) for f in state.changed])
    restore = [f for f in changed if f in known and f not in found.foreign]
    restore += [f for f in found.restore + found.own if dvcfiles.is_dvcfile(f)]
    done = [f"restored {f}" for f in restore]
    if restore:
        git.restore(restore, step="discard")
    for path, lines in found.foreign.items():  # DVC's lines back, the others kept
        _restore_dvc_lines(ws, g, path)
        done.append(f"restored DVC's lines in {path} (kept: {', '.join(lines[:3])})")
    new = [f for f in changed if f not in known]
    recorded = _recorded_at_head(ws, g.lockfiles)
    made = [o for o in g.push_targets if o not in recorded and (ws.root / o).exists()]
    kept = [o for o in g.push_targets if o in recorded]
    if kept:
        # An output whose object this clone never pulled has nothing to go back to.
        ws.act(f"{ws.dvc} checkout --force --allow-missing {quote_all(kept)}", step="discard")
    for path in [f for f in new if dvcfiles.is_gitignore(f)]:
        _restore_dvc_lines(ws, g, path, drop=made)
    removed = [f for f in new if not dvcfiles.is_gitignore(f) or _empty(ws, f)] + made
    if removed:
        ws.act(f"rm -rf -- {quote_all(removed)}", step="discard")
        done += [f"removed {f}" for f in removed]
    return done


def _recorded_at_head(ws: Workspace, lockfiles: list[str]) -> set[str]:
    """The outputs HEAD's lock files record, relative to the DVC root."""
    import posixpath

    import yaml

    found: set[str] = set()
    for lock in lockfiles:
        text = ws.git.show("HEAD", lock)
        try:
            data = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            continue
        stages = data.get("stages", {}) if isinstance(data, dict) else {}
        folder = posixpath.dirname(lock)
        for stage in stages.values() if isinstance(stages, dict) else ():
            for out in stage.get("outs", []) if isinstance(stage, dict) else ():
                if isinstance(out, dict) and isinstance(out.get("path"), str):
                    found.add(posixpath.normpath(posixpath.join(folder, out["path"])))
    return found


def _restore_dvc_lines(
    ws: Workspace, g: PipelineGraph, path: str, drop: Sequence[str] = ()
) -> None:
    """``path`` (a .gitignore) with DVC's lines as HEAD has them, every other line
    as it is; ``drop``: outputs HEAD does not record, whose lines go."""
    import posixpath

    head = ws.git.show("HEAD", path) or ""
    file = ws.root / path
    now = file.read_text() if file.is_file() else ""
    cached = [o.path for o in g.tracked.by_path.values() if o.cached]
    ours = dvcfiles.dvc_lines(posixpath.dirname(path), cached)
    gone = dvcfiles.dvc_lines(posixpath.dirname(path), drop)
    before = {line.strip() for line in head.splitlines()}
    lines = [
        line
        for line in now.splitlines()
        if line.strip() not in gone and (line.strip() not in ours or line.strip() in before)
    ]
    lines += [line for line in head.splitlines() if line.strip() in ours and line not in lines]
    if ws.dry:
        console.info(f"would put DVC's lines in {path} back as HEAD has them")
        return
    file.write_text("".join(f"{line}\n" for line in lines))


def _empty(ws: Workspace, path: str) -> bool:
    file = ws.root / path
    return not file.is_file() or not file.read_text().strip()


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
    with session(ws.root):
        return _finish(c, ws, name, accept)


def _finish(c: Any, ws: Workspace, name: str, accept: bool) -> Published:
    p = resolve(c, ws.root, name)
    store = Store(ws.root)
    if not ws.dry:
        # Never commit under a run that is still writing to the workspace.
        tell_lost(c, ws, free(store))
    before = ws.git.state(step="commit")
    if p.commit and p.git_push and before.branch is None:
        raise DvcInvokeError(
            "HEAD is detached: a commit here would be lost on the next checkout;"
            " check out the branch to publish to",
            step="commit",
            resume=publish_command(p),
        )
    run_plan = plan(ws, p)
    kept = None if ws.dry else _kept_aside(ws, store, p, before)
    pending = kept or (None if ws.dry else unpublished_run(store, p, before, ws, run_plan))
    if run_plan.push and not ws.dry:
        run_plan.remote = remote_check(ws.root)
        if run_plan.remote.problem:
            raise DvcInvokeError(
                run_plan.remote.problem, step="dvc push", resume=publish_command(p)
            )
    chain = notifiers.notifiers(c, ws.root, slack=p.slack)
    console.step(p.name, "publish", f"run {pending.id}" if pending else "")
    aside = kept.kept if kept is not None else None
    done = publish(ws, run_plan, always_push=True, accept=accept, aside=aside)
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
    report.rewritten = list(dict.fromkeys(report.rewritten + list(done.rewritten)))
    report.end("succeeded")
    if aside is not None and done.git_pushed:
        _forget_side_branch(ws, aside)
    notifiers.deliver(chain, report)
    if pending is not None:
        store.save(report)
        if report.log and os.path.isfile(report.log):
            with open(report.log, "a") as log:
                log.write(f"\n✔ {p.name} succeeded: published by hand with {command}\n")
    return done


def _forget_side_branch(ws: Workspace, side: str) -> None:
    """The local branch a refused run's commit was kept on, now that the
    branch it was meant for holds it (origin's copy, if any, is the reviewers')."""
    try:
        ws.git.delete_merged_branch(side, step="publish")
    except Cancelled:
        raise
    except DvcInvokeError as exc:
        console.warn(f"branch {side} is kept: {exc.reason}")


def _kept_aside(ws: Workspace, store: Store, p: Pipeline, state: GitState) -> RunReport | None:
    """The pipeline's latest run, when origin refused its push and its commit was
    kept on a branch of its own that origin's branch does not hold yet: put
    back on the branch (a fast-forward from where the run started) to be
    published, or refused, naming the branch, when the branch has moved since."""
    latest = next(iter(store.newest(1, p.name)), None)
    if latest is None or not latest.kept or latest.status == "succeeded":
        return None
    git, side = ws.git, latest.kept
    commit = git.commit_of(f"refs/heads/{side}")
    target = ws.git.upstream_target(state.branch) if state.branch else None
    review = f"git push {shlex.quote(target[0] if target else 'origin')} {shlex.quote(side)}"
    if commit is None:
        raise DvcInvokeError(
            f"run {latest.id}'s commit was kept on branch {side}, which is gone: run again",
            step="git push",
            resume=latest.command,
        )
    if state.upstream and git.is_ancestor(commit, "@{upstream}"):
        return None  # origin's branch holds it: published
    if commit == state.commit:
        return latest  # on the branch already (a finish that stopped halfway)
    if git.parent_of(commit) != state.commit:
        raise DvcInvokeError(
            f"run {latest.id}'s commit is kept on branch {side}, made on"
            f" {short(git.parent_of(commit))}; {state.branch} is at {short(state.commit)} now,"
            " so it is not put on it: push the branch for review, or run again",
            step="git push",
            resume=review,
        )
    git.fast_forward(side, step="git push")
    console.info(f"run {latest.id}'s commit, kept on branch {side}, is back on {state.branch}")
    return latest


def unpublished_run(
    store: Store,
    p: Pipeline,
    state: GitState,
    ws: Workspace | None = None,
    run_plan: Plan | None = None,
) -> RunReport | None:
    """The pipeline's latest run, if it ended waiting for ``inv publish`` on the
    branch the workspace is on, at the commit it is at now or one that only
    adds commits the run's results do not depend on (a report the user
    committed by hand, say); else what is published is not that run's work."""
    for report in store.each(p.name):
        if report.pipeline == p.name:
            waiting = report.status in ("failed", "cancelled", "lost")
            # "inv publish …", or "review `git status`, then inv publish …"
            # Whichever program name (inv, invoke) the run was started with.
            waiting = waiting and publish_command(p).partition(" ")[2] in (report.resume or "")
            here = report.branch == state.branch and (
                report.commit_after == state.commit
                or _only_unrelated_since(ws, run_plan, report.commit_after, report.to_commit)
            )
            return report if waiting and here else None
    return None


def _only_unrelated_since(
    ws: Workspace | None, run_plan: Plan | None, rev: str | None, asked: list[str] | None = None
) -> bool:
    """Whether HEAD descends from ``rev`` through commits that touch nothing
    the pipeline's results depend on, but the files the run ``asked`` to commit
    (as the run used them: the workspace has no other copy of them now)."""
    if ws is None or run_plan is None or not rev:
        return False
    git = ws.git
    if not git.is_ancestor(rev):
        return False
    changed = git.changed_since(rev)
    if changed is None:
        return False
    if asked and ws.git.changed_paths(asked):
        return False  # not committed as the run used them
    changed = [f for f in changed if f not in set(asked or ())]
    return not any(overlaps(f, run_plan.graph.depends_on) for f in changed)
