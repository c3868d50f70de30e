"""Watching and stopping runs, whichever engine runs them: the status of each, a
run's log followed until it ends, a run cancelled (or marked lost when its host
is gone for good)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from dvc_invoke import tasknames
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.project import find_root
from dvc_invoke.engines import alive, stop
from dvc_invoke.engines.slurm import SLURM_UNANSWERED, array_summary, slurm_state
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow import notifiers
from dvc_invoke.flow.holding import find_lost
from dvc_invoke.flow.lost import mark_lost, settle_lost, tell_lost
from dvc_invoke.runs.metrics import Change
from dvc_invoke.runs.record import RunReport, format_duration, short
from dvc_invoke.runs.store import HOST, Store, elsewhere

STATUS_COLUMNS = ["run", "pipeline", "status", "started", "duration", "detail"]


def store_of(c: Any) -> Store:
    """The workspace's run records, the runs found lost since marked so and told."""
    ws = Workspace(c)
    store = Store(ws.root)
    tell_lost(c, ws, find_lost(store))
    return store


def status_row(r: RunReport) -> list[str]:
    """``r`` as `STATUS_COLUMNS` show it."""
    state = "requeued" if r.status == "requeued" else "running" if not r.ended else r.status
    detail = _detail(r) + (f" (restart {r.restarts})" if r.restarts else "")
    started = time.strftime("%m-%d %H:%M", time.localtime(r.started_at))
    return [r.id or "", r.pipeline, state, started, format_duration(r.duration), detail]


def _detail(r: RunReport) -> str:
    if r.sweep is not None:
        from dvc_invoke.runs.sweep import summary

        what = "sweep: " + summary(r.experiments, r.sweep.get("best"))
        if r.ended and r.status != "succeeded":
            what += f" ({f'at {r.step}: ' if r.step else ''}{r.reason or ''})"
        if not r.ended and r.sweep.get("array"):
            return f"{what}, at {r.step}; {array_summary(str(r.sweep['array']))}"
        return what if r.ended else f"{what}, at {r.step}"
    if r.experiment:
        return f"experiment {r.experiment}: {short(r.commit_before)} → {short(r.commit_after)}"
    if r.status == "succeeded":
        detail = f"{short(r.commit_before)} → {short(r.commit_after)}"
        detail += " (published by hand)" if r.published_by else ""
        # The gated metrics first: the numbers the pipeline is judged by.
        numbers = sorted(
            (m for m in r.metrics if m.get("kind") == "metric"),
            key=lambda m: not m.get("gated"),
        )
        if numbers:
            detail += "  " + "; ".join(Change.from_dict(m).text() for m in numbers[:3])
            detail += f"; {len(numbers) - 3} more" if len(numbers) > 3 else ""
        return detail
    if r.ended:
        return f"at {r.step}: {r.reason or ''}".strip()
    if r.job:
        job_state, why = slurm_state(r.job)
        if job_state == SLURM_UNANSWERED:
            return f"at {r.step}: SLURM job {r.job}, but SLURM does not answer: {why}"
        waiting = f" ({why})" if job_state == "PENDING" and why and why != "None" else ""
        again = " requeued," if r.status == "requeued" else ""
        return f"at {r.step}: SLURM job {r.job}{again} {(job_state or 'gone').lower()}{waiting}"
    return f"at {r.step}" + (" (detached)" if r.detached else "")


def print_log(
    c: Any, store: Store, run: str | None, *, follow: bool, experiment: str | None = None
) -> None:
    """Run ``run``'s log (the latest run's) to stdout; with ``follow``, until the run
    ends. With ``experiment``: that experiment's of a sweep (DVC's log of it)."""
    report = store.latest(run)
    if experiment is not None:
        report = _experiment_log(report, experiment, wait=follow)
        while follow and report.log and not os.path.isfile(report.log):
            # A SLURM task not started yet: its log comes when it does (or never).
            if report.ended or not alive(report):
                break
            time.sleep(0.5)
            report = _experiment_log(store.load(report.id), experiment, wait=True)
    if not report.log or not os.path.isfile(report.log):
        raise DvcInvokeError(f"run {report.id} has no log")
    out = sys.stdout.buffer
    with open(report.log, "rb") as handle:
        while True:
            data = handle.read()
            if data:
                out.write(data)
                out.flush()
                continue
            if not follow:
                return
            report = store.load(report.id)
            if experiment is not None:  # until the experiment ends
                report = _experiment_log(report, experiment)
            if report.ended or not alive(report):
                out.write(handle.read())
                out.flush()
                if not report.ended:
                    tell_lost(c, Workspace(c), find_lost(store))
                return
            time.sleep(0.2)


def _experiment_log(report: RunReport, name: str, *, wait: bool = False) -> RunReport:
    """A stand-in record whose log is the sweep's experiment ``name``'s, and which
    ends with it (`print_log` follows it as a run)."""
    names = [e["name"] for e in report.experiments]
    found = next((e for e in report.experiments if e["name"] == name), None)
    if found is None:
        said = ", ".join(names) if names else "it is not a sweep"
        raise DvcInvokeError(f"run {report.id} has no experiment {name} ({said})")
    if not found.get("log"):
        raise DvcInvokeError(
            f"experiment {name} has no log yet ({found.get('state')}): DVC writes it when it starts"
        )
    array = report.sweep.get("array") if report.sweep else None
    if array and not wait and not os.path.exists(found["log"]):
        raise DvcInvokeError(
            f"experiment {name} has no log yet: SLURM writes it when its task starts"
            f" ({tasknames.command('repro.status')} says where the array is; --follow waits)"
        )
    stand_in = RunReport.from_dict(report.to_dict())
    stand_in.log = found["log"]
    if found.get("state") in ("success", "failed", "lost", "cancelled"):
        stand_in.status = "succeeded" if found["state"] == "success" else "failed"
    return stand_in


def cancel(c: Any, store: Store, run: str | None, *, timeout: float, host_gone: bool) -> str:
    """Stop run ``run`` (the one holding the workspace) as Ctrl-C would; with
    ``host_gone``, mark a run of a gone host lost instead. What happened, in a line."""
    report = store.load(run) if run else _holder(store)
    if report.ended:
        raise DvcInvokeError(f"run {report.id} is not running: it {report.status}")
    if elsewhere(report) and not report.job:
        if not host_gone:
            raise DvcInvokeError(
                f"run {report.id} runs on host {report.host}: cancel it there, or, if"
                f" {report.host} is gone for good,"
                f" `{tasknames.cancel(report.id or '', gone=True)}`",
            )
        with store.lock():
            mark_lost(report)
            report.reason = f"its host {report.host} is gone (marked lost from {HOST})"
            store.save(report)
        settle_lost([report], notifiers.notifiers(c, find_root(), slack=report.slack))
        store.save(report)
        return f"run {report.id} ({report.pipeline}) of {report.host} marked lost"
    report, recorded = stop(store, report, timeout=timeout)
    if not recorded:  # killed: its end is written, and told, from here
        notifiers.deliver(notifiers.notifiers(c, find_root(), slack=report.slack), report)
        store.save(report)
    return f"run {report.id} ({report.pipeline}) {report.status}"


def _holder(store: Store) -> RunReport:
    active = store.running()
    if not active:
        raise DvcInvokeError("no run is running in this workspace")
    return active[0]
