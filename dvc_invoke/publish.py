"""Publish a pipeline's results: commit the lock file, dvc push, then git push."""

from __future__ import annotations

from invoke import Collection, task


@task(
    default=True,
    help={
        "pipeline": "The pipeline whose results to publish.",
        "accept": "Publish even though the pipeline's gates say its metrics got worse.",
    },
)
def run(c, pipeline, accept=False):
    """Commit, dvc push and git push a pipeline's results; finishes a run whose publishing failed.

    Safe to repeat: what is already done is skipped, and data always
    reaches the DVC remote before the lock file reaches git. The run it
    finishes, and its Slack message, turn to succeeded.
    """
    from . import flow

    flow.finish(c, pipeline, accept=accept)


ns = Collection(run)
