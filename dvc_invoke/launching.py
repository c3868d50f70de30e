"""Detaching a run, in a session of its own that survives the terminal; telling of lost runs."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import Any

from . import console, notifiers, runs
from .report import RunReport
from .workspace import Workspace, quote_all


def tell_lost(c: Any, ws: Workspace, lost: list[RunReport]) -> None:
    """Tell the team about runs found dead, each with its own pipeline's Slack set-up."""
    for report in lost:
        console.warn(f"run {report.id} ({report.pipeline}) was lost: its process is gone")
        runs.settle_lost([report], notifiers.notifiers(c, ws.root, slack=report.slack))
        runs.Store(ws.root).save(report)


def relaunch_argv() -> list[str]:
    """The command line of this process, to run again in the background."""
    program = sys.argv[0]
    if os.path.basename(program) in ("inv", "invoke") or program.endswith("__main__.py"):
        return [sys.executable, "-m", "invoke", *sys.argv[1:]]
    return [program, *sys.argv[1:]]  # a program of its own, built on invoke


def launch(ws: Workspace, report: RunReport) -> None:
    """Start the run in a new session that survives the terminal and the ssh session.

    invoke's ``disown=True`` only stops waiting; the command detaches itself:
    ``setsid`` (a session of its own, away from the terminal's hangup),
    ``nohup``, output to the run's log and nothing on stdin. After the run's
    process ends, however it ends, ``python -m dvc_invoke settle`` reports the
    run as lost if it left no result.
    """
    assert report.id and report.log
    settle = [sys.executable, "-m", "dvc_invoke", "settle", str(ws.root), report.id]
    inner = f"{quote_all(relaunch_argv())}; {quote_all(settle)}"
    setsid = "setsid " if shutil.which("setsid") else ""
    cmd = (
        f"cd {shlex.quote(os.getcwd())} && {runs.ENV_RUN}={shlex.quote(report.id)}"
        f" {setsid}nohup sh -c {shlex.quote(inner)}"
        f" > {shlex.quote(report.log)} 2>&1 < /dev/null"
    )
    ws.c.run(cmd, disown=True, hide=True, in_stream=False)
