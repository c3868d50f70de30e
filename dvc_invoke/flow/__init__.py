"""The flow of one run: what the task collections call, and what a flow of one's own is made of.

Each step lives in a module of this package: the guards and preflight
(`checks`), the plan (`plan`), pull and repro (`steps`), the pipelines a run
reads from (`upstream`), the gates, commit, ``dvc push`` and ``git push``
(`publishing`), the hand publish and discard (`handpublish`), and the run
itself (`launch`).
"""

from __future__ import annotations

from dvc_invoke.engines.detached import launch
from dvc_invoke.flow.checks import check, preflight
from dvc_invoke.flow.handpublish import discard, finish, unpublished_run
from dvc_invoke.flow.holding import find_lost
from dvc_invoke.flow.launch import prune, run
from dvc_invoke.flow.lost import tell_lost
from dvc_invoke.flow.plan import (
    Plan,
    default_command,
    need_dvcfile,
    plan,
    publish_command,
    repro_targets,
)
from dvc_invoke.flow.publishing import Published, baseline, measure, publish
from dvc_invoke.flow.steps import pull, reproduce
from dvc_invoke.flow.upstream import rebuild_upstream, upstream_pipelines, warn_stale_upstream

__all__ = [
    "Plan",
    "Published",
    "baseline",
    "check",
    "default_command",
    "discard",
    "find_lost",
    "finish",
    "launch",
    "measure",
    "need_dvcfile",
    "plan",
    "preflight",
    "prune",
    "publish",
    "publish_command",
    "pull",
    "rebuild_upstream",
    "repro_targets",
    "reproduce",
    "run",
    "tell_lost",
    "unpublished_run",
    "upstream_pipelines",
    "warn_stale_upstream",
]
