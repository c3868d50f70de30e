"""The run lifecycle: records and logs, launching, stopping, and lost runs.

Records and logs live under ``.dvc/tmp/dvc-invoke/`` (DVC's own .gitignore
covers it). A run is launched in the foreground or detached (`launch`),
stopped as Ctrl-C would (`stop`), and found lost when its process is gone
(`Store.lost`, `settle`), with what it left running stopped (`stop_leftovers`).

Every run, in the foreground or detached, has a record (``<id>.json``: the
`RunReport` with its pid, log path and Slack message) and a log
(``<id>.log``). A record whose process is gone without an end is *lost*:
it is marked so, its lock on the workspace is taken over, and the team is
told, once. One run holds a workspace at a time, as two ``dvc repro`` in
one workspace collide.

``python -m dvc_invoke settle ROOT ID`` runs after a detached run's
process, whatever ended it: the ``nohup make ... || make send_failure``
of the Makefile this replaces.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_invoke import tasknames
from dvc_invoke.adapters.shell import quote_all
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs.record import ENDED, RunReport

if TYPE_CHECKING:
    from dvc_invoke.adapters.shell import Workspace
    from dvc_invoke.config.settings import Keep
    from dvc_invoke.flow.notifiers import Notifier

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


def alive(report: RunReport) -> bool:
    """Whether the process recorded for ``report`` is still the one running it.

    A SLURM job is judged by SLURM, from any host. Otherwise only the run's
    own host can tell: a run of another host sharing this workspace counts
    as alive until it ends or is marked lost there.
    """
    if report.ended:
        return False
    if report.job:
        if not shutil.which("scontrol"):
            return True  # no SLURM here to ask: only a host of the cluster can tell
        state = slurm_state(report.job)[0]
        # SLURM not answering (its controller restarting) says nothing of the job.
        return state in SLURM_LIVE or state == SLURM_UNANSWERED
    if elsewhere(report):
        return True
    if report.pid is None:
        return time.time() - report.started_at < ADOPTION_GRACE
    started = process_identity(report.pid)
    if started is None:
        return False
    # A pid can be reused after the run's process died (a reboot, say).
    return report.process_started is None or abs(started - report.process_started) < 1.0


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
        """A run's log, plot folder and record (last: a prune cut short is done again)."""
        paths = [self.log_path(run_id), self.dir / "plots" / run_id, self.record_path(run_id)]
        if log and Path(log).resolve().parent == self.dir.resolve():
            paths[0] = Path(log)
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

    def lost(self) -> list[RunReport]:
        """Mark the runs whose process is gone as lost; return them (to be notified)."""
        found = []
        with self.lock():
            for report in self.running():
                if not alive(report):
                    mark_lost(report, self.root)
                    self.save(report)
                    found.append(report)
        return found

    def _refuse_if_held(self) -> list[RunReport]:
        """Under the lock: refuse while a run is alive; mark dead ones lost and return them."""
        found = []
        logs, cancel = tasknames.command("repro.logs"), tasknames.command("repro.cancel")
        for other in self.running():
            if _this_process(other):
                continue  # this very process: a run whose upstream runs first
            if not alive(other):  # one look: for a SLURM run, a question to SLURM
                mark_lost(other, self.root)
                self.save(other)
                found.append(other)
                continue
            if other.job:
                raise DvcInvokeError(
                    f"run {other.id} ({other.pipeline}) holds this workspace as SLURM job"
                    f" {other.job}: follow it with `{logs} --run {other.id} --follow`,"
                    f" or stop it with `{cancel} --run {other.id}`",
                    step="guards",
                )
            if elsewhere(other):
                raise DvcInvokeError(
                    f"run {other.id} ({other.pipeline}) of host {other.host} holds this"
                    f" workspace: follow or cancel it there (`{cancel} --run {other.id}`),"
                    f" or, if {other.host} is gone for good,"
                    f" `{cancel} --run {other.id} --host-gone`",
                    step="guards",
                )
            raise DvcInvokeError(
                f"run {other.id} ({other.pipeline}) is still running in this workspace:"
                f" follow it with `{logs} --run {other.id} --follow`,"
                f" or stop it with `{cancel} --run {other.id}`",
                step="guards",
            )
        return found

    def free(self) -> list[RunReport]:
        """Check that no run holds the workspace (for `inv publish`); return runs found lost."""
        with self.lock():
            return self._refuse_if_held()

    def claim(self, report: RunReport) -> list[RunReport]:
        """Record ``report`` as the run holding the workspace.

        Refused while another run is alive; runs whose process died are
        marked lost and returned, so the caller can tell the team. A
        reservation (`reserve`) is the claiming run's own: it ends here.
        """
        with self.lock():
            found = self._refuse_if_held()
            report.id = report.id or new_id(report.pipeline)
            report.log = report.log or str(self.log_path(report.id))
            self.make_room()
            self.save(report)
            self.unreserve()
        return found

    # A host's checkout, moved for a run that has yet to claim it (`hosts`):
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

    def adopt(self, run_id: str, pipeline: str) -> RunReport:
        """Take over a record prepared by ``--detach``, in the detached process."""
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
            report.pid = os.getpid()
            # The group is the run's to kill when `setsid` made it a session
            # of its own; without setsid it is the launcher's.
            report.pgid = os.getpgrp() if os.getsid(0) == os.getpgrp() else None
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


def stop(store: Store, report: RunReport, *, timeout: float) -> tuple[RunReport, bool]:
    """Stop a run of this host and everything it started, as Ctrl-C would.

    Its process gets SIGTERM and passes SIGINT on to dvc and the stage's
    command, so DVC stops cleanly (locks released, the workspace as after
    an interrupted repro) and the run records itself cancelled. Only after
    ``timeout`` seconds is its process group killed, its leftovers stopped
    and its end (cancelled) written here. Returns the run as it ended, and
    whether it recorded that end itself.
    """
    if report.job:
        return _stop_job(store, report, timeout=timeout)
    deadline = time.time() + ADOPTION_GRACE
    while report.pid is None and time.time() < deadline:  # still starting
        time.sleep(0.2)
        report = store.load(report.id)
    pid = report.pid
    if pid is not None and alive(report):
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline:
            report = store.load(report.id)
            if report.ended:
                return report, True
            time.sleep(0.2)
        if alive(report):  # not another process that took the pid meanwhile
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if report.pgid and report.pgid != os.getpgrp():
                    os.killpg(report.pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
    stop_leftovers(report)  # what it started in other process groups
    for nested in store.running():  # upstream runs it ran in its own process
        if nested.pid == pid and nested.id != report.id:
            stop_leftovers(nested)
    return _ended_or_cancelled(store, report)


def _ended_or_cancelled(store: Store, report: RunReport, how: str = "") -> tuple[RunReport, bool]:
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


def _this_process(report: RunReport) -> bool:
    """Whether ``report`` is a run of this very process (not one whose pid it reuses)."""
    if report.pid != os.getpid() or elsewhere(report):
        return False
    started = process_identity(report.pid)
    return report.process_started is None or (
        started is not None and abs(started - report.process_started) < 1.0
    )


def mark_lost(report: RunReport, root: Path | None = None) -> None:
    """``report``'s run is lost; with ``root`` (its workspace, on this host), its
    commit and push as git holds them now, and the command that finishes it."""
    report.status = "lost"
    if report.job and not report.reason:
        state, why = slurm_state(report.job)
        said = f"{state} ({why})" if state and why and why != "None" else state or "gone"
        said = "unknown: SLURM did not answer" if state == SLURM_UNANSWERED else said
        said = f"{said}, a node failure," if state == "NODE_FAIL" else said
        report.reason = f"SLURM ended job {report.job} as {said} without a result"
    report.reason = report.reason or "the run's process died without a result"
    report.ended_at = time.time()
    report.resume = report.resume or report.command
    if root is not None and report.step in PUBLISHING and not elsewhere(report):
        _published_as_git_holds(Path(root), report)


# The steps of publishing: a run lost there may have committed, or pushed.
PUBLISHING = ("publish", "commit", "dvc push", "git push")


def _published_as_git_holds(root: Path, report: RunReport) -> None:
    """A run lost while publishing: whether it committed (its branch moved on from
    where the run started) and pushed (the upstream holds that commit, as the
    last push or fetch left it), and the resume that finishes it: ``inv publish``
    after a commit the upstream lacks. What it left running is stopped first, so
    that nothing commits or pushes after this look."""
    from invoke.context import Context

    stop_leftovers(report)

    def git(args: str) -> Any:
        cmd = f"git -C {shlex.quote(str(root))} {args}"
        return Context().run(cmd, hide=True, warn=True, in_stream=False)

    before = report.commit_before
    head = git("rev-parse -q --verify HEAD").stdout.strip()
    branch = git("symbolic-ref -q --short HEAD").stdout.strip()
    if not before or not head or head == before or branch != report.branch:
        return
    if not git(f"merge-base --is-ancestor {shlex.quote(before)} {shlex.quote(head)}").ok:
        return  # not the run's commit: the branch was rewritten since
    report.committed, report.commit_after = True, head
    report.git_pushed = bool(git(f"merge-base --is-ancestor {shlex.quote(head)} '@{{u}}'").ok)
    if report.git_pushed:
        report.reason = f"{report.reason}, after it published (committed, pushed to git)"
        report.resume = None
    else:
        report.reason = f"{report.reason}, after its commit, which git has not pushed"
        report.resume = f"{tasknames.command('publish')} --pipeline {shlex.quote(report.pipeline)}"


def read_tail(path: str | None, limit: int = 20000) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - limit))
        return handle.read().decode("utf-8", "replace")


def settle_lost(reports: list[RunReport], chain: list[Notifier]) -> None:
    """Stop what each lost run left running, then tell the team."""
    from dvc_invoke.flow import notifiers

    for report in reports:
        stop_leftovers(report)
        report.log_tail = read_tail(report.log)
        notifiers.deliver(chain, report)


@contextlib.contextmanager
def marked(report: RunReport) -> Iterator[None]:
    """Mark every process started in this block as ``report``'s (see `ENV_MARK`)."""
    before = os.environ.get(ENV_MARK)
    os.environ[ENV_MARK] = report.id or ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_MARK, None)
        else:
            os.environ[ENV_MARK] = before


def leftovers(report: RunReport) -> list[Any]:
    """The processes of this host that ``report``'s run started and that still run."""
    import psutil

    if not report.id or elsewhere(report):
        return []
    me = psutil.Process()
    spare = {me.pid, me.ppid()}
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in spare:
            continue
        try:
            if proc.environ().get(ENV_MARK) == report.id:
                found.append(proc)
        except (psutil.Error, OSError):
            continue  # gone, or another user's: not ours
    return found


def stop_leftovers(report: RunReport, timeout: float = 10.0) -> None:
    """Stop what a lost run left running (dvc, the stage's command, git, a hook),
    in any process group, so that nothing goes on changing the workspace or
    holding DVC's lock for a run nobody will publish: SIGTERM, then SIGKILL."""
    import psutil

    procs = leftovers(report)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs(procs, timeout=timeout)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def tell_lost(c: Any, ws: Workspace, lost: list[RunReport]) -> None:
    """Stop what each run found dead left running, and tell the team, each
    with its own pipeline's Slack set-up."""
    from dvc_invoke import console
    from dvc_invoke.flow import notifiers

    for report in lost:
        then = f"; then run: {report.resume}" if report.resume else ""
        console.warn(f"run {report.id} ({report.pipeline}) was lost: {report.reason}{then}")
        settle_lost([report], notifiers.notifiers(c, ws.root, slack=report.slack))
        Store(ws.root).save(report)


def relaunch_argv() -> list[str]:
    """The command line of this process, to run again in the background."""
    program = sys.argv[0]
    if os.path.basename(program) in ("inv", "invoke") or program.endswith("__main__.py"):
        return [sys.executable, "-m", "invoke", *sys.argv[1:]]
    return [program, *sys.argv[1:]]  # a program of its own, built on invoke


def _run_then_settle(ws: Workspace, run_id: str) -> str:
    """The shell line a launched run executes: this command line again (it adopts
    the record), then ``python -m dvc_invoke settle``, however the first ended."""
    settle = [sys.executable, "-m", "dvc_invoke", "settle", str(ws.root), run_id]
    return f"{quote_all(relaunch_argv())}; {quote_all(settle)}"


def launch(ws: Workspace, report: RunReport) -> None:
    """Start the run in a new session that survives the terminal and the ssh session.

    invoke's ``disown=True`` only stops waiting; the command detaches itself:
    ``setsid`` (a session of its own, away from the terminal's hangup),
    ``nohup``, output to the run's log and nothing on stdin. After the run's
    process ends, however it ends, ``python -m dvc_invoke settle`` reports the
    run as lost if it left no result.
    """
    assert report.id and report.log
    inner = _run_then_settle(ws, report.id)
    setsid = "setsid " if shutil.which("setsid") else ""
    cmd = (
        f"cd {shlex.quote(os.getcwd())} && {ENV_RUN}={shlex.quote(report.id)}"
        f" {setsid}nohup sh -c {shlex.quote(inner)}"
        f" > {shlex.quote(report.log)} 2>&1 < /dev/null"
    )
    ws.c.run(cmd, disown=True, hide=True, in_stream=False)


# -- SLURM: the same flow, in a batch job ---------------------------------------

# Job states in which the job still runs, or will (squeue's long names).
SLURM_LIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}


def submit(ws: Workspace, report: RunReport, options: dict[str, str]) -> str | None:
    """``sbatch`` the run: the same ``inv`` command line runs in the job, which
    adopts the record prepared here, output to the run's log; the job's name
    is the run's id. Returns SLURM's job id (None under ``--dry``)."""
    assert report.id and report.log
    inner = _run_then_settle(ws, report.id)
    flags = _sbatch_flags(options)
    cmd = (
        f"sbatch --parsable --job-name={shlex.quote(report.id)}"
        f" --output={shlex.quote(report.log)} --chdir={shlex.quote(os.getcwd())}"
        f" --export=ALL,{ENV_RUN}={shlex.quote(report.id)}{flags} --wrap {shlex.quote(inner)}"
    )
    try:
        res = ws.act(cmd, step="guards", capture=True)
    except DvcInvokeError as exc:
        said = [
            ln.split("error:", 1)[1].strip()
            for ln in (exc.log or "").splitlines()
            if "error:" in ln
        ]
        raise DvcInvokeError(
            f"SLURM refused the job: {said[0] if said else exc.reason}", step="guards"
        ) from None
    job = None if ws.dry else (str(res.stdout).strip().split(";")[0] or None)
    _submit_settle(ws, report, job or "JOB_ID", options)
    return job


def _sbatch_flags(options: dict[str, str]) -> str:
    """The pipeline's sbatch options as long options; an empty value is a flag."""
    return "".join(
        f" --{k.replace('_', '-')}" + (f"={shlex.quote(v)}" if v else "")
        for k, v in options.items()
    )


# sbatch options the settle job shares with the run's: where it may run, on whose account.
_SETTLE_SHARES = ("partition", "account", "qos", "clusters", "reservation")


def _submit_settle(ws: Workspace, report: RunReport, job: str, options: dict[str, str]) -> None:
    """A small job SLURM starts once the run's job ended, however it ended
    (``afterany``): a job SLURM killed (time limit, node failure, the OOM
    killer, ``scancel -s KILL``) ran no ``settle`` of its own, so this one
    marks the run lost with SLURM's word and tells the team, at once. After a
    run that ended well it finds the run's end and does nothing."""
    assert report.id and report.log
    settle = [sys.executable, "-m", "dvc_invoke", "settle", str(ws.root), report.id]
    flags = _sbatch_flags({k: v for k, v in options.items() if k in _SETTLE_SHARES})
    cmd = (
        f"sbatch --parsable --job-name={shlex.quote('settle-' + report.id)}"
        f" --dependency=afterany:{shlex.quote(job)} --kill-on-invalid-dep=no"
        f" --output={shlex.quote(report.log)} --open-mode=append"
        f" --chdir={shlex.quote(os.getcwd())} --time=00:10:00 --ntasks=1{flags}"
        f" --wrap {shlex.quote(quote_all(settle))}"
    )
    try:
        ws.act(cmd, step="guards", capture=True)
    except DvcInvokeError as exc:
        from dvc_invoke import console

        console.warn(
            f"the run's settle job was not submitted ({exc.reason}): if SLURM kills job"
            f" {job}, the next `{tasknames.command('repro.status')}` tells the team"
        )


# What `slurm_state` says when SLURM could not be asked (not one of SLURM's states).
SLURM_UNANSWERED = "UNANSWERED"


def slurm_job(job: str) -> dict[str, str] | None:
    """What ``scontrol show job`` says of ``job`` (``JobState``, ``Reason``,
    ``Restarts``, ``StdOut``, ...); None once SLURM no longer knows the job
    (``MinJobAge`` after its end); ``{"JobState": SLURM_UNANSWERED, "Reason":
    why}`` when the controller cannot be reached."""
    from invoke.context import Context

    res = Context().run(
        f"scontrol show job -o {shlex.quote(job)}", hide=True, warn=True, in_stream=False
    )
    if res.failed:
        said = (res.stderr or "").strip()
        if "Invalid job id" in said:
            return None
        why = said.splitlines()[-1] if said else f"exit {res.exited}"
        return {"JobState": SLURM_UNANSWERED, "Reason": why}
    return dict(re.findall(r"(\w+)=(\S*)", res.stdout))


def slurm_state(job: str) -> tuple[str | None, str | None]:
    """SLURM's state of ``job`` (PENDING, RUNNING, TIMEOUT, ...) and its reason;
    (None, None) once SLURM no longer knows the job; (`SLURM_UNANSWERED`, why)
    when the controller cannot be reached."""
    fields = slurm_job(job)
    if fields is None:
        return None, None
    return fields.get("JobState"), fields.get("Reason")


# What slurmstepd writes to the job's output before it signals the batch step:
# "*** JOB 42 ON node-1 CANCELLED AT 2026-...T18:20:25 DUE TO JOB REQUEUE ***".
_STEPD_WHY = re.compile(r"\*\*\* JOB (\d+) ON \S+ CANCELLED AT \S+ DUE TO ([A-Z][A-Z ]*[A-Z])")


def slurm_interruption(job: str) -> tuple[str, str]:
    """Why SLURM sent SIGTERM to this process, the batch step of ``job``:
    ``("requeued" | "lost" | "cancelled", what to record)``.

    Measured (SLURM 22.05) at the SIGTERM: ``scontrol requeue``, and a node
    set down with a requeueable job on it, have counted the restart already
    (``Restarts`` above this process's ``SLURM_RESTART_COUNT``); a time limit
    says ``Reason=TimeLimit``; a node failure without requeue ``NODE_FAIL``;
    ``scancel`` (even ``-s KILL``) ``COMPLETING`` or ``CANCELLED``. slurmstepd
    has written its "DUE TO ..." line to the job's output just before.
    """
    fields = slurm_job(job) or {}
    state, reason = fields.get("JobState"), fields.get("Reason")
    due = None
    with contextlib.suppress(OSError):
        found = _STEPD_WHY.findall(read_tail(fields.get("StdOut"), 4000) or "")
        due = next((why.lower() for j, why in reversed(found) if j == job), None)
    said = reason if reason and reason != "None" else None
    here = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    if int(fields.get("Restarts") or 0) > here:
        why = due or said or "requeue"
        return "requeued", f"SLURM requeued job {job} ({why}): the run starts again with it"
    if reason == "TimeLimit":
        return "lost", f"SLURM ended job {job} at its time limit"
    if state == "NODE_FAIL" or due == "node failure":
        return "lost", f"SLURM ended job {job}: node failure" + (f" ({said})" if said else "")
    return "cancelled", f"SLURM ended job {job} (scancel, or a preemption)"


def _stop_job(store: Store, report: RunReport, *, timeout: float) -> tuple[RunReport, bool]:
    """SIGINT to every process of the job, as Ctrl-C would; ``scancel`` after ``timeout``."""
    from invoke.context import Context

    c, job = Context(), shlex.quote(report.job or "")
    c.run(f"scancel --signal=INT --full {job}", hide=True, warn=True, in_stream=False)
    deadline = time.time() + timeout
    while time.time() < deadline:
        report = store.load(report.id)
        if report.ended:
            return report, True
        if slurm_state(report.job or "")[0] not in SLURM_LIVE:
            break
        time.sleep(0.5)
    c.run(f"scancel {job}", hide=True, warn=True, in_stream=False)
    return _ended_or_cancelled(store, report, f" (SLURM job {report.job})")


def settle(root: Path, run_id: str) -> int:
    """After a detached run's process: if it left no end, it is lost, and the team is told."""
    from dvc_invoke.flow import notifiers

    store = Store(root)
    with store.lock():
        report = store.load(run_id)
        if report.ended:
            return 0
        if report.job and os.environ.get("SLURM_JOB_ID") != report.job and alive(report):
            return 0  # the settle job, while the run's job runs again after a requeue
        if report.status == "requeued" and alive(report):
            return 0  # the requeued job's own shell: SLURM starts the job again
        mark_lost(report, root)
        store.save(report)
    chain = notifiers.notifiers(_project_context(root), root, slack=report.slack)
    settle_lost([report], chain)
    store.save(report)
    return 1


def _project_context(root: Path) -> Any:
    """An invoke context as ``inv`` in ``root`` would make it: the project's
    config files and ``tasks.py`` (its configuration, the notifiers it registers).
    A ``tasks.py`` that no longer loads still leaves the defaults to tell the team."""
    from invoke.config import Config
    from invoke.context import Context
    from invoke.loader import FilesystemLoader

    config = Config()
    with contextlib.suppress(Exception):
        # Where `inv` finds tasks.py (the DVC root, or a folder above it), its config is too.
        _, found_in = FilesystemLoader(start=str(root), config=config).load()
        config.set_project_location(found_in)
        ns = tasknames.loaded_collection()
        if ns is not None:
            config.load_collection(ns.configuration())
    config.load_project()
    config.load_shell_env()  # last, as invoke's Program does
    return Context(config=config)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "settle":
        print("usage: python -m dvc_invoke settle ROOT RUN_ID", file=sys.stderr)
        return 2
    try:
        return settle(Path(args[1]), args[2])
    except DvcInvokeError as exc:
        print(exc.line(), file=sys.stderr)
        return 1
