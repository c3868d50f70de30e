"""Reusable invoke tasks that run a DVC pipeline the same way every time.

Import the collections into a project's ``tasks.py`` and make pipeline
tasks with `pipeline_task`::

    from invoke import Collection
    from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

    metrics = pipeline_task("metrics", dvcfile="metrics/dvc.yaml", force=True)
    ns = Collection(metrics, guards, data, repro, publish, notify)

Importing this package never imports dvc or slack_sdk: ``inv --list`` stays fast.
"""

from typing import Any

from . import posix

posix.require()  # before any module that needs fcntl or setsid

from . import data, guards, notify, publish, repro  # noqa: E402
from .errors import Cancelled, DvcInvokeError  # noqa: E402
from .pipeline_tasks import pipeline_task  # noqa: E402
from .pipelines import Pipeline  # noqa: E402


def __getattr__(name: str) -> Any:
    # NOTE: importlib.metadata costs ~35 ms to import: only for who asks.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("dvc-invoke")
        except PackageNotFoundError:  # pragma: no cover - a source tree
            return "0.0.0"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Cancelled",
    "DvcInvokeError",
    "Pipeline",
    "data",
    "guards",
    "notify",
    "pipeline_task",
    "publish",
    "repro",
    "__version__",
]
