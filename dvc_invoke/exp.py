"""Experiments on DVC's own machinery: sweep them, compare them, publish the best.

``inv exp.run`` queues a sweep (``dvc exp run --queue -S ...``, DVC's grids)
after a run's guards and runs it on DVC's queue workers, as a run of its own
(``repro.status``, ``repro.logs --exp NAME``, ``repro.cancel``); at its end the
ranked table is printed and sent to Slack and the experiments are shared with
``dvc exp push``. ``inv exp.show`` prints the table for HEAD's experiments,
``inv exp.publish NAME|--best`` publishes one as a run is published. Removing
experiments is DVC's: ``dvc exp remove``, ``dvc exp gc``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.tasks import task

from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flags import Task
from dvc_invoke.helptext import HELP as _HELP

if TYPE_CHECKING:
    from invoke.context import Context

_SORT = "The metric to rank by (default: the first gate's), e.g. acc or eval/metrics.json:acc."
_DIRECTION = "max or min: which way --sort is better (default: its gate's, else max)."


def _pipeline(c: Context, pipeline: str | None) -> str:
    """``--pipeline``, or the project's one pipeline."""
    if pipeline:
        return pipeline
    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.pipelines import available, resolve

    root = Workspace(c).root
    names = available(c, root)
    # One pipeline by several names (`train`, and `dvc.yaml` that it runs): that one.
    files = {resolve(c, root, n).dvcfile for n in names}
    if len(files) == 1:  # its name rather than its path
        return min(names, key=lambda n: ("/" in n or n.endswith((".yaml", ".yml")), n))
    raise DvcInvokeError(
        f"name the pipeline with --pipeline NAME (pipelines here: {', '.join(names) or 'none'})",
        step="guards",
    )


def _direction(direction: str | None) -> str | None:
    if direction not in (None, "max", "min"):
        raise DvcInvokeError(f"--direction {direction}: say max or min", step="guards")
    return direction


@task(
    klass=Task,
    iterable=["set_", "skip"],
    help={
        "pipeline": _HELP["pipeline"],
        "set": "A param and its values, as DVC takes them: -S train.lr=0.001,0.01"
        " (each -S a dimension of the grid).",
        "jobs": "DVC queue workers, i.e. experiments at once (default 1).",
        "name": "Name the experiments NAME-1, NAME-2, ... (DVC's --name).",
        "detach": "Return at once; the sweep goes on in the background.",
        "no-share": "Keep the experiments here: no dvc exp push to the git remote at the end.",
        "gpus": "One DVC worker per GPU, pinned to it (CUDA_VISIBLE_DEVICES):"
        " all (the free ones, by nvidia-smi) or 0,1,...; instead of --jobs.",
        "host": "A GPU host (dvc_invoke.hosts): the sweep runs there, detached; or a group"
        " (host_groups): the grid spread over its free hosts.",
        "part": "i/k: run the i-th share of the grid (set by --host GROUP on each host).",
        "slurm": "A SLURM job array, one experiment per task (--jobs at once, the pipeline's"
        " slurm: options per task), then a job that collects and tells.",
        "skip": _HELP["skip"],
    },
)
def run(
    c: Context,
    pipeline: str | None = None,
    set_: list[str] | None = None,
    jobs: int = 1,
    name: str | None = None,
    detach: bool = False,
    no_share: bool = False,
    skip: list[str] | None = None,
    gpus: str | None = None,
    host: str | None = None,
    slurm: bool = False,
    part: str | None = None,
) -> None:
    """Sweep a pipeline's params on DVC's queue; rank, share and announce the experiments."""
    from dvc_invoke.flow import sweep

    sweep.run(
        c,
        _pipeline(c, pipeline),
        list(set_ or ()),
        jobs=int(jobs),
        exp_name=name,
        detach=detach,
        share=not no_share,
        skip=skip or (),
        gpus=gpus,
        host=host,
        slurm=slurm,
        part=part,
    )


@task(
    klass=Task,
    help={
        "pipeline": "Rank by this pipeline's gates.",
        "sort": _SORT,
        "direction": _DIRECTION,
        "all": "The experiments of every commit, not only HEAD's.",
    },
)
def show(
    c: Context,
    pipeline: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
    all_: bool = False,
) -> None:
    """The experiments of HEAD, ranked, with what the branch published first."""
    from dvc_invoke.flow import experiments

    if pipeline is None:  # the one pipeline's gates rank them, when there is one
        with contextlib.suppress(DvcInvokeError):
            pipeline = _pipeline(c, None)
    experiments.show(c, pipeline, sort=sort, direction=_direction(direction), all_commits=all_)


@task(
    klass=Task,
    help={
        "name": "The experiment to publish, by its name (or say --best).",
        "best": "The best of HEAD's experiments, by the first gate (or --sort).",
        "pipeline": _HELP["pipeline"],
        "accept": "Publish even if a gate's metric got worse.",
        "message": "The commit message (default: [DVC] Publish experiment NAME (PIPELINE)).",
        "sort": _SORT,
        "direction": _DIRECTION,
    },
)
def publish(
    c: Context,
    name: str | None = None,
    best: bool = False,
    pipeline: str | None = None,
    accept: bool = False,
    message: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
) -> None:
    """Publish an experiment as a run: apply, gate, commit, dvc push, git push, tell."""
    from dvc_invoke.flow import experiments

    experiments.publish_experiment(
        c,
        name,
        pipeline=_pipeline(c, pipeline),
        best=best,
        accept=accept,
        message=message,
        sort=sort,
        direction=_direction(direction),
    )


ns = Collection(run, show, publish)
