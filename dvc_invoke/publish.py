"""Publish a pipeline's results: commit the lock file, dvc push, then git push."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.tasks import task

from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flags import Task

if TYPE_CHECKING:
    from invoke.context import Context


@task(
    klass=Task,
    default=True,
    help={
        "pipeline": "The pipeline whose results to publish.",
        "accept": "Publish even though the pipeline's gates say its metrics got worse.",
        "host": "A GPU host (dvc_invoke.hosts): publish its checkout's results, over SSH.",
    },
)
def run(
    c: Context, pipeline: str | None = None, accept: bool = False, host: str | None = None
) -> None:
    """Commit, dvc push and git push a pipeline's results; finishes a run whose publishing failed.

    Safe to repeat: what is already done is skipped, and data always
    reaches the DVC remote before the lock file reaches git. The run it
    finishes, and its Slack message, turn to succeeded.
    """
    if pipeline is None:  # an option, not a positional one: `-h` is help, never a name
        from dvc_invoke.adapters.shell import Workspace
        from dvc_invoke.config.pipelines import available

        ws = Workspace(c)
        raise DvcInvokeError(
            "name the pipeline with --pipeline NAME"
            f" (pipelines here: {', '.join(available(c, ws.root)) or 'none'})",
            step="publish",
        )
    if host:
        from dvc_invoke.engines.ssh import on_host

        on_host(c, host, "publish", ["--pipeline", pipeline] + (["--accept"] if accept else []))
        return
    from dvc_invoke import flow

    flow.finish(c, pipeline, accept=accept)


ns = Collection(run)
