"""A pipeline as DVC sees it: its stages in order, what it reads, what it writes.

The pipeline's own ``dvc.yaml`` is loaded by DVC (``dvc.repo.Repo``), so
templating, ``foreach`` and ``matrix`` stages are understood exactly as
``dvc repro`` understands them; the outputs of the project's other DVC files
are read quickly when the files are plain, by DVC otherwise (`scan`).
``dvc`` is imported here, on first use only.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any, NoReturn

from dvc_invoke.adapters.dvc.model import (
    PipelineGraph,
    Tracked,
    collapse,
    file_of,
    relative,
    stage_address,
)
from dvc_invoke.adapters.dvc.scan import scan
from dvc_invoke.adapters.dvc.session import opened, reading, remember
from dvc_invoke.adapters.dvc.staleness import missing_but_fresh, stale_upstream
from dvc_invoke.config.paths import overlaps
from dvc_invoke.errors import DvcInvokeError


def load(
    root: Path,
    dvcfile: str | None,
    *,
    stages: tuple[str, ...] | list[str] | None = None,
    force: bool = False,
) -> PipelineGraph:
    """Read the pipeline defined by ``dvcfile`` (relative to ``root``); with
    ``None``, only what the project tracks (to resolve pull/push targets).

    The pipeline's own ``dvc.yaml`` is loaded by DVC, stage by stage, as
    ``dvc repro`` loads it; ``stages`` keeps some of its stages as the
    pipeline's own (the others are upstream). Of the project's other DVC
    files only their outputs matter (which inputs to pull, what a target
    names): `scan` reads those quickly, handing a file to DVC whenever it is
    templated or unusual. Unless ``force``, the outputs of own stages that
    are up to date but missing from the workspace are named in ``restore``.
    The upstream pipelines that are stale are named in ``stale_upstream``.
    """
    # Under DVC's lock: stage checks take its rwlock.
    with reading("guards"), opened(root) as repo:
        tracked, in_file = scan(repo, dvcfile)
        if dvcfile is not None:  # the checks before and after the pull need them too
            remember(root, dvcfile, in_file)
        own = _own(dvcfile, in_file, stages)
        ordered = _in_order(root, own, tracked)
        g = build(Path(root), dvcfile, ordered, tracked)
        g.file_stages = [s.name for s in in_file if getattr(s, "name", None)]
        if dvcfile is not None:
            g.top_metrics, g.top_plots = _top_level(repo, root, dvcfile, g)
            if not force:
                g.restore = missing_but_fresh(repo, root, ordered, tracked)
            g.stale_upstream = stale_upstream(repo, root, g)
            g.fetch = _metrics_not_cached(root, ordered, g)
            # The metrics as they were before the run, to compare with: a
            # cached metrics file missing here (a fresh clone) is brought too.
            g.restore = collapse(g.restore + _missing_cached(root, g))
    return g


def _own(dvcfile: str | None, in_file: list[Any], names: Any) -> list[Any]:
    """The stages of ``dvcfile`` that a run reproduces: all, or those ``names``d."""
    stages = [s for s in in_file if not s.is_data_source]
    if dvcfile is not None and not stages:
        raise DvcInvokeError(f"{dvcfile} declares no stages", step="guards")
    if names is None:
        return stages
    by_name = {s.name: s for s in stages}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise DvcInvokeError(
            f"{dvcfile} has no stage {', '.join(unknown)}"
            f" (its stages: {', '.join(by_name) or 'none'})",
            step="guards",
        )
    return [by_name[n] for n in names]


def _top_level(
    repo: Any, root: Path, dvcfile: str, g: PipelineGraph
) -> tuple[list[str], list[str]]:
    """The metrics and plot files declared at the top of ``dvcfile`` that are
    the pipeline's: those its stages' outputs hold, and those git tracks (a
    stage writes them; which one, the file does not say). A file that another
    stage's output holds is not (the train stage of an evaluate-only one)."""
    from dvc.dvcfile import load_file

    file = load_file(repo, os.path.join(os.fspath(root), dvcfile))
    folder = posixpath.dirname(dvcfile)

    def rel(path: Any) -> str | None:
        if not isinstance(path, str) or "://" in path or os.path.isabs(path):
            return None
        joined = posixpath.normpath(posixpath.join(folder, path.replace(os.sep, "/")))
        return None if joined.startswith("../") else joined

    ours = {o.path for o in g.outputs}

    def own(path: str | None) -> bool:
        out = g.tracked.owner(path) if path else None
        return path is not None and (out is None or out.path in ours)

    metrics = [m for m in map(rel, file.metrics or []) if m is not None and own(m)]
    plots: list[str] = []
    for entry in file.plots or []:
        if isinstance(entry, str):
            plots.append(entry)
        elif isinstance(entry, dict):
            for name, spec in entry.items():
                y = spec.get("y") if isinstance(spec, dict) else None
                plots += list(y) if isinstance(y, dict) else [name]
    return metrics, [p for p in map(rel, plots) if p is not None and own(p)]


def _metrics_not_cached(root: Path, ordered: list[Any], g: PipelineGraph) -> list[str]:
    """Outputs holding the pipeline's metrics that are in the workspace but whose
    recorded data is not in the local cache: the metrics as the lock has them."""
    from dvc.exceptions import DvcException

    found = []
    for stage in ordered:
        for out in stage.outs:
            path = relative(root, out.fs_path)
            if not out.use_cache or not out.hash_info or not os.path.lexists(out.fs_path):
                continue
            if not any(overlaps(m, [path]) for m in g.metric_files):
                continue
            try:
                missing = out.changed_cache()
            except DvcException:
                missing = True
            if missing:
                found.append(path)
    return found


def _missing_cached(root: Path, g: PipelineGraph) -> list[str]:
    owners = [g.tracked.owner(f) for f in g.metric_files]
    return [
        o.path
        for o in owners
        if o is not None and o.cached and not os.path.lexists(os.path.join(root, o.path))
    ]


def build(root: Path, dvcfile: str | None, ordered: list[Any], tracked: Tracked) -> PipelineGraph:
    """The pipeline of ``dvcfile``: its ``ordered`` stages, what they read and write.

    Its own stages run; with ``upstream``, so do the stages of other
    pipelines they depend on (``ordered`` holds them). What any other stage
    or ``.dvc`` file produces is an input: pulled, never rebuilt
    (``dvc repro --force`` alone would retrain the model just to compute
    its metrics).
    """
    run_addresses = {stage_address(root, s) for s in ordered}
    inputs: list[str] = []
    depends_on: list[str] = []
    producers: list[str] = []
    for stage in ordered:
        depends_on += _stage_files(relative(root, stage.path))
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue  # imports from URLs and other repositories
            path = relative(root, dep.fs_path)
            if path.startswith("../"):
                continue
            depends_on.append(path)
            for p, out in tracked.matches(path):
                if out.stage in run_addresses:
                    continue
                depends_on += _stage_files(file_of(out.stage))
                if not out.stage.endswith(".dvc"):
                    producers.append(out.stage)
                if out.cached:
                    inputs.append(p)
    return PipelineGraph(
        dvcfile=dvcfile,
        stages=[stage_address(root, s) for s in ordered],
        inputs=collapse(inputs),
        outputs=[o for o in tracked.by_path.values() if o.stage in run_addresses],
        lockfiles=sorted(
            {
                posixpath.join(posixpath.dirname(relative(root, s.path)), "dvc.lock")
                for s in ordered
                if relative(root, s.path).endswith(("dvc.yaml", "dvc.yml"))
            }
        ),
        tracked=tracked,
        depends_on=list(dict.fromkeys(depends_on)),
        upstream_stages=list(dict.fromkeys(producers)),
    )


def _stage_files(dvcfile: str) -> list[str]:
    """The files git holds for a stage: its dvc.yaml and dvc.lock, or its .dvc file."""
    if dvcfile.endswith(("dvc.yaml", "dvc.yml")):
        return [dvcfile, posixpath.join(posixpath.dirname(dvcfile), "dvc.lock")]
    return [dvcfile]


def _in_order(root: Path, stages: list[Any], tracked: Tracked) -> list[Any]:
    """``stages`` in the order they run, as DVC's graph has it: a stage runs
    after another when one of its deps is, holds or lies inside the other's
    output. (DVC's own ``build_graph`` looks for cycles edge by edge, which
    takes seconds on a pipeline of hundreds of stages; the sort finds them.)"""
    from graphlib import CycleError, TopologicalSorter

    by_address = {stage_address(root, s): s for s in stages}
    sorter: TopologicalSorter[Any] = TopologicalSorter()
    for stage in stages:
        sorter.add(stage)
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue
            for _, out in tracked.matches(relative(root, dep.fs_path)):
                producer = by_address.get(out.stage)
                if producer is not None and producer is not stage:
                    sorter.add(stage, producer)
    try:
        return list(sorter.static_order())
    except CycleError as exc:
        _cycle([getattr(s, "addressing", str(s)) for s in exc.args[1]])


def _cycle(names: list[str]) -> NoReturn:
    raise DvcInvokeError(
        f"stages depend on each other in a cycle: {' -> '.join(names)}", step="guards"
    )
