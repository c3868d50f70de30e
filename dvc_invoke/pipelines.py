"""Pipelines: how a name becomes a ``dvc.yaml`` and the options of its runs.

A name resolves, in order, to a pipeline configured under
``dvc_invoke.pipelines.NAME``, one made with `pipeline_task`, then the
folder ``NAME/`` holding a ``dvc.yaml``. Configured values override what
`pipeline_task` said, so one host can change a message or a target list
in its ``invoke.yaml`` without touching ``tasks.py``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Task, task

from .errors import DvcInvokeError, exits
from .paths import normalize
from .settings import settings

if TYPE_CHECKING:
    from .metrics import Gate

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Pipeline:
    """One pipeline and how to run it."""

    name: str
    dvcfile: str
    force: bool = False  # force its own stages (never the upstream pipelines')
    upstream: bool = False  # also reproduce the pipelines it depends on
    pull: tuple[str, ...] | None = None  # None: the pipeline's inputs
    push: tuple[str, ...] | None = None  # None: the pipeline's outputs
    commit: bool = True  # commit the lock file (and git push it)
    git_push: bool = True
    message: str | None = None  # default: "[DVC] Update <name>"
    # Slack overrides: "channel", and a text per status ("succeeded": "Metrics done!")
    slack: Mapping[str, str] | None = None
    # Metrics that must not get worse: {"scores.json:accuracy": "max", "loss": "min"}
    gates: tuple[Gate, ...] | None = None

    @property
    def commit_message(self) -> str:
        return self.message or f"[DVC] Update {self.name}"


OPTIONS = tuple(f.name for f in dataclasses.fields(Pipeline) if f.name != "name")

# Pipelines made with `pipeline_task`, by name.
_DEFINED: dict[str, Pipeline] = {}


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name)) and name not in (".", "..")


def make(
    name: str, values: dict[str, Any], *, base: Pipeline | None = None, where: str
) -> Pipeline:
    """A `Pipeline` from option ``values``, checked; ``where`` names their source."""
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        raise DvcInvokeError(
            f"{where}: unknown option {', '.join(unknown)} (options: {', '.join(OPTIONS)})",
            step="guards",
        )
    fields: dict[str, Any] = (
        {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        if base
        else {"name": name}
    )
    for key, value in values.items():
        if key in ("force", "upstream", "commit", "git_push"):
            if not isinstance(value, bool):
                raise DvcInvokeError(f"{where}: {key} must be true or false", step="guards")
        elif key in ("pull", "push"):
            value = _targets(value, key=key, where=where)
        elif key == "dvcfile":
            if not isinstance(value, str) or not value.strip():
                raise DvcInvokeError(f"{where}: dvcfile must be a path", step="guards")
            value = normalize(value, step="guards")
        elif key == "slack":
            value = _slack_options(value, where=where)
        elif key == "gates" and value is not None:
            from .metrics import parse_gates  # only for who has gates: `inv --list` stays light

            value = parse_gates(value, where=where)
        elif key == "message":
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise DvcInvokeError(f"{where}: message must be non-empty text", step="guards")
        fields[key] = value
    fields["name"] = name
    if not fields.get("dvcfile"):
        fields["dvcfile"] = f"{name}/dvc.yaml"
    return Pipeline(**fields)


SLACK_OPTIONS = ("channel", "started", "succeeded", "failed", "cancelled")


def _slack_options(value: Any, *, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DvcInvokeError(f"{where}: slack must be a mapping", step="guards")
    unknown = sorted(set(value) - set(SLACK_OPTIONS))
    if unknown:
        raise DvcInvokeError(
            f"{where}: unknown slack option {', '.join(unknown)}"
            f" (options: {', '.join(SLACK_OPTIONS)})",
            step="guards",
        )
    if not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise DvcInvokeError(f"{where}: slack values must be non-empty text", step="guards")
    return dict(value)


def _targets(value: Any, *, key: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if value is False:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise DvcInvokeError(f"{where}: {key} must be a list of paths", step="guards")
    return tuple(value)


def available(c: Any, root: Path) -> list[str]:
    """Every pipeline name that resolves in this project."""
    names = set(_configured(c)) | set(_DEFINED)
    if root.is_dir():
        names |= {
            d.name for d in root.iterdir() if (d / "dvc.yaml").is_file() and valid_name(d.name)
        }
    return sorted(names)


def _configured(c: Any) -> dict[str, Any]:
    pipelines = settings(c)["pipelines"] or {}
    if not isinstance(pipelines, dict):
        raise DvcInvokeError("config dvc_invoke.pipelines must be a mapping", step="guards")
    return dict(pipelines)


def resolve(c: Any, root: Path, name: str) -> Pipeline:
    """The pipeline called ``name``, or one line saying which names there are."""
    if not isinstance(name, str) or not valid_name(name):
        raise DvcInvokeError(
            f"invalid pipeline name {name!r}: use letters, digits, '_', '.' and '-'"
            f" (pipelines here: {_listing(c, root)})",
            step="guards",
        )
    configured = _configured(c)
    base = _DEFINED.get(name)
    if base is None and (root / name / "dvc.yaml").is_file():
        base = Pipeline(name, f"{name}/dvc.yaml")
    if name in configured:
        values = configured[name]
        if not isinstance(values, dict):
            raise DvcInvokeError(
                f"config dvc_invoke.pipelines.{name} must be a mapping of options", step="guards"
            )
        return make(name, dict(values), base=base, where=f"config dvc_invoke.pipelines.{name}")
    if base is None:
        raise DvcInvokeError(
            f"unknown pipeline '{name}' (pipelines here: {_listing(c, root)})", step="guards"
        )
    return base


def _listing(c: Any, root: Path) -> str:
    return ", ".join(available(c, root)) or "none"


def pipeline_task(
    name: str,
    *,
    dvcfile: str | None = None,
    force: bool = False,
    upstream: bool = False,
    pull: Iterable[str] | None = None,
    push: Iterable[str] | None = None,
    commit: bool = True,
    git_push: bool = True,
    message: str | None = None,
    slack: Mapping[str, str] | None = None,
    gates: Mapping[str, Any] | None = None,
    help: str | None = None,
) -> Task:
    """An invoke task that runs one pipeline's whole flow.

    ``pull``/``push`` default to the pipeline's inputs/outputs as DVC sees
    them; give paths (folders are expanded to the tracked outputs under
    them) or ``[]`` for none. ``force`` forces the pipeline's own stages only;
    ``upstream=True`` also reproduces the pipelines it reads from.
    """
    if not valid_name(name):
        raise ValueError(
            f"pipeline_task: invalid name {name!r}: use letters, digits, '_', '.', '-'"
        )
    values: dict[str, Any] = {
        "dvcfile": dvcfile or f"{name}/dvc.yaml",
        "force": force,
        "upstream": upstream,
        "pull": pull if pull is None else list(pull),
        "push": push if push is None else list(push),
        "commit": commit,
        "git_push": git_push,
        "message": message,
        "slack": slack,
        "gates": gates,
    }
    try:
        spec = make(name, values, where=f"pipeline_task({name!r})")
    except DvcInvokeError as exc:
        raise ValueError(exc.reason) from None
    _DEFINED[name] = spec

    def body(c, force=spec.force, upstream=spec.upstream, detach=False, skip=None):  # type: ignore[no-untyped-def]
        from . import flow  # on use: `inv --list` imports no more than the collections

        flags = (" --force" if force and not spec.force else "") + (
            " --upstream" if upstream and not spec.upstream else ""
        )
        command = f"inv {name}{flags}"
        flow.run(
            c, name, force=force, upstream=upstream, detach=detach, command=command, skip=skip or ()
        )

    body.__name__ = re.sub(r"\W", "_", name)
    body.__doc__ = help or (
        f"Run the {name} pipeline ({spec.dvcfile}): guards, pull, repro, publish, notify."
    )
    return task(
        exits(body),
        name=name,
        help={
            "force": "Re-run the pipeline's own stages even if nothing changed"
            + (" (the default here; --no-force to skip)" if spec.force else "")
            + ".",
            "upstream": "Also reproduce the pipelines this one depends on"
            " (their outputs are otherwise pulled, not rebuilt).",
            "detach": "Check everything, then run in the background and return at once:"
            " the run survives logging out; follow it with `inv repro.logs --follow`.",
            "skip": "Leave out a check on purpose: fetch, git-push, dvc-remote or slack."
            " Repeatable.",
        },
        iterable=["skip"],
    )
