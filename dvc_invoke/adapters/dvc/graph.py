"""A pipeline as DVC sees it: its stages in order, what it reads, what it writes.

The pipeline's own ``dvc.yaml`` is loaded by DVC (``dvc.repo.Repo``), so
templating, ``foreach`` and ``matrix`` stages are understood exactly as
``dvc repro`` understands them; the outputs of the project's other DVC files
are read quickly when the files are plain, by DVC otherwise (`scan`).
``dvc`` is imported here, on first use only.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import os
import posixpath
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from dvc_invoke.config.paths import normalize, overlaps
from dvc_invoke.errors import DvcInvokeError, dvc_error_reason


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


# The DVC repository a run reads through, by root, while `session` is open.
_SESSIONS: dict[str, Any] = {}


@contextlib.contextmanager
def session(root: Path) -> Iterator[None]:
    """One DVC ``Repo`` for every read of a run (the graph, the remote, staleness,
    the metrics), instead of one each. Nested sessions share the outer one."""
    key = os.fspath(root)
    if key in _SESSIONS:
        yield
        return
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(key)
    except DvcException as exc:
        raise DvcInvokeError(
            f"DVC cannot read the project: {dvc_error_reason(exc)}", step="guards"
        ) from None
    _SESSIONS[key] = repo
    _SEEN.pop(key, None)
    try:
        yield
    finally:
        _SESSIONS.pop(key, None)
        _COLLECTED.pop(key, None)
        repo.close()


# Bumped by every command that may change the project (`touched`): a session's
# Repo drops what it read (the DVC files, parsed) only when this moved since.
_GENERATION = [0]
_SEEN: dict[str, int] = {}


def touched() -> None:
    """A command ran that may have changed the project's files: read them again."""
    _GENERATION[0] += 1


# The stages a read collected, by DVC file, while nothing ran since (a session's).
_COLLECTED: dict[str, tuple[int, dict[str, dict[str, Any]]]] = {}


def _files_read(root: Path) -> dict[str, dict[str, Any]]:
    """Where a session keeps the stages collected since the last command."""
    key = os.fspath(root)
    if key not in _SESSIONS:
        return {}
    seen = _COLLECTED.get(key)
    if seen is None or seen[0] != _GENERATION[0]:
        seen = _COLLECTED[key] = (_GENERATION[0], {})
    return seen[1]


@contextlib.contextmanager
def opened(root: Path) -> Iterator[Any]:
    """The session's ``Repo``, or a ``Repo`` of its own outside a session, under
    DVC's lock (stage checks take its rwlock). What the session's ``Repo`` read
    is dropped, as DVC's commands drop it (``lock_repo``), when a command ran
    since (`touched`): reads with none in between share one parse of the DVC
    files."""
    key = os.fspath(root)
    repo = _SESSIONS.get(key)
    if repo is None:
        from dvc.repo import Repo, lock_repo

        with Repo(key) as repo, lock_repo(repo):
            yield repo
        return
    if repo._lock_depth > 0:  # within a read already, or a DVC call's own lock
        yield repo
        return
    with repo.lock:
        if _SEEN.get(key) != _GENERATION[0]:
            repo._reset()
            _SEEN[key] = _GENERATION[0]
        repo._lock_depth += 1
        try:
            yield repo
        finally:
            repo._lock_depth -= 1


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
    from dvc.exceptions import DvcException

    try:
        with opened(root) as repo:  # under DVC's lock: stage checks take its rwlock
            tracked, in_file = scan(repo, dvcfile)
            if dvcfile is not None:  # the checks before and after the pull need them too
                _files_read(root)[dvcfile] = {
                    address(dvcfile, getattr(st, "name", None)): st for st in in_file
                }
            own = _own(dvcfile, in_file, stages)
            ordered = _in_order(root, own, tracked)
            g = build(Path(root), dvcfile, ordered, tracked)
            g.file_stages = [s.name for s in in_file if getattr(s, "name", None)]
            if dvcfile is not None:
                g.top_metrics, g.top_plots = _top_level(repo, root, dvcfile, g)
                if not force:
                    g.restore = _missing_but_fresh(repo, root, ordered, tracked)
                g.stale_upstream = _stale_upstream(repo, root, g)
                g.fetch = _metrics_not_cached(root, ordered, g)
                # The metrics as they were before the run, to compare with: a
                # cached metrics file missing here (a fresh clone) is brought too.
                g.restore = collapse(g.restore + _missing_cached(root, g))
    except DvcException as exc:
        raise DvcInvokeError(
            f"DVC cannot read the project: {dvc_error_reason(exc)}", step="guards"
        ) from None
    return g


@dataclass(frozen=True)
class Upstream:
    """A DVC file upstream of a pipeline that must run before it: its stale stages."""

    dvcfile: str
    stale: tuple[str, ...]  # "stage NAME: why"; empty: stale only once its own upstream runs
    stages: tuple[str, ...] = ()  # its stages the pipeline reads from, by name
    never_run: tuple[str, ...] = ()  # its stages the pipeline reads that never ran (no lock entry)


def _stale_upstream(repo: Any, root: Path, g: PipelineGraph) -> list[Upstream]:
    """The DVC files upstream of ``g`` that must run again, dependencies first.

    Walks from the producers of the pipeline's dependencies through theirs,
    collecting each file once. A stage is stale when DVC finds its command
    or a file git holds (code, params) changed, or when data it reads is
    recorded, by the lock or ``.dvc`` file that produces it, with another hash
    than its own lock recorded: the locks are compared, never the workspace's
    copies, which a pull has yet to bring (after ``git pull`` of a teammate's
    published run, nothing is stale). A file whose own upstream is stale must
    run too, after it: its results would be stale once that one ran.
    """
    import graphlib

    stage_at = _stage_lookup(repo, root)
    stale: dict[str, list[str]] = {}
    never: dict[str, list[str]] = {}  # file -> its stages that never ran
    names: dict[str, list[str]] = {}  # file -> its stages the pipeline reads from
    needs: dict[str, set[str]] = {}  # file -> files it reads from
    seen: set[str] = set()
    queue = list(g.upstream_stages)
    while queue:
        addr = queue.pop()
        if addr in seen:
            continue
        seen.add(addr)
        stage = stage_at(addr)
        if stage is None:
            continue
        file = _file_of(addr)
        needs.setdefault(file, set())
        names.setdefault(file, []).append(addr.rsplit(":", 1)[-1])
        why = _stale_by_locks(root, stage, stage_at, g.tracked)
        if why == NEVER_RUN:
            never.setdefault(file, []).append(addr.rsplit(":", 1)[-1])
        if why:
            stale.setdefault(file, []).append(f"stage {addr.rsplit(':', 1)[-1]}: {why}")
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue
            for _, out in g.tracked.matches(_relative(root, dep.fs_path)):
                if out.stage.endswith(".dvc") or out.stage in g.stages:
                    continue  # data sources are not pipelines; the pipeline's own runs after
                if _file_of(out.stage) != file:
                    needs[file].add(_file_of(out.stage))
                queue.append(out.stage)
    if not stale:
        return []
    try:
        order = list(graphlib.TopologicalSorter(needs).static_order())
    except graphlib.CycleError:
        order = sorted(needs)  # files that read from each other: DVC orders their stages

    affected: set[str] = set()
    for file in order:  # dependencies first
        if file in stale or needs.get(file, set()) & affected:
            affected.add(file)
    return [
        Upstream(f, tuple(stale.get(f, ())), tuple(names.get(f, ())), tuple(never.get(f, ())))
        for f in order
        if f in affected
    ]


NEVER_RUN = "never run"


def _stage_lookup(repo: Any, root: Path) -> Callable[[str], Any]:
    """The stage at an address (``dvc.yaml:train``, ``data.csv.dvc``), each
    DVC file collected once; those the run read already are not read again."""
    by_file = _files_read(root)  # the session's (shared), else this lookup's own

    def stage_at(addr: str) -> Any:
        return _collected(repo, root, [addr], by_file).get(addr)

    return stage_at


def _stale_by_locks(
    root: Path, stage: Any, stage_at: Any, tracked: Tracked, *, cannot_tell: str | None = None
) -> str | None:
    """Why ``stage`` must run again, judged by what git holds: its command
    and the files git holds as they are, the data it reads as the locks and
    ``.dvc`` files record it (never the workspace's copy, which a pull has yet
    to bring). ``cannot_tell``: the answer when DVC cannot tell."""
    from dvc.exceptions import DvcException

    outs = list(getattr(stage, "outs", []))
    if outs and not any(o.hash_info for o in outs):
        return NEVER_RUN  # no lock entry: its outputs were never produced
    try:
        if stage.changed_stage():
            return "its command or definition changed"
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue
            path = _relative(root, dep.fs_path)
            produced = tracked.matches(path)
            if not produced:  # a file git holds, or params: the workspace is git's
                if dep.status():
                    return f"{path} changed"
                continue
            for at, out in produced:
                producer = stage_at(out.stage)
                recorded = next(
                    (o for o in getattr(producer, "outs", []) if _relative(root, o.fs_path) == at),
                    None,
                )
                if at != path or recorded is None or not recorded.hash_info:
                    # a folder holding outputs, or inside one: DVC's own check
                    if dep.status() and os.path.lexists(dep.fs_path):
                        return f"{path} changed"
                elif dep.hash_info != recorded.hash_info:
                    return f"{path} changed"
    except DvcException:
        return cannot_tell  # by default DVC decides it when the stage runs
    return None


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


def _missing_but_fresh(repo: Any, root: Path, ordered: list[Any], tracked: Tracked) -> list[str]:
    """Outputs DVC would find up to date were they in the workspace.

    A stage counts when its command and the files git holds are as its lock
    entry says, the data it reads is recorded (by the lock or ``.dvc`` file
    that makes it) as its lock says it read it, no stage it depends on has
    to run, and the lock records a hash for the output. Its outputs missing
    from the workspace, or holding data DVC saved before (`_replaceable`: a
    run's or a checkout's, as after ``git pull`` of a teammate's run), are
    then worth pulling: ``dvc repro`` would otherwise run the stage again (a
    retrain on every new machine), where ``dvc repro --pull`` finds it up to
    date. The workspace's copies of the data a stage reads are not asked:
    the same pull brings them.
    """
    stage_at = _stage_lookup(repo, root)
    stale: set[str] = set()
    restore: list[str] = []
    for stage in ordered:
        deps = {_relative(root, d.fs_path) for d in stage.deps if getattr(d, "is_in_repo", False)}
        changed = any(overlaps(d, stale) for d in deps) or bool(
            _stale_by_locks(root, stage, stage_at, tracked, cannot_tell="unknown")
        )
        outs = [o for o in stage.outs if o.is_in_repo]
        if changed:
            stale |= {_relative(root, o.fs_path) for o in outs}
            continue
        for out in outs:
            if not (out.use_cache and out.hash_info):
                continue
            if not os.path.lexists(out.fs_path) or _replaceable(out):
                restore.append(_relative(root, out.fs_path))
    return collapse(restore)


def _replaceable(out: Any) -> bool:
    """Whether the workspace holds other data than the lock records for
    ``out``, data DVC itself saved in the cache: what an earlier run or
    checkout left, as after ``git pull`` of a teammate's run. Checking out
    the recorded data then loses nothing (``dvc checkout`` replaces it
    without asking, by the same rule); a copy DVC never saw, changed by
    hand, is never replaced: ``dvc repro`` decides about it."""
    from dvc.exceptions import DvcException

    try:
        current = out.get_hash()
        if not current or not current.value or current == out.hash_info:
            return False
        return _in_cache(out.cache, current)
    except (DvcException, OSError, ValueError):
        return False


def _in_cache(cache: Any, hash_info: Any) -> bool:
    """Whether every file of ``hash_info``'s data is in ``cache`` (hashing a
    folder writes its listing there, so the files are what tell)."""
    if not hash_info.isdir:
        return bool(cache.exists(hash_info.value))
    from dvc_data.hashfile.tree import Tree

    tree = Tree.load(cache, hash_info)
    return all(cache.exists(entry.value) for _, _, entry in tree if entry is not None)


def _metrics_not_cached(root: Path, ordered: list[Any], g: PipelineGraph) -> list[str]:
    """Outputs holding the pipeline's metrics that are in the workspace but whose
    recorded data is not in the local cache: the metrics as the lock has them."""
    from dvc.exceptions import DvcException

    found = []
    for stage in ordered:
        for out in stage.outs:
            path = _relative(root, out.fs_path)
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


def _in_order(root: Path, stages: list[Any], tracked: Tracked) -> list[Any]:
    """``stages`` in the order they run, as DVC's graph has it: a stage runs
    after another when one of its deps is, holds or lies inside the other's
    output. (DVC's own ``build_graph`` looks for cycles edge by edge, which
    takes seconds on a pipeline of hundreds of stages; the sort finds them.)"""
    from graphlib import CycleError, TopologicalSorter

    by_address = {address(_relative(root, s.path), getattr(s, "name", None)): s for s in stages}
    sorter: TopologicalSorter[Any] = TopologicalSorter()
    for stage in stages:
        sorter.add(stage)
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue
            for _, out in tracked.matches(_relative(root, dep.fs_path)):
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


def _relative(root: Path | str, path: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def address(dvcfile: str, name: str | None) -> str:
    """A stage's address as DVC prints it from the project's root."""
    if name is None:
        return dvcfile  # a .dvc file
    return name if dvcfile == "dvc.yaml" else f"{dvcfile}:{name}"


def _file_of(stage_address: str) -> str:
    if ":" in stage_address:
        return stage_address.rsplit(":", 1)[0]
    return stage_address if stage_address.endswith(".dvc") else "dvc.yaml"


def _outputs_of(root: Path | str, stage: Any) -> list[Output]:
    name = getattr(stage, "name", None)
    where = address(_relative(root, stage.path), name)
    return [
        Output(
            _relative(root, out.fs_path),
            bool(out.use_cache),
            where,
            bool(out.metric),
            bool(out.plot),
        )
        for out in stage.outs
        if out.is_in_repo
    ]


def scan(repo: Any, dvcfile: str | None) -> tuple[Tracked, list[Any]]:
    """Every output the project's DVC files declare, and the stages of ``dvcfile``.

    Walks the project as DVC's index does (``.dvcignore``, git-ignored files
    and folders that are outputs are skipped). ``dvcfile`` is loaded by DVC;
    other files are read with a C YAML parser when they are plain (no
    templating, ``foreach`` or ``matrix``, only text paths), else by DVC.
    """
    from dvc.dvcfile import is_valid_filename, load_file

    root, fs = repo.root_dir, repo.fs
    outputs: list[Output] = []
    own: list[Any] = []
    out_paths: set[str] = set()

    def ignored(path: str) -> bool:
        return bool(repo.scm.is_ignored(path))

    for folder, dirs, files in repo.dvcignore.walk(fs, root, followlinks=False):
        for file in files:
            if not is_valid_filename(file) or ignored(os.path.join(folder, file)):
                continue
            path = os.path.join(folder, file)
            rel = _relative(root, path)
            found = None if rel == dvcfile else _quick_outputs(path, rel)
            if found is None:
                stages = list(load_file(repo, path).stages.values())
                if rel == dvcfile:
                    own = stages
                found = [o for s in stages for o in _outputs_of(root, s)]
                out_paths.update(
                    out.fs_path for s in stages for out in s.outs if out.protocol == "local"
                )
            else:
                out_paths.update(os.path.join(root, o.path) for o in found)
            outputs += found
        dirs[:] = [
            d
            for d in dirs
            if os.path.join(folder, d) not in out_paths
            and not ignored(os.path.join(folder, d) + os.sep)
        ]
    return Tracked(outputs), own


_OUT_KEYS = {"dvc.yaml": ("outs", "metrics", "plots"), ".dvc": ("outs",)}
_TEMPLATING = ("${", "foreach", "matrix")


def _quick_outputs(path: str, rel: str) -> list[Output] | None:
    """The outputs a plain DVC file declares, or None: DVC must read it."""
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):  # no libyaml: DVC reads every file
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if any(word in text for word in _TEMPLATING):
            return None
        data = yaml.load(text, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # DVC says what is wrong with it
    if not isinstance(data, dict):
        return None
    folder = posixpath.dirname(rel)
    if rel.endswith(".dvc"):
        entries: Any = {None: data}
        keys = _OUT_KEYS[".dvc"]
    else:
        if "vars" in data:
            return None
        entries = data.get("stages") or {}
        keys = _OUT_KEYS["dvc.yaml"]
    if not isinstance(entries, dict):
        return None
    found = []
    for name, stage in entries.items():
        if not isinstance(stage, dict) or (name is not None and not isinstance(name, str)):
            return None
        wdir = stage.get("wdir", ".")
        if not isinstance(wdir, str):
            return None
        where = address(rel, name)
        for key in keys:
            for entry in stage.get(key) or []:
                out = _quick_output(
                    entry, key, posixpath.join(folder, wdir), where, single=name is None
                )
                if out is None:
                    return None
                if out is not _OUTSIDE:
                    found.append(out)
    return found


_OUTSIDE = Output("", False, "")  # declared, but not a path in this project


def _quick_output(entry: Any, key: str, wdir: str, where: str, *, single: bool) -> Output | None:
    if single:  # a .dvc file's `- path: x` with its hashes and options
        if not isinstance(entry, dict):
            return None
        raw, options = entry.get("path"), entry
    elif isinstance(entry, str):  # `- x`
        raw, options = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:  # `- x: {cache: false}`
        ((raw, options),) = entry.items()
        options = {} if options is None else options
    else:
        return None
    if not isinstance(raw, str) or not raw or not isinstance(options, dict):
        return None
    cache = options.get("cache", True)
    if not isinstance(cache, bool):
        return None
    if "://" in raw or raw.startswith("/") or os.path.isabs(raw):
        return _OUTSIDE  # remote:// and URLs, absolute paths: not in the repository
    path = posixpath.normpath(posixpath.join(wdir, raw))
    if path in (".", "..") or path.startswith("../"):
        return _OUTSIDE  # DVC's is_in_repo: strictly inside the project
    return Output(path, cache, where, key == "metrics", key == "plots")


def build(root: Path, dvcfile: str | None, ordered: list[Any], tracked: Tracked) -> PipelineGraph:
    """The pipeline of ``dvcfile``: its ``ordered`` stages, what they read and write.

    Its own stages run; with ``upstream``, so do the stages of other
    pipelines they depend on (``ordered`` holds them). What any other stage
    or ``.dvc`` file produces is an input: pulled, never rebuilt
    (``dvc repro --force`` alone would retrain the model just to compute
    its metrics).
    """
    run_addresses = {address(_relative(root, s.path), getattr(s, "name", None)) for s in ordered}
    inputs: list[str] = []
    depends_on: list[str] = []
    producers: list[str] = []
    for stage in ordered:
        depends_on += _stage_files(_relative(root, stage.path))
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue  # imports from URLs and other repositories
            path = _relative(root, dep.fs_path)
            if path.startswith("../"):
                continue
            depends_on.append(path)
            for p, out in tracked.matches(path):
                if out.stage in run_addresses:
                    continue
                depends_on += _stage_files(_file_of(out.stage))
                if not out.stage.endswith(".dvc"):
                    producers.append(out.stage)
                if out.cached:
                    inputs.append(p)
    return PipelineGraph(
        dvcfile=dvcfile,
        stages=[address(_relative(root, s.path), getattr(s, "name", None)) for s in ordered],
        inputs=collapse(inputs),
        outputs=[o for o in tracked.by_path.values() if o.stage in run_addresses],
        lockfiles=sorted(
            {
                posixpath.join(posixpath.dirname(_relative(root, s.path)), "dvc.lock")
                for s in ordered
                if _relative(root, s.path).endswith(("dvc.yaml", "dvc.yml"))
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


@dataclass(frozen=True)
class RemoteCheck:
    """The default DVC remote as a run found it at its start."""

    problem: str | None = None  # what is wrong with it, or None
    name: str | None = None
    path: str | None = None  # a local remote's folder
    identity: tuple[int, int] | None = None  # its (device, inode)

    def moved(self) -> str | None:
        """What happened to a local remote's folder since, or None.

        A network share unmounted mid-run leaves an empty mountpoint (another
        device); a folder removed and re-created is another inode. `dvc push`
        would quietly fill either, and the team's data would be on this disk.
        """
        if self.path is None or self.identity is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return f"DVC remote '{self.name}' ({self.path}) is gone since the run started"
        if (st.st_dev, st.st_ino) != self.identity:
            return (
                f"DVC remote '{self.name}' ({self.path}) is not the folder it was when the run"
                " started (unmounted, or removed and re-created)"
            )
        return None


def remote_check(root: Path) -> RemoteCheck:
    """The project's default DVC remote: what is wrong with it, and for a
    local one, which folder it is (see `RemoteCheck.moved`).

    A local remote must be an existing folder: a network share that is not
    mounted would otherwise silently receive the team's data in an empty
    local folder. Other remotes must answer (their folder may not exist yet).
    """
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException

    try:
        with opened(root) as repo:
            try:
                remote = repo.cloud.get_remote()
            except NoRemoteError:
                return RemoteCheck(
                    "no DVC remote is configured: add one with `dvc remote add -d NAME URL`"
                )
            except ImportError as exc:  # DVC's plugin for this kind of remote
                return RemoteCheck(_missing_plugin(repo.config) or dvc_error_reason(exc))
            name, fs, path = remote.name, remote.fs, remote.path
            if fs.protocol == "local":
                if os.path.exists(path) and not os.path.isdir(path):
                    return RemoteCheck(f"DVC remote '{name}' ({path}) is not a folder")
                if not os.path.isdir(path):
                    # Not made for it: an unmounted share must not quietly get the data.
                    return RemoteCheck(
                        f"DVC remote '{name}' ({path}) does not exist: mount it, or if the"
                        f" path is right and new, create it (mkdir -p {shlex.quote(path)})"
                    )
                st = os.stat(path)
                return RemoteCheck(None, name, path, (st.st_dev, st.st_ino))
            try:
                fs.exists(path)
            except Exception as exc:  # noqa: BLE001 - every backend has its own errors
                return RemoteCheck(f"DVC remote '{name}' is not reachable: {dvc_error_reason(exc)}")
    except DvcException as exc:
        return RemoteCheck(f"DVC cannot read its remote configuration: {dvc_error_reason(exc)}")
    return RemoteCheck(None, name)


def missing_plugin(root: Path) -> str | None:
    """What to install for the project's default DVC remote, when DVC's plugin
    for its kind (``dvc-s3`` for ``s3://``, ``dvc-ssh``...) is not installed:
    known from its configuration alone, before anything runs (else the first
    pull or push fails halfway through the run)."""
    from dvc.exceptions import DvcException

    try:
        with opened(root) as repo:
            return _missing_plugin(repo.config)
    except DvcException:
        return None  # a configuration DVC cannot read: the remote check says so


def _missing_plugin(config: Any) -> str | None:
    import importlib.util

    from dvc_objects.fs import known_implementations

    name = config.get("core", {}).get("remote")
    url = str(config.get("remote", {}).get(name, {}).get("url", "")) if name else ""
    scheme = url.partition("://")[0] if "://" in url else ""
    entry = known_implementations.get(scheme, {})
    module = str(entry.get("class", "")).partition(".")[0]
    if "err" not in entry or not module or importlib.util.find_spec(module) is not None:
        return None
    package = module.replace("_", "-")
    return (
        f"DVC remote '{name}' is a {scheme}:// remote, and DVC's {package} plugin for it"
        f" is not installed here: `pip install {package}`"
    )


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


def not_in_place(root: Path, tracked: Tracked, targets: list[str]) -> list[str]:
    """Which of ``targets`` (outputs, or paths in them) DVC does not find in the
    workspace and the cache as their DVC file records them: what a ``dvc pull``
    of them would change. Any doubt counts as not in place."""
    owners = {t: tracked.owner(t) for t in targets}
    try:
        with opened(root) as repo:
            stages = _collected(repo, root, sorted({o.stage for o in owners.values() if o}))
            found = []
            for target, owner in owners.items():
                stage = stages.get(owner.stage) if owner else None
                out = None
                if owner and stage:
                    out = next(
                        (o for o in stage.outs if _relative(root, o.fs_path) == owner.path), None
                    )
                if out is None or not out.use_cache or out.status():
                    found.append(target)
            return found
    except Exception:  # noqa: BLE001 - whatever DVC cannot tell (an unreadable file): pulled
        return list(targets)


def any_changed(root: Path, addresses: list[str]) -> bool:
    """Whether ``dvc repro`` would run any of the stages at ``addresses``: DVC's
    own ``Stage.changed`` (command, dependencies, outputs, missing ones
    included), or an always-changed stage. Asked in order, up to the first:
    a pipeline that will run is not checked stage by stage twice."""
    from dvc.exceptions import DvcException

    try:
        with opened(root) as repo:
            stages = _collected(repo, root, addresses)
            for addr in addresses:
                st = stages.get(addr)
                if st is None or st.always_changed or st.changed():
                    return True
            return False
    except DvcException as exc:
        raise DvcInvokeError(
            f"DVC cannot read the project: {dvc_error_reason(exc)}", step="repro"
        ) from None
    except OSError:  # an unreadable file: `dvc repro` says what it is
        return True


def _collected(
    repo: Any, root: Path, addresses: list[str], by_file: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The stages at ``addresses`` by address, collected one file at a time (a
    file a read collected since the last command is not collected again),
    kept in ``by_file`` (default: the session's)."""
    by_file = _files_read(root) if by_file is None else by_file
    found = {}
    for addr in addresses:
        file = _file_of(addr)
        if file not in by_file:
            target = os.path.join(os.fspath(root), file)
            by_file[file] = {
                address(file, getattr(st, "name", None)): st for st in repo.stage.collect(target)
            }
        if addr in by_file[file]:
            found[addr] = by_file[file][addr]
    return found


def stale(root: Path, addresses: list[str], *, outputs_here: bool = False) -> list[str]:
    """Which of the stages at ``addresses`` DVC does not find up to date, each
    with why: its command, a dependency or an output differs from its lock
    entry. Data missing from the workspace is fine (it is in the cache, or
    the remote check says it is not). A lock file published with a
    stale stage would make every fresh clone run it again."""
    from dvc.exceptions import DvcException

    found = []
    try:
        with opened(root) as repo:
            # One collect per file: DVC collects each target on its own, and
            # a file of 2,000 stages asked for stage by stage takes minutes.
            stages = _collected(repo, root, addresses)
            for addr in addresses:
                stage = stages.get(addr)
                why = _why_stale(stage, outputs_here) if stage is not None else None
                if why:
                    found.append(f"{addr} ({why})")
    except DvcException as exc:
        raise DvcInvokeError(
            f"DVC cannot read the project: {dvc_error_reason(exc)}", step="commit"
        ) from None
    return found


def _why_stale(stage: Any, outputs_here: bool = False) -> str | None:
    if stage.changed_stage():
        return "its command or definition changed"
    # A dependency missing here (an upstream stage's data that this run only
    # read through the cache, or never pulled) is the lock's word against nothing.
    if not stage.always_changed and stage.changed_deps(allow_missing=True):
        return "a dependency changed"
    if stage.changed_outs(allow_missing=not outputs_here):
        return "an output changed or is missing"
    return None
