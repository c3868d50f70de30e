"""The ritual around ``dvc repro``, one function per step.

`run` chains them: guards, pull, repro, publish (commit, ``dvc push``,
``git push``), notify. Everything that can fail fast (the workspace, the
pipeline, its targets) is checked before the run starts; after that the
first failure stops the run with one line that names the step and the
command that resumes. Each step is usable alone by a project that composes
its own flow.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from . import console, graph, notify
from .errors import DvcInvokeError
from .pipelines import Pipeline, resolve
from .report import RunReport
from .workspace import GitState, Workspace, quote_all


@dataclass
class Plan:
    """One pipeline run, resolved: what to pull, reproduce and push."""

    pipeline: Pipeline
    graph: graph.PipelineGraph
    pull: list[str]
    push: list[str]
    force: bool = False
    upstream: bool = False

    @property
    def name(self) -> str:
        return self.pipeline.name


@dataclass
class Published:
    committed: bool = False
    pushed: tuple[str, ...] = ()
    git_pushed: bool = False
    commit: str | None = None


def plan(ws: Workspace, p: Pipeline, *, force: bool = False, upstream: bool = False) -> Plan:
    """Read the pipeline from DVC and resolve its pull and push targets.

    Without ``pull``/``push`` options these are the pipeline's inputs and
    outputs; given ones are expanded to what DVC tracks, and one that
    matches nothing is an error now rather than after a two-hour run.
    """
    upstream = upstream or p.upstream
    g = graph.load(ws.root, p.dvcfile, upstream=upstream)
    pull_targets = g.inputs if p.pull is None else g.resolve(list(p.pull), step="pull")
    push_targets = g.push_targets if p.push is None else g.resolve(list(p.push), step="dvc push")
    return Plan(p, g, pull_targets, push_targets, force or p.force, upstream)


def publish_command(p: Pipeline) -> str:
    return f"inv publish --pipeline {shlex.quote(p.name)}"


def check(ws: Workspace, p: Pipeline | None = None, *, resume: str | None = None) -> GitState:
    """Refuse to run where a run could not be reproduced or published.

    The workspace must be a git and DVC repository whose tracked files are
    all committed (staged or not), the pipeline's dvc.yaml must exist, and a
    run that publishes needs a branch with an upstream to push to.
    """
    state = ws.git_state()
    if p is not None and not (ws.root / p.dvcfile).is_file():
        raise DvcInvokeError(f"pipeline '{p.name}': {p.dvcfile} does not exist", step="guards")
    if ws.dry:
        return state
    if state.changed:
        shown = ", ".join(state.changed[:5]) + (
            f" and {len(state.changed) - 5} more" if len(state.changed) > 5 else ""
        )
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


def pull(ws: Workspace, plan: Plan, *, resume: str | None = None) -> list[str]:
    """``dvc pull`` the run's inputs, all in one call."""
    if not plan.pull:
        console.info("nothing to pull")
        return []
    ws.act(f"{ws.dvc} pull {quote_all(plan.pull)}", step="pull", resume=resume)
    return plan.pull


def reproduce(ws: Workspace, plan: Plan, *, resume: str | None = None) -> None:
    """Reproduce the pipeline's stages; forcing never reaches upstream pipelines.

    ``dvc repro --force metrics/dvc.yaml`` would re-run every stage the
    metrics depend on, model training included. The pipeline's own stages
    are given one by one with ``--single-item``, dependencies first (DVC
    runs them in the order given). With ``upstream``, DVC's own recursion
    is what the user asked for.
    """
    flag = "--force " if plan.force else ""
    if plan.upstream:
        cmd = f"{ws.dvc} repro {flag}{shlex.quote(plan.pipeline.dvcfile)}"
    else:
        cmd = f"{ws.dvc} repro --single-item {flag}{quote_all(plan.graph.stages)}"
    ws.act(cmd, step="repro", resume=resume)


def publish(ws: Workspace, plan: Plan, *, always_push: bool = False) -> Published:
    """Commit what the run changed, ``dvc push`` its data, then ``git push``.

    Only the lock files, DVC's .gitignore entries and outputs kept in git
    are committed, never anything else in the workspace. Data reaches the
    DVC remote before the commit reaches git, so no teammate can fetch a
    lock file whose data is missing. Run again after a failure, it finishes
    what is left: each part is skipped when there is nothing to do.
    """
    p, done = plan.pipeline, Published()
    resume = publish_command(p)
    state = ws.git_state(step="commit")
    if p.commit:
        paths = plan.graph.git_paths()
        changed = paths if ws.dry else ws.changed_paths(paths)
        if changed:
            files = quote_all(changed)
            ws.act(f"git add -- {files}", step="commit", resume=resume)
            message = shlex.quote(p.commit_message)
            ws.act(f"git commit -q -m {message} -- {files}", step="commit", resume=resume)
            done.committed = True
            state.ahead += 1
        else:
            console.info("nothing changed that git tracks: no commit")
    missed = [o for o in plan.graph.push_targets if not _covered(o, plan.push)]
    if missed:
        console.warn("outputs left out of push=[...] stay local only: " + ", ".join(missed))
    unpublished = done.committed or state.ahead > 0 or not p.commit or ws.dry
    if plan.push and (unpublished or always_push):
        ws.act(f"{ws.dvc} push {quote_all(plan.push)}", step="dvc push", resume=resume)
        done.pushed = tuple(plan.push)
    if p.commit and p.git_push:
        if state.ahead > 0 or ws.dry:
            ws.act(_git_push(ws, state, resume), step="git push", resume=resume)
            done.git_pushed = True
        else:
            console.info(f"branch '{state.branch}' is up to date with its upstream: no git push")
    done.commit = ws.head()
    return done


def _covered(path: str, targets: list[str]) -> bool:
    return any(path == t or path.startswith(t + "/") or t.startswith(path + "/") for t in targets)


def _git_push(ws: Workspace, state: GitState, resume: str) -> str:
    if ws.dry:
        return "git push"
    if state.branch is None:
        raise DvcInvokeError("HEAD is detached: nothing to push to", step="git push", resume=resume)
    target = ws.upstream_target(state.branch)
    if target is None:
        raise DvcInvokeError(
            f"branch '{state.branch}' has no upstream: run `git push -u origin {state.branch}`",
            step="git push",
            resume=resume,
        )
    remote, ref = target
    return f"git push {shlex.quote(remote)} {shlex.quote(f'HEAD:{ref}')}"


def run(
    c: Any, name: str, *, force: bool = False, upstream: bool = False, command: str | None = None
) -> RunReport:
    """The whole flow for pipeline ``name``; raises `DvcInvokeError` on failure."""
    ws = Workspace(c)
    p = resolve(c, ws.root, name)
    if command is None:
        command = f"inv repro --pipeline {shlex.quote(name)}"
        command += " --force" if force else ""
        command += " --upstream" if upstream else ""
    state = check(ws, p, resume=command)
    run_plan = plan(ws, p, force=force, upstream=upstream)
    chain = notify.notifiers(c, ws.root, p)
    report = RunReport(pipeline=p.name, command=command, step="pull")
    report.branch, report.commit_before = state.branch, state.commit
    notify.deliver(chain, report)
    try:
        console.step(p.name, "pull")
        report.pulled = pull(ws, run_plan, resume=command)
        report.step = "repro"
        detail = ", ".join(run_plan.graph.stages) + (" (forced)" if run_plan.force else "")
        console.step(p.name, "repro", detail)
        reproduce(ws, run_plan, resume=command)
        report.step = "publish"
        console.step(p.name, "publish")
        done = publish(ws, run_plan)
    except DvcInvokeError as exc:
        report.step = exc.step or report.step
        report.commit_after = ws.head()
        report.end("failed", reason=exc.reason, resume=exc.resume, log_tail=exc.log)
        notify.deliver(chain, report)
        raise
    except KeyboardInterrupt:
        report.commit_after = ws.head()
        resume = publish_command(p) if report.step == "publish" else command
        report.end("cancelled", reason="interrupted", resume=resume)
        notify.deliver(chain, report)
        raise DvcInvokeError("interrupted", step=report.step, resume=resume) from None
    report.committed, report.git_pushed = done.committed, done.git_pushed
    report.pushed = list(done.pushed)
    report.commit_after = done.commit
    report.step = None
    report.end("succeeded")
    notify.deliver(chain, report)
    return report
