"""A run detached from the terminal: the same ``inv`` line again, in a session of its own.

The launched line is this process's command line (`relaunch_argv`), which
adopts the record prepared for it, then ``python -m dvc_invoke settle``,
however the first ended: the ``nohup make ... || make send_failure`` of the
Makefile this replaces. A SLURM job runs the same line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import ENV_RUN


def relaunch_argv() -> list[str]:
    """The command line of this process, to run again in the background (as a
    dry run shows it: what would run, without invoke's ``--dry``)."""
    program, args = sys.argv[0], [a for a in sys.argv[1:] if a != "--dry"]
    if os.path.basename(program) in ("inv", "invoke") or program.endswith("__main__.py"):
        return [sys.executable, "-m", "invoke", *args]
    return [program, *args]  # a program of its own, built on invoke


def settle_argv(root: Path, run_id: str) -> list[str]:
    """``python -m dvc_invoke settle ROOT ID``: after a run's process, whatever ended it."""
    return [sys.executable, "-m", "dvc_invoke", "settle", str(root), run_id]


def run_then_settle(ws: Workspace, run_id: str) -> str:
    """The shell line a launched run executes: this command line again (it adopts
    the record), then ``python -m dvc_invoke settle``, however the first ended."""
    return f"{quote_all(relaunch_argv())}; {quote_all(settle_argv(ws.root, run_id))}"


def launch(ws: Workspace, report: RunReport) -> None:
    """Start the run in a new session that survives the terminal and the ssh session.

    invoke's ``disown=True`` only stops waiting; the command detaches itself:
    ``setsid`` (a session of its own, away from the terminal's hangup),
    ``nohup``, output to the run's log and nothing on stdin. After the run's
    process ends, however it ends, ``python -m dvc_invoke settle`` reports the
    run as lost if it left no result.
    """
    assert report.id and report.log
    inner = run_then_settle(ws, report.id)
    setsid = "setsid " if shutil.which("setsid") else ""
    cmd = (
        f"cd {shlex.quote(os.getcwd())} && {ENV_RUN}={shlex.quote(report.id)}"
        f" {setsid}nohup sh -c {shlex.quote(inner)}"
        f" > {shlex.quote(report.log)} 2>&1 < /dev/null"
    )
    ws.c.run(cmd, disown=True, hide=True, in_stream=False)
