"""The one fence around DVC's private API: the ``Repo`` a run reads through,
the stages of a DVC file, and DVC's command line run in this process.

What dvc-invoke relies on of DVC's internals is used here alone: ``Repo._reset``
(drop what a ``Repo`` read), ``Repo._lock_depth`` (within DVC's lock already),
``repo.stage.collect`` (a DVC file's stages, as ``dvc repro`` loads them) and
``dvc.cli.main`` (a ``dvc`` command, without a process of its own). The
module's tests pin each of them against the installed DVC. ``dvc`` is imported
on first use only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_invoke.adapters.dvc.model import by_address, file_of
from dvc_invoke.errors import DvcInvokeError, dvc_error_reason


@dataclass
class Session:
    """One DVC ``Repo`` for every read of a run (the graph, the remote, staleness,
    the metrics), instead of one each, and what was read through it."""

    repo: Any
    # The count of commands (`touched`) its Repo last dropped what it read at.
    reset_at: int | None = None
    # The stages a read collected, by DVC file, while no command ran since.
    collected_at: int | None = None
    collected: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Sessions:
    """The sessions open in this process, by the project's root, and how many
    commands ran that may have changed the project's files (`touched`): a
    session's ``Repo`` drops what it read only when one ran since."""

    def __init__(self) -> None:
        self.by_root: dict[str, Session] = {}
        self.generation = 0

    def files_read(self, root: Path) -> dict[str, dict[str, Any]]:
        """Where a session keeps the stages collected since the last command
        (outside a session: a new dictionary, kept by no one)."""
        open_ = self.by_root.get(os.fspath(root))
        if open_ is None:
            return {}
        if open_.collected_at != self.generation:
            open_.collected, open_.collected_at = {}, self.generation
        return open_.collected


_SESSIONS = _Sessions()


@contextlib.contextmanager
def session(root: Path) -> Iterator[None]:
    """Open the `Session` every read of ``root`` goes through until it closes.
    Nested sessions share the outer one."""
    key = os.fspath(root)
    if key in _SESSIONS.by_root:
        yield
        return
    from dvc.repo import Repo

    with reading("guards"):
        repo = Repo(key)
    _SESSIONS.by_root[key] = Session(repo)
    try:
        yield
    finally:
        _SESSIONS.by_root.pop(key, None)
        repo.close()


def touched() -> None:
    """A command ran that may have changed the project's files: read them again."""
    _SESSIONS.generation += 1


@contextlib.contextmanager
def opened(root: Path) -> Iterator[Any]:
    """The session's ``Repo``, or a ``Repo`` of its own outside a session, under
    DVC's lock (stage checks take its rwlock). What the session's ``Repo`` read
    is dropped, as DVC's commands drop it (``lock_repo``), when a command ran
    since (`touched`): reads with none in between share one parse of the DVC
    files."""
    key = os.fspath(root)
    open_ = _SESSIONS.by_root.get(key)
    if open_ is None:
        from dvc.repo import Repo, lock_repo

        with Repo(key) as repo, lock_repo(repo):
            yield repo
        return
    repo = open_.repo
    if repo._lock_depth > 0:  # within a read already, or a DVC call's own lock
        yield repo
        return
    with repo.lock:
        if open_.reset_at != _SESSIONS.generation:
            repo._reset()
            open_.reset_at = _SESSIONS.generation
        repo._lock_depth += 1
        try:
            yield repo
        finally:
            repo._lock_depth -= 1


@contextlib.contextmanager
def reading(step: str) -> Iterator[None]:
    """DVC failing to read the project, as the one line a user gets at ``step``."""
    from dvc.exceptions import DvcException

    try:
        yield
    except DvcException as exc:
        raise DvcInvokeError(
            f"DVC cannot read the project: {dvc_error_reason(exc)}", step=step
        ) from None


def collect(repo: Any, root: Path | str, dvcfile: str) -> dict[str, Any]:
    """The stages of ``dvcfile`` (relative to ``root``) by address, as
    ``dvc repro`` loads them (templating, ``foreach`` and ``matrix`` resolved)."""
    return by_address(dvcfile, repo.stage.collect(os.path.join(os.fspath(root), dvcfile)))


def remember(root: Path, dvcfile: str, stages: list[Any]) -> None:
    """Keep ``dvcfile``'s ``stages``, loaded by a read, for the session's next
    reads (until a command runs)."""
    _SESSIONS.files_read(root)[dvcfile] = by_address(dvcfile, stages)


def collected(
    repo: Any, root: Path, addresses: list[str], by_file: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The stages at ``addresses`` by address, collected one file at a time (a
    file a read collected since the last command is not collected again),
    kept in ``by_file`` (default: the session's)."""
    by_file = _SESSIONS.files_read(root) if by_file is None else by_file
    found = {}
    for addr in addresses:
        file = file_of(addr)
        if file not in by_file:
            by_file[file] = collect(repo, root, file)
        if addr in by_file[file]:
            found[addr] = by_file[file][addr]
    return found


def stage_lookup(repo: Any, root: Path) -> Callable[[str], Any]:
    """The stage at an address (``dvc.yaml:train``, ``data.csv.dvc``), each
    DVC file collected once; those the run read already are not read again."""
    by_file = _SESSIONS.files_read(root)  # the session's (shared), else this lookup's own

    def stage_at(addr: str) -> Any:
        return collected(repo, root, [addr], by_file).get(addr)

    return stage_at


def run_cli(args: list[str]) -> int:
    """``dvc ARGS`` by DVC's own command line, in this process: the code a
    ``dvc`` process would exit with."""
    from dvc.cli import main

    code: int = main(args)
    return code
