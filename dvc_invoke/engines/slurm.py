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
import time

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
    inner = run_then_settle(ws, report.id)
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
