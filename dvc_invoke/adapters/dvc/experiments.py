"""DVC's experiments as dvc-invoke reads them: ``dvc exp show --json``, the names
``dvc exp run --queue`` prints, and the params a pipeline's stages read.

Everything here is DVC's public face: its command line's JSON and messages,
and a stage's declared params. A queued experiment's state, its worker's pid
and its log are DVC's own (``executor`` in ``dvc exp show --json``), so
liveness is judged by the process DVC itself recorded.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_invoke.errors import DvcInvokeError

# DVC's states (``executor.state``), and ours for a worker that died: "lost".
QUEUED, RUNNING, SUCCESS, FAILED, LOST = "queued", "running", "success", "failed", "lost"
DONE = (SUCCESS, FAILED, LOST)
QUEUED_RE = re.compile(r"Queued experiment '([^']+)' for future execution")
# `-S` as DVC takes it: [FILE:]KEY=VALUE (VALUE may be a grid: a,b,c)
SET_RE = re.compile(
    r"(?:(?P<file>[A-Za-z0-9_./-]+\.(?:yaml|yml|json|toml|py)):)?(?P<key>[^=:\s]+)="
)
DEFAULT_PARAMS = "params.yaml"


@dataclass
class Experiment:
    """One experiment of one baseline commit, as DVC shows it."""

    name: str
    rev: str
    baseline: str  # the commit it was run on
    state: str  # queued, running, success, failed (DVC's), lost (ours)
    params: dict[str, Any] = field(default_factory=dict)  # "params.yaml:train.lr": 0.01
    metrics: dict[str, Any] = field(default_factory=dict)  # "metrics.json:acc": 0.9
    pid: int | None = None
    returncode: int | None = None
    log: str | None = None  # DVC's log of its run (`dvc queue logs NAME`)

    @property
    def done(self) -> bool:
        return self.state in DONE


@dataclass
class Baseline:
    """A commit and the experiments run on it."""

    rev: str
    name: str | None  # its branch or tag, when it has one
    params: dict[str, Any]
    metrics: dict[str, Any]
    experiments: list[Experiment]


def flatten(files: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"params.yaml": {"data": {"train": {"lr": 1}}}}`` as ``{"params.yaml:train.lr": 1}``."""
    flat: dict[str, Any] = {}

    def walk(path: str, prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(path, f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[f"{path}:{prefix}"] = value

    for path, content in (files or {}).items():
        walk(path, "", (content or {}).get("data") or {})
    return flat


def parse_show(text: str) -> list[Baseline]:
    """The baselines and experiments of ``dvc exp show --json`` output (the
    workspace row is left out: a run's guards keep it at HEAD)."""
    try:
        rows = json.loads(text or "[]")
    except ValueError as exc:
        raise DvcInvokeError(f"`dvc exp show --json` printed no JSON: {exc}", step="exp") from None
    baselines = []
    for row in rows:
        if row.get("rev") == "workspace":
            continue
        data = row.get("data") or {}
        found = [
            e for group in row.get("experiments") or () if (e := _experiment(group, row["rev"]))
        ]
        baselines.append(
            Baseline(
                row["rev"],
                row.get("name"),
                flatten(data.get("params")),
                flatten(data.get("metrics")),
                found,
            )
        )
    return baselines


def _experiment(group: Mapping[str, Any], baseline: str) -> Experiment | None:
    revs = group.get("revs") or []
    if not revs:
        return None
    first = revs[0]
    data = first.get("data") or {}
    executor = group.get("executor") or {}
    local = executor.get("local") or {}
    state = executor.get("state") or (FAILED if first.get("error") else SUCCESS)
    name = group.get("name") or first.get("name") or first["rev"][:7]
    return Experiment(
        name=name,
        rev=first["rev"],
        baseline=baseline,
        state=state,
        params=flatten(data.get("params")),
        # A failed experiment shows its baseline's metrics: none of its own.
        metrics=flatten(data.get("metrics")) if state == SUCCESS else {},
        pid=local.get("pid"),
        returncode=local.get("returncode"),
        log=local.get("log"),
    )


def queued_names(output: str) -> list[str]:
    """The experiments ``dvc exp run --queue`` queued, in its order."""
    return QUEUED_RE.findall(output or "")


def queue_states(output: str) -> dict[str, str]:
    """``dvc queue status`` output: each experiment's status there, by name."""
    found = {}
    for line in (output or "").splitlines():
        words = line.split()
        # Task  Name  Created  Status  (Created: "08:39 PM" or "Dec 04, 2026")
        if len(words) >= 4 and re.fullmatch(r"[0-9a-f]{7,}", words[0]):
            found[words[1]] = words[-1]
    return found


def set_keys(sets: Iterable[str]) -> list[tuple[str, str]]:
    """``(file, key)`` of each ``-S`` value; the file is ``params.yaml`` unless named.
    DVC's own overrides (``+key=``, ``~key``) are passed on unchecked."""
    keys = []
    for value in sets:
        if value[:1] in "+~":
            continue
        m = SET_RE.match(value)
        if m is None:
            raise DvcInvokeError(
                f"-S {value!r}: say [FILE:]KEY=VALUE, e.g. -S train.lr=0.01 or a grid:"
                " -S 'train.lr=0.001,0.01'",
                step="guards",
            )
        keys.append((m.group("file") or DEFAULT_PARAMS, m.group("key")))
    return keys


def params_read(root: Path, addresses: list[str]) -> dict[str, set[str] | None]:
    """The params the stages at ``addresses`` read, by params file: the keys
    declared, or None when a stage reads the whole file."""
    from dvc_invoke.adapters.dvc.session import collected, opened, reading

    read: dict[str, set[str] | None] = {}
    with reading("guards"), opened(root) as repo:
        for stage in collected(repo, root, addresses).values():
            for dep in stage.deps:
                keys = getattr(dep, "params", None)
                if keys is None:
                    continue
                path = Path(dep.fs_path).resolve().relative_to(root.resolve()).as_posix()
                if not keys or isinstance(keys, dict) and not keys:
                    read[path] = None
                elif read.get(path, set()) is not None:
                    read[path] = (read.get(path) or set()) | set(keys)
    return read


def absent(root: Path, sets: Iterable[str]) -> list[str]:
    """The ``-S`` keys their YAML or JSON params file does not hold (DVC refuses
    them when it queues: a new key is ``+key=value``)."""
    import yaml

    missing, loaded = [], {}
    for path, key in set_keys(sets):
        file = root / path
        if not file.is_file() or file.suffix not in (".yaml", ".yml", ".json"):
            continue
        if path not in loaded:
            try:
                loaded[path] = yaml.safe_load(file.read_text()) or {}
            except (OSError, yaml.YAMLError):
                loaded[path] = None
        value: Any = loaded[path]
        if value is None:
            continue
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                missing.append(f"{path}:{key}")
                break
            value = value[part]
    return missing


def unread(sets: Iterable[str], read: Mapping[str, set[str] | None]) -> list[str]:
    """The ``-S`` keys no stage of the pipeline reads (a grid over them would
    run the same experiment again and again)."""
    missing = []
    for path, key in set_keys(sets):
        if path not in read:
            missing.append(f"{path}:{key}")
            continue
        declared = read[path]
        if declared is None:
            continue
        if not any(
            key == d or key.startswith(d + ".") or d.startswith(key + ".") for d in declared
        ):
            missing.append(f"{path}:{key}")
    return missing


def grid(sets: Iterable[str]) -> list[list[str]]:
    """The experiments of a sweep's ``-S`` values, each as its own ``-S`` values,
    in the order ``dvc exp run --queue`` queues them (DVC expands the grid:
    ``a=1,2`` with ``b=3,4`` is four, ``range(...)`` and ``choice(...)`` too)."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    try:
        sweeps = get_hydra_sweeps(to_path_overrides(list(sets)))
    except Exception as exc:  # noqa: BLE001 - hydra's grammar errors are of many kinds
        said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DvcInvokeError(f"DVC cannot read the -S values: {said}", step="guards") from None
    return [
        [o if path == DEFAULT_PARAMS else f"{path}:{o}" for path, said in one.items() for o in said]
        for one in sweeps
    ]


FAILED_RE = re.compile(r"failed to reproduce '([^']+)'")


def failed_stage(log: str) -> str | None:
    """The stage DVC's log says failed (``failed to reproduce 'train'``), the last."""
    found = FAILED_RE.findall(log or "")
    return found[-1] if found else None


def cache_dir(root: Path) -> str:
    """The project's DVC cache folder (``.dvc/cache`` unless configured), absolute."""
    from dvc_invoke.adapters.dvc.session import opened

    with opened(root) as repo:
        return str(Path(repo.cache.local_cache_dir or root / ".dvc" / "cache").resolve())


SHOW_LIMIT = 30.0  # seconds one `dvc exp show` may take


def show(
    ws: Any, *, rev: str | None = None, all_commits: bool = False, limit: float = SHOW_LIMIT
) -> list[Baseline]:
    """``dvc exp show --json`` (of ``rev``, or of every commit), read: a process
    of its own within ``limit`` seconds. In this process DVC's queue (Celery)
    hung it once workers ran; and DVC reading a running experiment's branch
    can hang (pygit2's blob read, seen under load). Raises `DvcInvokeError`
    when DVC failed or did not answer."""
    from invoke.exceptions import CommandTimedOut

    words = ["--rev", rev] if rev else []
    words += ["--all-commits"] if all_commits else []
    cmd = f"{ws.dvc} exp show --json" + "".join(f" {shlex.quote(w)}" for w in words)
    try:
        out = ws.probe(cmd, in_process=False, timeout=limit)
    except CommandTimedOut:
        raise DvcInvokeError(f"`dvc exp show` did not answer in {limit:g} s", step="exp") from None
    if out.failed:
        said = [ln for ln in (out.stderr or "").splitlines() if ln.strip()]
        why = said[-1].removeprefix("ERROR: ") if said else f"exit {out.exited}"
        raise DvcInvokeError(f"`dvc exp show` failed: {why}", step="exp")
    return parse_show(out.stdout)
