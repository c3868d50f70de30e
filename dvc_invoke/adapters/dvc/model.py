"""A pipeline's data as dvc-invoke holds it: the outputs DVC tracks, a
pipeline's graph, the upstream files that must run first, stage addresses.

Plain values and pure functions on them: nothing here reads a file or asks DVC.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvc_invoke.config.paths import normalize
from dvc_invoke.errors import DvcInvokeError


@dataclass(frozen=True)
class Output:
    path: str  # relative to the DVC root, with forward slashes
    cached: bool  # False: `cache: false`, so git tracks it (metrics, plots)
    stage: str  # the address of the stage that writes it
    metric: bool = False  # declared under `metrics:`
    plot: bool = False  # declared under `plots:`


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
    # Outputs of its own stages that are up to date but missing from the
    # workspace (a fresh clone, a new GPU box): brought back from the DVC
    # remote before `dvc repro`, so that DVC finds them up to date instead
    # of running them again.
    restore: list[str] = dataclasses.field(default_factory=list)
    # Metrics and plots declared at the top level of the pipeline's dvc.yaml
    # (dvclive's way), relative to the project's root.
    top_metrics: list[str] = dataclasses.field(default_factory=list)
    top_plots: list[str] = dataclasses.field(default_factory=list)
    # Every stage of the pipeline's DVC file, own or not, by name.
    file_stages: list[str] = dataclasses.field(default_factory=list)
    # The stages of other pipelines (or of its file's other stages) whose
    # outputs its own stages read, and which of their files must run again.
    upstream_stages: list[str] = dataclasses.field(default_factory=list)
    stale_upstream: list[Upstream] = dataclasses.field(default_factory=list)
    # Cached outputs holding its metrics whose data, as the lock records it,
    # is not in the local cache (a teammate's run published it): fetched
    # before the run, or the old metrics could not be read to compare with.
    fetch: list[str] = dataclasses.field(default_factory=list)

    @property
    def metric_files(self) -> list[str]:
        found = [o.path for o in self.outputs if o.metric]
        return list(dict.fromkeys(found + self.top_metrics))

    @property
    def plot_files(self) -> list[str]:
        """The files its plots are drawn from: plot outputs and top-level plots."""
        found = [o.path for o in self.outputs if o.plot]
        return list(dict.fromkeys(found + self.top_plots))

    @property
    def declared(self) -> list[str]:
        """Top-level metrics and plots that git tracks (no output holds them):
        a stage may rewrite them, and they are committed with the lock."""
        return [
            f for f in dict.fromkeys(self.top_metrics + self.top_plots) if not self.tracked.owner(f)
        ]

    @property
    def push_inputs(self) -> list[str]:
        """Cached inputs the run reads: a published lock file references them too."""
        return [i for i in self.inputs if (o := self.tracked.owner(i)) is not None and o.cached]

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
        return list(dict.fromkeys(paths + self.declared))

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


@dataclass(frozen=True)
class Upstream:
    """A DVC file upstream of a pipeline that must run before it: its stale stages."""

    dvcfile: str
    stale: tuple[str, ...]  # "stage NAME: why"; empty: stale only once its own upstream runs
    stages: tuple[str, ...] = ()  # its stages the pipeline reads from, by name
    never_run: tuple[str, ...] = ()  # its stages the pipeline reads that never ran (no lock entry)


def by_stage(tracked: Tracked, paths: list[str]) -> list[str]:
    """``paths`` as ``dvc pull`` targets: a stage whose cached outputs are all
    among them is named by its address (``dvc.yaml:train``, ``data.csv.dvc``),
    which DVC resolves at once, where each output path is looked up among all
    stages (measured: 0.2 s for five paths). The rest stay paths."""
    cached: dict[str, set[str]] = {}
    for each in tracked.by_path.values():
        if each.cached:
            cached.setdefault(each.stage, set()).add(each.path)
    wanted = set(paths)
    targets: list[str] = []
    for path in paths:
        out = tracked.by_path.get(path)
        if out is None or not out.cached or not cached[out.stage] <= wanted:
            targets.append(path)
            continue
        stage = (
            out.stage if out.stage.endswith(".dvc") or ":" in out.stage else f"dvc.yaml:{out.stage}"
        )
        if stage not in targets:
            targets.append(stage)
    return targets


def relative(root: Path | str, path: str) -> str:
    """``path`` relative to the project's ``root``, with forward slashes."""
    return Path(os.path.relpath(path, root)).as_posix()


def address(dvcfile: str, name: str | None) -> str:
    """A stage's address as DVC prints it from the project's root."""
    if name is None:
        return dvcfile  # a .dvc file
    return name if dvcfile == "dvc.yaml" else f"{dvcfile}:{name}"


def file_of(stage_address: str) -> str:
    """The DVC file declaring the stage at ``stage_address``."""
    if ":" in stage_address:
        return stage_address.rsplit(":", 1)[0]
    return stage_address if stage_address.endswith(".dvc") else "dvc.yaml"


def stage_address(root: Path | str, stage: Any) -> str:
    """The address of a stage DVC loaded (a ``dvc.stage.Stage``)."""
    return address(relative(root, stage.path), getattr(stage, "name", None))


def by_address(dvcfile: str, stages: Iterable[Any]) -> dict[str, Any]:
    """The stages DVC loaded from ``dvcfile``, by address."""
    return {address(dvcfile, getattr(st, "name", None)): st for st in stages}
