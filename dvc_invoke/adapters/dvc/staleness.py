"""Which stages must run again, and why: as DVC sees the workspace (`stale`,
`any_changed`), and as git holds the project (`stale_upstream`,
`missing_but_fresh`: the locks compared, before a pull brings the data).
``dvc`` is imported on first use only.
"""

from __future__ import annotations

import graphlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_invoke.adapters.dvc.model import (
    PipelineGraph,
    Tracked,
    Upstream,
    collapse,
    file_of,
    relative,
)
from dvc_invoke.adapters.dvc.session import collected, opened, reading, stage_lookup
from dvc_invoke.config.paths import overlaps

NEVER_RUN = "never run"


def stale(root: Path, addresses: list[str], *, outputs_here: bool = False) -> list[str]:
    """Which of the stages at ``addresses`` DVC does not find up to date, each
    with why: its command, a dependency or an output differs from its lock
    entry. Data missing from the workspace is fine (it is in the cache, or
    the remote check says it is not). A lock file published with a
    stale stage would make every fresh clone run it again."""
    found = []
    with reading("commit"), opened(root) as repo:
        # One collect per file: DVC collects each target on its own, and
        # a file of 2,000 stages asked for stage by stage takes minutes.
        stages = collected(repo, root, addresses)
        for addr in addresses:
            stage = stages.get(addr)
            why = _why_stale(stage, outputs_here) if stage is not None else None
            if why:
                found.append(f"{addr} ({why})")
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


def any_changed(root: Path, addresses: list[str]) -> bool:
    """Whether ``dvc repro`` would run any of the stages at ``addresses``: DVC's
    own ``Stage.changed`` (command, dependencies, outputs, missing ones
    included), or an always-changed stage. Asked in order, up to the first:
    a pipeline that will run is not checked stage by stage twice."""
    try:
        with reading("repro"), opened(root) as repo:
            stages = collected(repo, root, addresses)
            for addr in addresses:
                st = stages.get(addr)
                if st is None or st.always_changed or st.changed():
                    return True
            return False
    except OSError:  # an unreadable file: `dvc repro` says what it is
        return True


def not_in_place(root: Path, tracked: Tracked, targets: list[str]) -> list[str]:
    """Which of ``targets`` (outputs, or paths in them) DVC does not find in the
    workspace and the cache as their DVC file records them: what a ``dvc pull``
    of them would change. Any doubt counts as not in place."""
    owners = {t: tracked.owner(t) for t in targets}
    try:
        with opened(root) as repo:
            stages = collected(repo, root, sorted({o.stage for o in owners.values() if o}))
            found = []
            for target, owner in owners.items():
                stage = stages.get(owner.stage) if owner else None
                out = None
                if owner and stage:
                    out = next(
                        (o for o in stage.outs if relative(root, o.fs_path) == owner.path), None
                    )
                if out is None or not out.use_cache or out.status():
                    found.append(target)
            return found
    except Exception:  # noqa: BLE001 - whatever DVC cannot tell (an unreadable file): pulled
        return list(targets)


def stale_upstream(repo: Any, root: Path, g: PipelineGraph) -> list[Upstream]:
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
    walk = _Walk()
    stage_at = stage_lookup(repo, root)
    queue = list(g.upstream_stages)
    while queue:
        addr = queue.pop()
        if addr in walk.seen:
            continue
        walk.seen.add(addr)
        stage = stage_at(addr)
        if stage is not None:
            queue += walk.visit(root, g, addr, stage, stage_at)
    if not walk.stale:
        return []
    return walk.in_order()


@dataclass
class _Walk:
    """What `stale_upstream` found of the DVC files upstream of a pipeline."""

    stale: dict[str, list[str]] = field(default_factory=dict)  # file -> "stage NAME: why"
    never: dict[str, list[str]] = field(default_factory=dict)  # file -> its stages never run
    names: dict[str, list[str]] = field(default_factory=dict)  # file -> its stages read from
    needs: dict[str, set[str]] = field(default_factory=dict)  # file -> files it reads from
    seen: set[str] = field(default_factory=set)

    def visit(
        self, root: Path, g: PipelineGraph, addr: str, stage: Any, stage_at: Any
    ) -> list[str]:
        """Note the stage at ``addr`` and why it is stale; the stages it reads from."""
        file, name = file_of(addr), addr.rsplit(":", 1)[-1]
        self.needs.setdefault(file, set())
        self.names.setdefault(file, []).append(name)
        why = _stale_by_locks(root, stage, stage_at, g.tracked)
        if why == NEVER_RUN:
            self.never.setdefault(file, []).append(name)
        if why:
            self.stale.setdefault(file, []).append(f"stage {name}: {why}")
        producers = []
        for dep in stage.deps:
            if not getattr(dep, "is_in_repo", False):
                continue
            for _, out in g.tracked.matches(relative(root, dep.fs_path)):
                if out.stage.endswith(".dvc") or out.stage in g.stages:
                    continue  # data sources are not pipelines; the pipeline's own runs after
                if file_of(out.stage) != file:
                    self.needs[file].add(file_of(out.stage))
                producers.append(out.stage)
        return producers

    def in_order(self) -> list[Upstream]:
        """The files that must run, dependencies first: the stale ones, and
        those reading from one that must run."""
        try:
            order = list(graphlib.TopologicalSorter(self.needs).static_order())
        except graphlib.CycleError:
            order = sorted(self.needs)  # files that read from each other: DVC orders their stages
        affected: set[str] = set()
        for file in order:  # dependencies first
            if file in self.stale or self.needs.get(file, set()) & affected:
                affected.add(file)
        return [
            Upstream(
                f,
                tuple(self.stale.get(f, ())),
                tuple(self.names.get(f, ())),
                tuple(self.never.get(f, ())),
            )
            for f in order
            if f in affected
        ]


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
            path = relative(root, dep.fs_path)
            produced = tracked.matches(path)
            if not produced:  # a file git holds, or params: the workspace is git's
                if dep.status():
                    return f"{path} changed"
                continue
            for at, out in produced:
                producer = stage_at(out.stage)
                recorded = next(
                    (o for o in getattr(producer, "outs", []) if relative(root, o.fs_path) == at),
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


def missing_but_fresh(repo: Any, root: Path, ordered: list[Any], tracked: Tracked) -> list[str]:
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
    stage_at = stage_lookup(repo, root)
    stale: set[str] = set()
    restore: list[str] = []
    for stage in ordered:
        deps = {relative(root, d.fs_path) for d in stage.deps if getattr(d, "is_in_repo", False)}
        changed = any(overlaps(d, stale) for d in deps) or bool(
            _stale_by_locks(root, stage, stage_at, tracked, cannot_tell="unknown")
        )
        outs = [o for o in stage.outs if o.is_in_repo]
        if changed:
            stale |= {relative(root, o.fs_path) for o in outs}
            continue
        for out in outs:
            if not (out.use_cache and out.hash_info):
                continue
            if not os.path.lexists(out.fs_path) or _replaceable(out):
                restore.append(relative(root, out.fs_path))
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
