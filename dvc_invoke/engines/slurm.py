"""SLURM: a run as a batch job, watched and stopped through SLURM's own commands.

``sbatch`` runs the same ``inv`` line as a detached run, in the job; a small
settle job (``--dependency=afterany``) marks the run lost with SLURM's word
when SLURM killed it. ``scontrol`` says whether a job still runs and why it
ended, from any host of the cluster; ``scancel`` stops it as Ctrl-C would.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.engines.detached import run_then_settle, settle_argv
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import ENV_RUN, Store, ended_or_cancelled, read_tail

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
    if report.sweep is not None and report.sweep.get("grid"):
        return _submit_sweep(ws, report, options)
    inner = run_then_settle(ws, report.id)
    flags = _sbatch_flags(options)
    cmd = (
        f"sbatch --parsable --job-name={shlex.quote(report.id)}"
        f" --output={shlex.quote(report.log)} --chdir={shlex.quote(os.getcwd())}"
        f" --export=ALL,{ENV_RUN}={shlex.quote(report.id)}{flags} --wrap {shlex.quote(inner)}"
    )
    job = _sbatch(ws, cmd)
    _submit_settle(ws, report, job or "JOB_ID", options)
    return job


def _sbatch(ws: Workspace, cmd: str) -> str | None:
    """Run an ``sbatch --parsable`` line: SLURM's job id (None under ``--dry``);
    refused, one line with SLURM's reason."""
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
    return None if ws.dry else (str(res.stdout).strip().split(";")[0] or None)


def task_log(report: RunReport, index: int | str) -> str:
    """The log of a sweep's array task ``index`` (``%a``: SLURM's pattern for it)."""
    assert report.log
    base = report.log[: -len(".log")] if report.log.endswith(".log") else report.log
    return f"{base}.exp-{index}.log"


def sweep_task_argv(root: Path, run_id: str) -> list[str]:
    """``python -m dvc_invoke sweep-task ROOT ID``: one experiment of a sweep, in a
    SLURM array task (``SLURM_ARRAY_TASK_ID`` says which)."""
    return [sys.executable, "-m", "dvc_invoke", "sweep-task", str(root), run_id]


# The collector's time limit: it fetches, ranks and tells (a cluster may require one).
COLLECT_TIME = "00:20:00"


def _submit_sweep(ws: Workspace, report: RunReport, options: dict[str, str]) -> str | None:
    """A sweep as SLURM's own job array, task *i* running experiment *i* (the
    sweep's ``jobs`` at once: ``--array=0-(N-1)%K``), each with the pipeline's
    sbatch options; then the collector (``--dependency=afterany`` on the array):
    the same ``inv`` line, which adopts the record, gathers the experiments
    from the git remote and tells the team; and a settle job after the
    collector, as after a run's job. The array is held until its collector is
    accepted and the record holds its experiments: no task runs for a sweep
    nobody would collect. Returns the collector's job id (the run's job: alive
    until the sweep ended)."""
    assert report.id and report.log and report.sweep is not None
    sweep = report.sweep
    tasks, at_once = len(sweep["grid"]), int(sweep.get("jobs") or 1)
    here = shlex.quote(os.getcwd())
    array = _sbatch(
        ws,
        f"sbatch --parsable --hold --job-name={shlex.quote(report.id)}"
        f" --array=0-{tasks - 1}%{at_once} --output={shlex.quote(task_log(report, '%a'))}"
        f" --open-mode=append --chdir={here}{_sbatch_flags(options)}"
        f" --wrap {shlex.quote(quote_all(sweep_task_argv(ws.root, report.id)))}",
    )
    sweep["array"] = array or "ARRAY_ID"
    flags = _sbatch_flags({k: v for k, v in options.items() if k in _SETTLE_SHARES})
    try:
        collector = _sbatch(
            ws,
            f"sbatch --parsable --job-name={shlex.quote('collect-' + report.id)}"
            f" --dependency=afterany:{shlex.quote(sweep['array'])} --kill-on-invalid-dep=no"
            f" --output={shlex.quote(report.log)} --open-mode=append --chdir={here}"
            f" --export=ALL,{ENV_RUN}={shlex.quote(report.id)} --ntasks=1"
            f" --time={COLLECT_TIME}{flags}"
            f" --wrap {shlex.quote(run_then_settle(ws, report.id))}",
        )
    except DvcInvokeError as exc:
        if array:  # held: none of its tasks ran
            cancel_array(array)
            exc.reason += f" (the sweep's collector; its array {array}, held, is cancelled)"
        raise
    if array and collector:
        store = Store(ws.root)
        with store.lock():  # the experiments and their logs, before a task runs
            current = store.load(report.id)
            current.sweep = {**(current.sweep or {}), "array": array}
            planned = current.sweep.pop("planned", None) or []
            current.experiments = [{**e, "log": task_log(current, e["task"])} for e in planned]
            current.step = "run"
            store.save(current)
    _submit_settle(ws, report, collector or "JOB_ID", options)
    ws.act(f"scontrol release {shlex.quote(sweep['array'])}", step="guards")
    return collector


def sweep_resume(report: RunReport) -> str:
    """What gathers a SLURM sweep whose collector did not: the experiments its
    tasks shared (on the git remote), fetched by their commit, then the table
    (run again, the sweep's names would clash)."""
    sweep = report.sweep or {}
    words = ["dvc", "exp", "pull", sweep.get("git_remote") or "origin"]
    words += ["--rev", sweep["commit"]] if sweep.get("commit") else []
    return f"{quote_all(words)}; {tasknames.command('exp.show')} --all"


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
    settle = settle_argv(ws.root, report.id)
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


def stop(store: Store, report: RunReport, *, timeout: float) -> tuple[RunReport, bool]:
    """SIGINT to every process of the job, as Ctrl-C would; ``scancel`` after ``timeout``."""
    from invoke.context import Context

    if report.sweep is not None and report.sweep.get("array"):
        return _stop_sweep(store, report, timeout=timeout)
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
    return ended_or_cancelled(store, report, f" (SLURM job {report.job})")


def cancel_array(job: str) -> None:
    """``scancel`` of a sweep's array: pending tasks dropped, running ones ended."""
    from invoke.context import Context

    Context().run(f"scancel {shlex.quote(job)}", hide=True, warn=True, in_stream=False)


# Seconds a cancelled sweep's collector has, beyond SLURM starting it, to tell its end.
COLLECT_AFTER_CANCEL = 60.0


def _stop_sweep(store: Store, report: RunReport, *, timeout: float) -> tuple[RunReport, bool]:
    """One ``scancel`` of the sweep's array: its pending tasks never start, its
    running ones end as ``scancel`` ends a job. Its collector then runs, as
    after any end: the experiments that finished are gathered, the others
    marked cancelled, the sweep recorded cancelled and told. If it has not
    within ``timeout`` (and a minute), it is cancelled too, and the sweep here."""
    from invoke.context import Context

    assert report.sweep is not None
    c, array = Context(), str(report.sweep["array"])
    with store.lock():  # the collector's word for how the sweep ended
        current = store.load(report.id)
        current.sweep = {**(current.sweep or {}), "cancel": True}
        store.save(current)
    cancel_array(array)
    deadline = time.time() + timeout + COLLECT_AFTER_CANCEL
    while time.time() < deadline:
        report = store.load(report.id)
        if report.ended:
            return report, True
        if report.job and slurm_state(report.job)[0] not in SLURM_LIVE:
            break
        time.sleep(0.5)
    c.run(f"scancel {shlex.quote(report.job or '')}", hide=True, warn=True, in_stream=False)
    ended, itself = ended_or_cancelled(store, report, f" (SLURM array {array})")
    if not itself:  # its collector did not run: what finished is on the git remote
        ended.resume = sweep_resume(ended)
    return ended, itself


def lost_reason(job: str) -> str:
    """Why a run's job ended without a result, in SLURM's words."""
    state, why = slurm_state(job)
    said = f"{state} ({why})" if state and why and why != "None" else state or "gone"
    said = "unknown: SLURM did not answer" if state == SLURM_UNANSWERED else said
    said = f"{said}, a node failure," if state == "NODE_FAIL" else said
    return f"SLURM ended job {job} as {said} without a result"


def alive(report: RunReport) -> bool:
    """Whether ``report``'s job still runs, or will, as SLURM says from any host."""
    if not shutil.which("scontrol"):
        return True  # no SLURM here to ask: only a host of the cluster can tell
    state = slurm_state(report.job or "")[0]
    # SLURM not answering (its controller restarting) says nothing of the job.
    return state in SLURM_LIVE or state == SLURM_UNANSWERED


# SLURM's ends of an array task, as a sweep's table says them.
TASK_ENDS = {
    "CANCELLED": ("cancelled", "cancelled (scancel)"),
    "TIMEOUT": ("lost", "SLURM ended it at its time limit"),
    "NODE_FAIL": ("lost", "SLURM ended it: node failure"),
    "PREEMPTED": ("lost", "SLURM preempted it"),
    "OUT_OF_MEMORY": ("lost", "SLURM ended it: out of memory"),
    "BOOT_FAIL": ("lost", "SLURM could not start its node"),
    "DEADLINE": ("lost", "SLURM ended it at its deadline"),
}


def array_tasks(job: str) -> dict[int, dict[str, str]] | None:
    """What ``scontrol show job`` says of each task of array ``job``, by task
    index (``JobState``, ``Reason``, ``ExitCode``, ``StdOut``...); tasks not
    started yet share one entry in SLURM's answer (``ArrayTaskId=3-5%3``),
    here each its own. None when SLURM does not answer."""
    from invoke.context import Context

    res = Context().run(
        f"scontrol show job -o {shlex.quote(job)}", hide=True, warn=True, in_stream=False
    )
    if res.failed:
        return {} if "Invalid job id" in (res.stderr or "") else None
    found: dict[int, dict[str, str]] = {}
    for line in res.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        for index in _indices(fields.get("ArrayTaskId", "")):
            found[index] = fields
    return found


def _indices(said: str) -> list[int]:
    """``0-5%3``, ``1,3,7-9``: the task indices SLURM names."""
    found: list[int] = []
    for part in said.split("%", 1)[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit():
            found += range(int(first), int(last if last.isdigit() else first) + 1)
    return found


def array_summary(job: str) -> str:
    """``2 running, 3 pending (Resources), 1 completed``: a sweep's array as SLURM says it."""
    tasks = array_tasks(job)
    if tasks is None:
        return f"SLURM array {job}, but SLURM does not answer"
    if not tasks:
        return f"SLURM array {job} ended"
    counts: dict[str, int] = {}
    for fields in tasks.values():
        word = fields.get("JobState", "?").lower()
        why = fields.get("Reason")
        if word == "pending" and why and why != "None":
            word += f" ({why})"
        counts[word] = counts.get(word, 0) + 1
    return f"SLURM array {job}: " + ", ".join(f"{n} {w}" for w, n in counts.items())
