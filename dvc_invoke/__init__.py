"""Reusable invoke tasks that run a DVC pipeline the same way every time.

Import the collections into a project's ``tasks.py`` and make pipeline
tasks with `pipeline_task`::

    from invoke import Collection
    from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

    metrics = pipeline_task("metrics", dvcfile="metrics/dvc.yaml", force=True)
    ns = Collection(metrics, guards, data, repro, publish, notify)

Importing this package never imports dvc or slack_sdk: ``inv --list`` stays fast.
Nor invoke: what it exports is imported on first use, so that the pytest
plugin (``dvc_invoke.testing.plugin``), loaded by every pytest run of a
project that installs dvc-invoke, costs nothing until a test uses it.
"""

import importlib
from typing import TYPE_CHECKING, Any

from dvc_invoke import posix

posix.require()  # before any module that needs fcntl or setsid

if TYPE_CHECKING:
    from dvc_invoke import data, exp, guards, notify, publish, repro
    from dvc_invoke.config.pipelines import Pipeline
    from dvc_invoke.errors import Cancelled, DvcInvokeError
    from dvc_invoke.pipeline_tasks import pipeline_task

# What the package exports, by the module that defines it (a collection: itself).
_EXPORTS = {
    "data": None,
    "exp": None,
    "guards": None,
    "notify": None,
    "publish": None,
    "repro": None,
    "Cancelled": "errors",
    "DvcInvokeError": "errors",
    "pipeline_task": "pipeline_tasks",
    "Pipeline": "config.pipelines",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        where = _EXPORTS[name]
        module = importlib.import_module(f"{__name__}.{where or name}")
        value = module if where is None else getattr(module, name)
        globals()[name] = value
        return value
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
    "exp",
    "guards",
    "notify",
    "pipeline_task",
    "publish",
    "repro",
    "__version__",
]
