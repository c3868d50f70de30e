"""The ``dvc_invoke`` config key: defaults, merged with what the project sets.

Projects set values through invoke's config hierarchy: ``ns.configure(
{"dvc_invoke": {...}})`` in their ``tasks.py``, an ``invoke.yaml``, or the
runtime config file. Defaults live here rather than only in the collections'
``ns.configure``, because invoke hands a task only the configuration of the
collections on its own path: a pipeline task at the root of a project's
namespace never sees what ``dvc_invoke.repro`` configured.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

DEFAULTS: dict[str, Any] = {
    # Named pipelines: {"NAME": {"dvcfile": ..., "force": ..., "pull": [...], ...}}
    "pipelines": {},
    # The dvc executable; empty: `dvc` on PATH, else the one installed beside
    # this Python (a virtualenv that is not activated).
    "dvc": "",
    # Echo each git/dvc command that does work (probes are never echoed).
    "echo": True,
    # git and dvc commands that reach a remote: retries of a transient failure
    # (a reset connection, a timeout, a 5xx), the first delay in seconds, doubled.
    "retries": 2,
    "retry_delay": 2.0,
    # When teammates' commits make a run's lock file stale, also push the
    # branch that keeps the run's commit (dvc-invoke/<pipeline>/<time>).
    "push_side_branch": False,
    # Slack clients: seconds per request, retries per message (one budget for
    # connection errors, 5xx and 429), the longest Retry-After worth waiting.
    "slack": {"timeout": 5, "retries": 2, "max_retry_after": 5},
}


def settings(c: Any) -> dict[str, Any]:
    """The merged ``dvc_invoke`` settings of context ``c``."""
    merged = {key: (dict(v) if isinstance(v, dict) else v) for key, v in DEFAULTS.items()}
    given = c.config.get("dvc_invoke") or {}
    for key, value in dict(given).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def dvc_command(c: Any) -> str:
    """How to call dvc, as a shell word."""
    import shlex

    configured = settings(c)["dvc"]
    if configured:
        return shlex.quote(str(configured))
    if shutil.which("dvc"):
        return "dvc"
    beside = os.path.join(os.path.dirname(sys.executable), "dvc")
    if os.access(beside, os.X_OK):
        return shlex.quote(beside)
    return "dvc"


def is_dry(c: Any) -> bool:
    return bool(c.config.run.dry)
