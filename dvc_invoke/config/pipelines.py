"""Pipelines: how a name becomes a ``dvc.yaml`` and the options of its runs.

A name resolves, in order, to a pipeline configured under
``dvc_invoke.pipelines.NAME``, one made with `pipeline_task`, then what DVC
users write: a folder holding a ``dvc.yaml`` (``training``,
``pipelines/train``, ``.`` for the root), a DVC file (``dvc.yaml``,
``pipelines/train/dvc.yaml``), a stage address (``dvc.yaml:evaluate``), or
the last part of a pipeline folder's path when only one folder ends so
(``train`` for ``pipelines/train``). Configured values override what
`pipeline_task` said, so one host can change a message or a target list in
its ``invoke.yaml`` without touching ``tasks.py``.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_invoke.config.paths import normalize
from dvc_invoke.config.settings import settings
from dvc_invoke.errors import DvcInvokeError

if TYPE_CHECKING:
    from dvc_invoke.config.gates import Gate

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
# What --pipeline also takes: project paths and DVC stage addresses.
PATH_RE = re.compile(r"[A-Za-z0-9_.\-/]+(:[A-Za-z0-9_.@\-]+)?")
DVCFILES = ("dvc.yaml", "dvc.yml")


@dataclass(frozen=True)
class Pipeline:
    """One pipeline and how to run it."""

    name: str
    dvcfile: str
    # The stages of `dvcfile` that are this pipeline's own (None: all of them);
    # the file's other stages are then upstream, pulled and never rebuilt.
    stages: tuple[str, ...] | None = None
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
    # sbatch options for `--slurm`: {"partition": "gpu", "gres": "gpu:1", "time": "04:00:00"}
    slurm: Mapping[str, str] | None = None

    @property
    def commit_message(self) -> str:
        return self.message or f"[DVC] Update {self.name}"


OPTIONS = tuple(f.name for f in dataclasses.fields(Pipeline) if f.name != "name")

# The attribute of a pipeline task's function that holds its pipeline.
PIPELINE_ATTR = "dvc_invoke_pipeline"


def defined(c: Any = None) -> dict[str, Pipeline]:
    """Pipelines made with `pipeline_task` that the project's tasks hold, by name:
    the tasks module invoke loaded is the one registry (nothing global to leak)."""
    from dvc_invoke.tasknames import collection_name, loaded_collection, tasks_of

    configured = c.config.get("tasks", {}).get("collection_name") if c is not None else None
    root = loaded_collection(collection_name(configured))
    found: dict[str, Pipeline] = {}
    for t in tasks_of(root) if root is not None else ():
        spec = getattr(getattr(t, "body", None), PIPELINE_ATTR, None)
        if isinstance(spec, Pipeline):
            found.setdefault(spec.name, spec)
    return found


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name)) and name not in (".", "..")


def valid_reference(name: str) -> bool:
    """A name, a project path or a stage address: nothing a shell or git could misread."""
    if not PATH_RE.fullmatch(name):
        return False
    path = name.split(":", 1)[0]
    parts = path.split("/")
    # No absolute path, no way out of the project, no empty part but a final `/`.
    return not path.startswith("/") and ".." not in parts and "" not in parts[:-1]


def slug(name: str) -> str:
    """``name`` as one word for file names, run ids and branch names."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "pipeline"


def make(
    name: str, values: dict[str, Any], *, base: Pipeline | None = None, where: str
) -> Pipeline:
    """A `Pipeline` from option ``values``, checked; ``where`` names their source."""
    values = dict(values)
    dvcfile = values.get("dvcfile")
    if isinstance(dvcfile, str) and ":" in dvcfile:  # "dvc.yaml:evaluate", as DVC writes it
        values["dvcfile"], _, stage = dvcfile.partition(":")
        if values.get("stages") is None:
            values["stages"] = [stage]
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
        elif key == "stages":
            value = _stages(value, where=where)
        elif key == "slack":
            value = _slack_options(value, where=where)
        elif key == "slurm":
            value = _slurm_options(value, where=where)
        elif key == "gates" and value is not None:
            from dvc_invoke.config.gates import parse_gates  # `inv --list` stays light

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


# An sbatch long option, as config spells it (cpus_per_task for --cpus-per-task).
_SBATCH_OPTION = re.compile(r"[a-z][a-z0-9_-]*")
# What dvc-invoke sets itself: the job is the run.
_SBATCH_OWN = {"job_name", "output", "error", "chdir", "export", "parsable", "wrap"}


def _slurm_options(value: Any, *, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DvcInvokeError(f"{where}: slurm must be a mapping of sbatch options", step="guards")
    options: dict[str, str] = {}
    for key, option in value.items():
        name = str(key).replace("-", "_")
        if not _SBATCH_OPTION.fullmatch(str(key)) or name in _SBATCH_OWN:
            raise DvcInvokeError(
                f"{where}: slurm option {key!r} is not one to set"
                f" (sbatch long options such as partition, gres, time, cpus_per_task, mem;"
                f" not {', '.join(sorted(_SBATCH_OWN))})",
                step="guards",
            )
        if option is True:  # an sbatch flag: no_requeue: true is --no-requeue
            options[name] = ""
            continue
        if isinstance(option, bool) or not isinstance(option, (str, int, float)) or option == "":
            raise DvcInvokeError(
                f"{where}: slurm option {key} must be text, a number or true (a flag)",
                step="guards",
            )
        options[name] = str(option)
    return options


def _stages(value: Any, *, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, Iterable)
        or not (value := tuple(value))
        or not all(isinstance(v, str) and NAME_RE.fullmatch(v.split("@")[0]) for v in value)
    ):
        raise DvcInvokeError(
            f"{where}: stages must be a non-empty list of stage names", step="guards"
        )
    return tuple(dict.fromkeys(value))


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
    names = set(_configured(c)) | set(defined(c))
    found = discover(c, root)
    names |= {_canonical(path) for path in found.values()}
    names |= {alias for alias, name in _aliases(found).items() if name is not None}
    return sorted(names)


def discover(c: Any, root: Path) -> dict[str, str]:
    """The project's pipelines, by folder (``.`` for the root): every ``dvc.yaml``
    git tracks or would track, as DVC finds them (git-ignored folders, which
    DVC's index skips too, are left out)."""
    found: dict[str, str] = {}
    specs = " ".join(f"':(glob)**/{f}'" for f in DVCFILES)
    res = c.run(
        f"git -C {shlex.quote(str(root))} ls-files -z -c -o --exclude-standard -- {specs}",
        hide=True,
        warn=True,
        in_stream=False,
        dry=False,  # reads only: a dry run must know the pipelines too
    )
    if res is not None and res.ok:
        paths = [p for p in res.stdout.split("\0") if p and (root / p).is_file()]
    else:  # not in git (yet): the top folder and the folders in it
        paths = [f for f in DVCFILES if (root / f).is_file()]
        if root.is_dir():
            paths += [
                f"{d.name}/{f}" for d in root.iterdir() for f in DVCFILES if (d / f).is_file()
            ]
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        folder = posixpath.dirname(path) or "."
        if folder not in found and valid_reference(folder):
            found[folder] = path
    return found


def _aliases(found: dict[str, str]) -> dict[str, str | None]:
    """The last part of each pipeline folder's path, where unambiguous (None: ambiguous)."""
    aliases: dict[str, str | None] = {}
    for folder in found:
        last = folder.rsplit("/", 1)[-1]
        if last != folder and last != ".":
            aliases[last] = folder if last not in aliases else None
    return {a: f for a, f in aliases.items() if a not in found}


def _configured(c: Any) -> dict[str, Any]:
    return settings(c).pipelines


def resolve(c: Any, root: Path, name: str) -> Pipeline:
    """The pipeline ``name`` means, or one line saying which names there are."""
    if not isinstance(name, str) or not valid_reference(name):
        raise DvcInvokeError(
            f"invalid pipeline name {name!r}: use a pipeline's name, its folder,"
            f" its dvc.yaml or a stage address such as dvc.yaml:train"
            f" (pipelines here: {_listing(c, root)})",
            step="guards",
        )
    configured = _configured(c)
    base = defined(c).get(name)
    if base is None and name not in configured:
        base = _by_path(c, root, name)
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


def _by_path(c: Any, root: Path, name: str) -> Pipeline | None:
    """A pipeline named as DVC users name it: folder, DVC file or stage address."""
    path, _, stage = name.partition(":")
    path = posixpath.normpath(path) if path else "."
    dvcfile: str | None
    if path.rsplit("/", 1)[-1] in DVCFILES:
        dvcfile = path
    elif stage:
        return None  # an address names a DVC file: `dvc.yaml:train`
    else:
        dvcfile = next(
            (posixpath.join(path, f) for f in DVCFILES if (root / path / f).is_file()), None
        )
        if dvcfile is None and "/" not in path:  # `train` for pipelines/train
            found = discover(c, root)
            folder = _aliases(found).get(path)
            dvcfile = found.get(folder) if folder else None
    if dvcfile is None or not (root / dvcfile).is_file():
        return None
    dvcfile = posixpath.normpath(dvcfile)
    stages = (stage,) if stage else None
    declared = _declaring(c, root, dvcfile, stages)
    if declared is not None:  # its gates, message and targets: never bypassed by a path
        return resolve(c, root, declared)
    return Pipeline(_canonical(dvcfile) + (f":{stage}" if stage else ""), dvcfile, stages=stages)


def _declaring(c: Any, root: Path, dvcfile: str, stages: tuple[str, ...] | None) -> str | None:
    """The one pipeline made with `pipeline_task` or configured that is, as
    resolved now, exactly ``dvcfile`` (and ``stages``), if there is one."""
    found = []
    for name in sorted(set(defined(c)) | set(_configured(c))):
        try:
            p = resolve(c, root, name)  # by name: never back through a path
        except DvcInvokeError:
            continue  # its own error shows when it is asked for by name
        if (p.dvcfile, p.stages) == (dvcfile, stages):
            found.append(name)
    return found[0] if len(found) == 1 else None


def upstream_pipeline(
    c: Any, root: Path, dvcfile: str, stages: Iterable[str], *, own: Pipeline
) -> Pipeline:
    """The pipeline that runs ``stages`` of ``dvcfile`` before another, whole.

    The declared one (`pipeline_task` or config) of that file that holds
    them all, the one with the fewest stages, so that its gates, message and
    Slack set-up come with it; else, for another folder's file, that file's
    own pipeline. Stages of the running pipeline's (``own``) file share its
    lock file: only a pipeline that holds the running one's stages too can
    publish them (alone, the lock it commits would record those stages
    stale). Refused: none that fits, or two that fit equally.
    """
    own_file = dvcfile == own.dvcfile
    needed = set(stages)
    if own_file:
        needed |= set(own.stages or ())
    fits: list[tuple[int, str, Pipeline]] = []
    for name in sorted(set(defined(c)) | set(_configured(c))):
        try:
            p = resolve(c, root, name)
        except DvcInvokeError:
            continue  # its own error shows when it is asked for by name
        if p.dvcfile != dvcfile:
            continue
        if p.stages is None or needed <= set(p.stages):
            fits.append((len(p.stages) if p.stages is not None else 1_000_000, name, p))
    fits.sort(key=lambda fit: fit[0])
    listed = ", ".join(sorted(needed))
    if len(fits) > 1 and fits[0][0] == fits[1][0]:
        raise DvcInvokeError(
            f"--upstream: stages {listed} of {dvcfile} belong to both {fits[0][1]} and"
            f" {fits[1][1]}: run the one you mean first, then this one without --upstream",
            step="guards",
        )
    if fits:
        return fits[0][2]
    if own_file:
        raise DvcInvokeError(
            f"--upstream: stages {listed} of {dvcfile} must run first and share its lock"
            f" file, but no pipeline holds them all: declare one (pipeline_task(...,"
            f" dvcfile={dvcfile!r}), the whole file), or run them by hand first",
            step="guards",
        )
    return resolve(c, root, dvcfile)


def _canonical(dvcfile: str) -> str:
    """A pipeline's name by its DVC file: its folder (``pipelines/train``), or
    ``dvc.yaml`` for the root's, which reads better than ``.`` in a commit."""
    return posixpath.dirname(dvcfile) or dvcfile


def _listing(c: Any, root: Path) -> str:
    return ", ".join(available(c, root)) or "none"
