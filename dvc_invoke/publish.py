"""Publish a pipeline's results: commit the lock file, dvc push, then git push."""

from __future__ import annotations

from invoke import Collection, task

from .errors import exits


@task(
    default=True,
    help={
        "pipeline": "The pipeline whose results to publish.",
        "accept": "Publish even though the pipeline's gates say its metrics got worse.",
    },
)
@exits
def run(c, pipeline, accept=False):
    """Commit, dvc push and git push a pipeline's results; finishes a run whose publishing failed.

    Safe to repeat: what is already done is skipped, and data always
    reaches the DVC remote before the lock file reaches git.
    """
    from . import console, flow, runs
    from .pipelines import resolve
    from .report import short
    from .workspace import Workspace

    ws = Workspace(c)
    p = resolve(c, ws.root, pipeline)
    if not ws.dry:
        # Never commit under a run that is still writing to the workspace.
        flow.tell_lost(c, ws, runs.Store(ws.root).free())
    run_plan = flow.plan(ws, p)
    console.step(p.name, "publish")
    done = flow.publish(ws, run_plan, always_push=True, accept=accept)
    if not ws.dry:
        console.result(
            True,
            f"{p.name} published at {short(done.commit)}"
            + (" (new commit)" if done.committed else "")
            + (", pushed to git" if done.git_pushed else ""),
        )


ns = Collection(run)
