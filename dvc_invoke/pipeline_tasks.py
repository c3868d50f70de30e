"""The task layer for one pipeline: `pipeline_task` makes an invoke task of its whole flow."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from invoke.tasks import Task, task

from dvc_invoke.config.pipelines import PIPELINE_ATTR, Pipeline, make, valid_name
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flags import Task as FlagTask
from dvc_invoke.helptext import HELP


def pipeline_task(
    name: str,
    *,
    dvcfile: str | None = None,
    stages: Iterable[str] | None = None,
    force: bool = False,
    upstream: bool = False,
    pull: Iterable[str] | None = None,
    push: Iterable[str] | None = None,
    commit: bool = True,
    git_push: bool = True,
    message: str | None = None,
    slack: Mapping[str, str] | None = None,
    slurm: Mapping[str, Any] | None = None,
    gates: Mapping[str, Any] | None = None,
    help: str | None = None,
) -> Task[Any]:
    """An invoke task that runs one pipeline's whole flow.

    ``dvcfile`` is the pipeline's ``dvc.yaml`` (default ``NAME/dvc.yaml``);
    ``stages`` makes some of its stages the pipeline (``["evaluate"]``: the
    file's other stages are then upstream, pulled and never rebuilt, as
    other folders' pipelines are); ``dvcfile="dvc.yaml:evaluate"`` says the
    same. ``pull``/``push`` default to the pipeline's inputs/outputs as DVC
    sees them; give paths (folders are expanded to the tracked outputs under
    them) or ``[]`` for none. ``force`` forces the pipeline's own stages only;
    ``upstream=True`` also reproduces the pipelines it reads from.
    """
    spec = _spec(
        name,
        dvcfile=dvcfile,
        stages=stages,
        force=force,
        upstream=upstream,
        pull=pull,
        push=push,
        commit=commit,
        git_push=git_push,
        message=message,
        slack=slack,
        slurm=slurm,
        gates=gates,
    )

    return _task(name, spec, help)


def _spec(name: str, **options: Any) -> Pipeline:
    """The pipeline ``pipeline_task`` was given, checked as config is: a mistake is a
    ``ValueError`` when ``tasks.py`` loads, naming the task."""
    if not valid_name(name):
        raise ValueError(
            f"pipeline_task: invalid name {name!r}: use letters, digits, '_', '.', '-'"
        )
    stages, pull, push = options["stages"], options["pull"], options["push"]
    values: dict[str, Any] = {
        **options,
        "dvcfile": options["dvcfile"] or f"{name}/dvc.yaml",
        "stages": stages if stages is None or isinstance(stages, str) else list(stages),
        "pull": pull if pull is None else list(pull),
        "push": push if push is None else list(push),
    }
    try:
        return make(name, values, where=f"pipeline_task({name!r})")
    except DvcInvokeError as exc:
        raise ValueError(exc.reason) from None


def _task(name: str, spec: Pipeline, help: str | None) -> Task[Any]:
    """The invoke task of pipeline ``spec``, named ``name``, with the run options."""

    def body(  # type: ignore[no-untyped-def]
        c, force=spec.force, upstream=spec.upstream, detach=False, skip=None, slurm=False, host=None
    ):
        from dvc_invoke import (
            flow,  # on use: `inv --list` imports no more than the collections
            tasknames,
        )

        # A flag left at its default defers to the pipeline as configured now
        # (config may override pipeline_task); `--no-force` really says no.
        forced = None if force == spec.force else force
        ups = None if upstream == spec.upstream else upstream
        flags = {True: " --force", False: " --no-force", None: ""}[forced]
        flags += {True: " --upstream", False: " --no-upstream", None: ""}[ups]
        command = tasknames.task_command(made, name) + flags
        skip = tuple(skip or ())
        flow.run(
            c,
            name,
            force=forced,
            upstream=ups,
            detach=detach,
            command=command,
            skip=skip,
            slurm=slurm,
            host=host,
        )

    body.__name__ = re.sub(r"\W", "_", name)
    setattr(body, PIPELINE_ATTR, spec)  # `--pipeline NAME` finds it in the loaded tasks
    what = "the pipeline" if name == "pipeline" else f"the {name} pipeline"
    body.__doc__ = help or (f"Run {what} ({spec.dvcfile}): guards, pull, repro, publish, notify.")
    made = task(
        body,
        klass=FlagTask,
        name=name,
        help={
            "force": HELP["force"].rstrip(".")
            + (" (the default here; --no-force to skip)" if spec.force else "")
            + ".",
            **{k: HELP[k] for k in ("upstream", "detach", "skip", "slurm", "host")},
        },
        iterable=["skip"],
    )
    assert isinstance(made, Task)
    return made
