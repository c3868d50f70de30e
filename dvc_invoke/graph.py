"""A pipeline as DVC sees it: its stages in order, what it reads, what it writes.

Read through DVC's own index (``dvc.repo.Repo``), so templated ``dvc.yaml``
files, ``foreach`` stages and ``.dvc`` files are understood exactly as
``dvc repro`` understands them. ``dvc`` is imported here, on first use only.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DvcInvokeError, dvc_error_reason


@dataclass(frozen=True)
class Output:
    path: str  # relative to the DVC root, with forward slashes
    cached: bool  # False: `cache: false`, so git tracks it (metrics, plots)
    stage: str  # the address of the stage that writes it
    metric: bool = False  # declared under `metrics:`


class Tracked:
    """Every output DVC tracks in the project, looked up by path."""

    def __init__(self, outputs: list[Output]):
        self.by_path = {o.path: o for o in outputs}
        self._sorted = sorted(self.by_path)

    def owner(self, path: str) -> Output | None:
        """The output at ``path`` or holding it (a file inside a tracked folder)."""
        while path:
            if path in self.by_path:
                return self.by_path[path]
            path = posixpath.dirname(path)
        return None

    def under(self, path: str) -> list[Output]:
        if path == ".":
            return [self.by_path[p] for p in self._sorted]
        prefix = path + "/"
        i = bisect.bisect_left(self._sorted, prefix)
        found = []
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            found.append(self.by_path[self._sorted[i]])
            i += 1
        return found

    def matches(self, path: str) -> list[tuple[str, Output]]:
        """What ``path`` names: itself when it is (inside) an output, else the
        outputs under it; each with the output it belongs to."""
        out = self.owner(path)
        if out is not None:
            return [(path, out)]
        return [(o.path, o) for o in self.under(path)]


@dataclass
class PipelineGraph:
    dvcfile: str | None
    stages: list[str]  # addresses of the stages a run reproduces, dependencies first
    inputs: list[str]  # what to pull before the run: cached data its stages read
    outputs: list[Output]  # what the run's stages write
    lockfiles: list[str]
    tracked: Tracked
    # What the run's results depend on, as git sees it: its stages' deps and
    # dvc.yaml, and the .dvc files and lock files behind its inputs. A
    # teammate's commit touching one makes the run's lock file stale.
    depends_on: list[str] = dataclasses.field(default_factory=list)

    @property
    def metric_files(self) -> list[str]:
        return [o.path for o in self.outputs if o.metric]

    @property
    def push_targets(self) -> list[str]:
        return [o.path for o in self.outputs if o.cached]

    def git_paths(self) -> list[str]:
        """What a run may change that git tracks: lock files, DVC's .gitignore
        entries for cached outputs, and outputs kept in git (`cache: false`)."""
        paths = list(self.lockfiles)
        for out in self.outputs:
            if out.cached:
                paths.append(posixpath.join(posixpath.dirname(out.path), ".gitignore"))
            else:
                paths.append(out.path)
        return list(dict.fromkeys(paths))

    def resolve(self, targets: list[str], *, step: str) -> list[str]:
        """Turn user targets into what ``dvc pull``/``dvc push`` must be given.

        A target names the tracked outputs at or under it, or a part of one
        tracked folder. ``dvc pull -R model`` pulls nothing when ``model/``
        holds outputs declared in another folder's dvc.yaml, so targets are
        expanded here rather than left to ``-R``. A target that matches nothing
        is an error, not a silent no-op. Outputs kept in git are dropped.
        """
        resolved: list[str] = []
        for raw in targets:
            hits = self.tracked.matches(normalize(raw, step=step))
            if not hits:
                raise DvcInvokeError(
                    f"{step} target '{raw}' matches nothing DVC tracks"
                    " (name a .dvc-tracked path, a stage output, or a folder holding them)",
                    step=step,
                )
            resolved += [path for path, out in hits if out.cached]
        return collapse(resolved)


def collapse(paths: list[str]) -> list[str]:
    """``paths`` in order, without repeats and without paths inside another one."""
    kept = list(dict.fromkeys(paths))
    folders = set(kept)
    return [p for p in kept if not any(a in folders for a in _parents(p))]


def _parents(path: str) -> list[str]:
    parents = []
    while "/" in path:
        path = posixpath.dirname(path)
        parents.append(path)
    return parents


def normalize(raw: str, *, step: str) -> str:
    """A project-relative path with forward slashes; outside the project is an error."""
    text = str(raw).replace(os.sep, "/").strip()
    path = posixpath.normpath(text) if text else ""
    if not path or path.startswith("/") or path == ".." or path.startswith("../"):
        raise DvcInvokeError(f"{step} target '{raw}' is not a path inside the project", step=step)
    return path


def load(root: Path, dvcfile: str | None, *, upstream: bool = False) -> PipelineGraph:
    """Read the pipeline defined by ``dvcfile`` (relative to ``root``); with
    ``None``, only what the project tracks (to resolve pull/push targets)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(os.fspath(root)) as repo:
            stages = list(repo.index.stages)
            graph = repo.index.graph
    except DvcException as exc:
        raise DvcInvokeError(
            f"DVC cannot read the project: {dvc_error_reason(exc)}", step="guards"
        ) from None
    return build(Path(root), dvcfile, stages, graph, upstream=upstream)


def build(
    root: Path, dvcfile: str | None, stages: list[Any], graph: Any, *, upstream: bool
) -> PipelineGraph:
    """The pipeline of ``dvcfile`` among DVC's ``stages`` and stage ``graph``.

    Its own stages run; with ``upstream``, so do the stages of other
    pipelines they depend on. What any other stage or ``.dvc`` file produces
    is an input: pulled, never rebuilt (``dvc repro --force`` alone would
    retrain the model just to compute its metrics).
    """
    import networkx as nx

    def rel(path: str) -> str:
        return Path(os.path.relpath(path, root)).as_posix()

    own = [s for s in stages if rel(s.path) == dvcfile and not s.is_data_source]
    if dvcfile is not None and not own:
        raise DvcInvokeError(f"{dvcfile} declares no stages", step="guards")
    run = set(own)
    if upstream:
        for stage in own:
            run |= {s for s in nx.descendants(graph, stage) if not s.is_data_source}
    # DVC's edges point from a stage to the stages it depends on.
    ordered = list(reversed(list(nx.topological_sort(graph.subgraph(run)))))
    run_addresses = {s.addressing for s in ordered}

    tracked = Tracked(
        [
            Output(rel(out.fs_path), bool(out.use_cache), stage.addressing, bool(out.metric))
            for stage in stages
            for out in stage.outs
            if out.is_in_repo
        ]
    )
    inputs: list[str] = []
    depends_on: list[str] = []
    for stage in ordered:
        depends_on += _stage_files(rel(stage.path))
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue  # imports from URLs and other repositories
            path = rel(dep.fs_path)
            if path.startswith("../"):
                continue
            depends_on.append(path)
            for p, out in tracked.matches(path):
                if out.stage in run_addresses:
                    continue
                depends_on += _stage_files(out.stage.split(":")[0])
                if out.cached:
                    inputs.append(p)
    return PipelineGraph(
        dvcfile=dvcfile,
        stages=[s.addressing for s in ordered],
        inputs=collapse(inputs),
        outputs=[o for o in tracked.by_path.values() if o.stage in run_addresses],
        lockfiles=sorted(
            {
                posixpath.join(posixpath.dirname(rel(s.path)), "dvc.lock")
                for s in ordered
                if rel(s.path).endswith(("dvc.yaml", "dvc.yml"))
            }
        ),
        tracked=tracked,
        depends_on=list(dict.fromkeys(depends_on)),
    )


def _stage_files(dvcfile: str) -> list[str]:
    """The files git holds for a stage: its dvc.yaml and dvc.lock, or its .dvc file."""
    if dvcfile.endswith(("dvc.yaml", "dvc.yml")):
        return [dvcfile, posixpath.join(posixpath.dirname(dvcfile), "dvc.lock")]
    return [dvcfile]


def remote_problem(root: Path) -> str | None:
    """What is wrong with the project's default DVC remote, or None.

    A local remote must be an existing folder: a network share that is not
    mounted would otherwise silently receive the team's data in an empty
    local folder. Other remotes must answer (their folder may not exist yet).
    """
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(os.fspath(root)) as repo:
            try:
                remote = repo.cloud.get_remote()
            except NoRemoteError:
                return "no DVC remote is configured: add one with `dvc remote add -d NAME URL`"
            name, fs, path = remote.name, remote.fs, remote.path
            if fs.protocol == "local":
                if not os.path.isdir(path):
                    what = "is not a folder" if os.path.exists(path) else "does not exist"
                    return f"DVC remote '{name}' ({path}) {what}"
                return None
            try:
                fs.exists(path)
            except Exception as exc:  # noqa: BLE001 - every backend has its own errors
                return f"DVC remote '{name}' is not reachable: {dvc_error_reason(exc)}"
    except DvcException as exc:
        return f"DVC cannot read its remote configuration: {dvc_error_reason(exc)}"
    return None
