"""Run records and logs, on disk, under ``.dvc/tmp/dvc-invoke/`` (DVC's own .gitignore covers it).

Every run, in the foreground or detached, has a record (``<id>.json``: the
`RunReport` with its pid, log path and Slack message) and a log
(``<id>.log``). Writes are atomic and under a lock (``fcntl``), the listing is
kept in a small cache, and old runs are pruned as ``dvc_invoke.keep`` says.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_invoke import tasknames
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs.record import ENDED, RunReport

if TYPE_CHECKING:
    from dvc_invoke.config.settings import Keep

# A detached run's process adopts its record within a second or two; until
# then the record belongs to the command that launched it.
ADOPTION_GRACE = 60.0
ENV_RUN = "DVC_INVOKE_RUN"
# Every process a run starts carries its id in this variable (inherited: dvc,
# the stage's command, git, hooks), so that what a lost run left running can
# be found and stopped, whatever process group or session it is in.
ENV_MARK = "DVC_INVOKE_RUN_ID"
HOST = socket.gethostname()


def new_id(pipeline: str) -> str:
    from dvc_invoke.config.pipelines import slug  # a stage address has a ':', a folder a '/'

    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(pipeline)}-{secrets.token_hex(2)}"


def process_identity(pid: int) -> float | None:
    """When process ``pid`` started, or None when there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def elsewhere(report: RunReport) -> bool:
    """Whether ``report``'s run runs on another host (a workspace on a shared disk)."""
    return bool(report.host) and report.host != HOST


def holds(report: RunReport) -> bool:
    """Whether ``report``'s run may still hold its record and log: it has not
    ended, or its process (the same one, not a reuse of its pid) still runs
    on this host, writing its end (an upstream run's caller, a detached run's
    settle)."""
    if not report.ended:
        return True
    if report.pid is None or elsewhere(report):
        return False
    started = process_identity(report.pid)
    return started is not None and (
        report.process_started is None or abs(started - report.process_started) < 1.0
    )


def _report(data: dict[str, Any]) -> RunReport | None:
    try:
        return RunReport.from_dict(data)
    except (TypeError, ValueError):
        return None  # damaged: not a run to show


class Store:
    """The run records of one project."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / ".dvc" / "tmp" / "dvc-invoke"
        self._memo: dict[str, tuple[list[int], list[Any]]] | None = None
        self._folder: int | None = None  # the folder's mtime the memo was made at

    def record_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.json"

    def log_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.log"

    @contextlib.contextmanager
    def _writable(self) -> Iterator[None]:
        """An unwritable run folder (read-only, replaced by a file, a full disk) is one line."""
        try:
            yield
        except OSError as exc:
            where = os.path.relpath(self.dir, self.root)
            full = exc.errno == errno.ENOSPC
            raise DvcInvokeError(
                f"cannot write run records in {where}: {exc.strerror or exc}"
                f" ({'free some space on its disk' if full else 'make it a writable folder'})",
                step="guards",
            ) from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise the check-and-claim of the workspace between processes."""
        import fcntl

        with self._writable():
            self.dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.dir / "lock", "a")  # noqa: SIM115 - held across the yield
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # Kept free for the records beside them: a full disk (a stage that filled it)
    # still takes the record of how the run ended.
    ROOM = 64 * 1024

    def save(self, report: RunReport) -> None:
        """Write ``report``'s record whole or not at all (a temporary file, renamed
        over it); on a full disk, in the room kept for it (`make_room`)."""
        assert report.id
        with self._writable():
            self.dir.mkdir(parents=True, exist_ok=True)
            data = json.dumps(report.to_dict(), indent=2, sort_keys=True).encode()
            try:
                self._write(self.record_path(report.id), data)
            except OSError as exc:
                if exc.errno != errno.ENOSPC or not self._free_room():
                    raise
                self._write(self.record_path(report.id), data)

    def keep(self, report: RunReport) -> bool:
        """`save` during a run: a record that cannot be written is a warning, never
        the run's end (the run's own failure stays its line)."""
        try:
            self.save(report)
        except DvcInvokeError as exc:
            from dvc_invoke import console

            console.warn(f"run {report.id}'s record was not updated: {exc.reason}")
            return False
        return True

    @staticmethod
    def _write(path: Path, data: bytes, *, sync: bool = True) -> None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def make_room(self) -> None:
        """Keep `ROOM` bytes for the records (call under `lock`): a file of them,
        given up by the first record that finds the disk full."""
        room = self.dir / "room"
        if room.is_file() and room.stat().st_size >= self.ROOM:
            return
        with self._writable():
            self._write(room, os.urandom(self.ROOM))  # not zeros: a compressing disk keeps no room

    def _free_room(self) -> bool:
        try:
            (self.dir / "room").unlink()
        except OSError:
            return False
        return True

    def load(self, run_id: str | None) -> RunReport:
        if not run_id or "/" in run_id or not self.record_path(run_id).is_file():
            known = ", ".join(r.id for r in self.newest(5) if r.id) or "none"
            raise DvcInvokeError(f"no run '{run_id}' (latest runs: {known})")
        path = self.record_path(run_id)
        try:
            return RunReport.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise DvcInvokeError(f"run {run_id}'s record is damaged: {exc}") from None

    def all(self) -> list[RunReport]:
        """Every run, newest first."""
        return list(self.each())

    def each(self, pipeline: str | None = None, *, rescan: bool = True) -> Iterator[RunReport]:
        """The runs (of ``pipeline``, if given), newest first, each read as it is reached.
        Without ``rescan``, the runs this store found last (`lost`, say), read anew."""
        for name, summary in self._summaries(rescan):
            if pipeline is not None and summary[1] != pipeline:
                continue
            report = self._read(name)
            if report is not None:
                yield report

    def newest(
        self, limit: int = 0, pipeline: str | None = None, *, rescan: bool = True
    ) -> list[RunReport]:
        """The newest ``limit`` runs (0: all), of ``pipeline`` if given, newest first."""
        return list(itertools.islice(self.each(pipeline, rescan=rescan), limit or None))

    def running(self) -> list[RunReport]:
        """The runs that have not ended (running, requeued, or lost unseen), newest first."""
        found = [name for name, summary in self._summaries() if summary[0] not in ENDED]
        return [r for r in map(self._read, found) if r is not None]

    def _read(self, name: str) -> RunReport | None:
        try:
            data = json.loads((self.dir / name).read_bytes())
        except (OSError, ValueError):
            return None  # a record being replaced, or damaged: not a run to show
        return _report(data) if isinstance(data, dict) else None

    # What each record says of its run (status, pipeline, start), by its file's
    # (mtime, size, inode): kept in memory, and in a cache file for the next
    # command, so that with thousands of records `inv repro.status` reads one
    # small file and the few records it shows. Every record is written by a
    # rename into the folder (`_write`), which changes the folder's mtime: while
    # that is the one the cache saw, no record changed since; else the records
    # are listed, and those whose file changed or that have not ended read anew.
    CACHE = "cache/records.json"

    def _summaries(self, rescan: bool = True) -> list[tuple[str, list[Any]]]:
        """Each record's file name and [status, pipeline, started_at], newest first."""
        known = self._memo if self._memo is not None and not rescan else self._scan()
        rows = [(name, row[1]) for name, row in known.items()]
        return sorted(rows, key=lambda r: r[1][2], reverse=True)

    def _scan(self) -> dict[str, tuple[list[int], list[Any]]]:
        try:
            folder = os.stat(self.dir).st_mtime_ns
        except OSError:
            return {}  # no runs yet
        if self._memo is None:
            self._folder, self._memo = self._read_cache()
        if self._folder == folder:
            return self._memo
        try:
            entries = list(os.scandir(self.dir))
        except OSError:
            return {}
        known, fresh = self._memo, {}
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue  # replaced meanwhile
            key = [st.st_mtime_ns, st.st_size, st.st_ino]
            hit = known.get(entry.name)
            if hit is not None and hit[0] == key and hit[1][0] in ENDED:
                fresh[entry.name] = hit
                continue
            try:
                data = json.loads(Path(entry.path).read_bytes())
            except (OSError, ValueError):
                continue  # a record being replaced, or damaged: not a run to show
            if isinstance(data, dict):
                started = data.get("started_at")
                started = float(started) if isinstance(started, (int, float)) else 0.0
                fresh[entry.name] = (key, [data.get("status"), data.get("pipeline"), started])
        # NOTE: a folder changed less than 2 s ago may change again within its
        # filesystem's mtime granularity, unseen: it is listed again next time.
        seen = folder if time.time_ns() - folder > 2_000_000_000 else None
        if seen != self._folder or fresh != known:
            self._write_cache(seen, fresh)
        self._memo, self._folder = fresh, seen
        return fresh

    def _read_cache(self) -> tuple[int | None, dict[str, tuple[list[int], list[Any]]]]:
        try:
            cached = json.loads((self.dir / self.CACHE).read_bytes())
            records = {name: (key, row) for name, (key, row) in cached["records"].items()}
            if not all(isinstance(row, list) and len(row) == 3 for _, row in records.values()):
                return None, {}
            folder = cached["folder"]
            return (folder if isinstance(folder, int) else None), records
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, {}  # none yet, or damaged: the records are read

    def _write_cache(self, folder: int | None, records: dict[str, Any]) -> None:
        data = json.dumps({"folder": folder, "records": records}, separators=(",", ":"))
        path = self.dir / self.CACHE
        with contextlib.suppress(OSError):  # a cache: the records stand without it
            path.parent.mkdir(exist_ok=True)
            self._write(path, data.encode(), sync=False)

    def prune(self, keep: Keep, *, dry: bool = False) -> list[str]:
        """Remove the records, logs and plot folders of ended runs beyond the
        newest ``keep.runs`` or older than ``keep.days``; never of a run whose
        process still runs (`holds`). Returns what was (``dry``: would be)
        removed, relative to the project, oldest run first."""
        if not self.dir.is_dir() or (keep.runs is None and keep.days is None):
            return []
        cutoff = time.time() - keep.days * 86400 if keep.days is not None else None
        removed: list[str] = []
        with self.lock():
            doomed = []
            for i, (name, (status, _, started)) in enumerate(self._summaries()):
                beyond = keep.runs is not None and i >= keep.runs
                if not (beyond or (cutoff is not None and started < cutoff)):
                    continue
                report = self._read(name) if status in ENDED else None
                if report is None or not report.id or holds(report):
                    continue  # a run that may still write it, or not a record of ours
                ended = report.ended_at or report.started_at
                if beyond or (cutoff is not None and ended < cutoff):
                    doomed.append(report)
            for report in reversed(doomed):
                assert report.id
                removed += self._remove(report.id, report.log, dry=dry)
            if doomed and not dry:
                self._scan()  # the cache, without them
        return removed

    def _remove(self, run_id: str, log: str | None, *, dry: bool) -> list[str]:
        """A run's log, plot folder and record (last: a prune cut short is done again);
        a SLURM sweep's task logs and the clones its failed experiments left."""
        paths = [self.log_path(run_id), self.dir / "plots" / run_id, self.record_path(run_id)]
        if log and Path(log).resolve().parent == self.dir.resolve():
            paths[0] = Path(log)
        paths[2:2] = [*sorted(self.dir.glob(f"{run_id}.exp-*.log")), self.dir / "sweeps" / run_id]
        gone = []
        for path in paths:
            if not os.path.lexists(path):
                continue
            if not dry:
                try:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                except OSError:
                    continue
            gone.append(os.path.relpath(path, self.root))
        return gone

    def latest(self, run_id: str | None = None) -> RunReport:
        if run_id:
            return self.load(run_id)
        reports = self.newest(1)
        if not reports:
            raise DvcInvokeError("no runs yet in this project")
        return reports[0]

    def register(self, report: RunReport) -> None:
        """Record ``report`` as a new run (call under `lock`): its id and log are
        given, room is made for it, and a reservation of the workspace ends."""
        report.id = report.id or new_id(report.pipeline)
        report.log = report.log or str(self.log_path(report.id))
        self.make_room()
        self.save(report)
        self.unreserve()

    # A host's checkout, moved for a run that has yet to claim it (a start on a GPU host):
    # another start is refused there meanwhile, for at most this long.
    RESERVED_FOR = 120.0

    def reserve(self) -> None:
        """Mark the workspace as taken by a run about to start (call under `lock`)."""
        with self._writable():
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "reserved").write_text(f"{time.time()}\n")

    def reserved(self) -> float | None:
        """Seconds since a start reserved the workspace, while it counts."""
        try:
            age = time.time() - float((self.dir / "reserved").read_text().strip())
        except (OSError, ValueError):
            return None
        return age if 0 <= age < self.RESERVED_FOR else None

    def unreserve(self) -> None:
        (self.dir / "reserved").unlink(missing_ok=True)

    def set_job(self, report: RunReport, job: str | None) -> RunReport:
        """Record the SLURM job of a submitted run; the job may have adopted it already."""
        with self.lock():
            current = self.load(report.id)
            current.job = job
            self.save(current)
        return current

    def forget(self, report: RunReport) -> None:
        """Drop the record of a run that was refused before it started."""
        if report.id:
            self.record_path(report.id).unlink(missing_ok=True)

    def adopt(self, run_id: str, pipeline: str, *, pgid: int | None) -> RunReport:
        """Take over a record prepared by ``--detach``, in the detached process
        (``pgid``: the process group that is the run's to kill, if any)."""
        with self.lock():
            report = self.load(run_id)
            if report.pipeline != pipeline or report.ended:
                raise DvcInvokeError(
                    f"run {run_id} is not a pending run of {pipeline}", step="guards"
                )
            if report.job and os.environ.get("SLURM_JOB_ID") == report.job:
                # SLURM started the job again after a requeue: the run starts again.
                report.restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
                if report.status == "requeued":
                    report.status, report.step, report.ended_at = "started", "pull", None
                    report.reason = report.resume = None
                if report.restarts:
                    _drop_torn_rwlock(self.root)
            report.pid, report.pgid = os.getpid(), pgid
            report.process_started = process_identity(report.pid)
            report.host = HOST  # a SLURM job runs on a node of the cluster
            self.save(report)
        return report


def _drop_torn_rwlock(root: Path) -> None:
    """Before a restarted job runs DVC: SLURM's SIGTERM reaches dvc itself, which
    may die rewriting its ``.dvc/tmp/rwlock`` (in place, not atomically), and an
    empty or torn one stops every later ``dvc repro``. The first attempt's
    processes are all gone (SLURM restarts a job only then) and the run holds
    the workspace: a file that is not JSON holds nobody's lock."""
    path = root / ".dvc" / "tmp" / "rwlock"
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        if path.is_file():
            from dvc_invoke import console

            path.unlink()
            console.warn("the first attempt left DVC's .dvc/tmp/rwlock torn: removed")


def read_tail(path: str | None, limit: int = 20000) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - limit))
        return handle.read().decode("utf-8", "replace")


def ended_or_cancelled(store: Store, report: RunReport, how: str = "") -> tuple[RunReport, bool]:
    """The stopped run as it recorded itself (True), or, if it wrote no end, cancelled here."""
    report = store.load(report.id)
    if report.ended:
        return report, True
    report.end(
        "cancelled",
        reason=f"cancelled with {tasknames.command('repro.cancel')}{how}",
        resume=report.command,
        log_tail=read_tail(report.log),
    )
    return report, False
