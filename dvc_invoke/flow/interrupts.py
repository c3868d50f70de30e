"""Ctrl-C and SIGTERM during a run: let the running command stop cleanly, then cancel.

A terminal's Ctrl-C reaches the whole foreground process group, dvc and the
stage's command included; ``inv repro.cancel`` sends SIGTERM to the run's
process, which passes SIGINT on to its children (or, to a DVC command run
in this process, raises the interrupt DVC catches). Either way dvc stops the
way it does on Ctrl-C (locks released, the workspace as after an
interrupted repro), and the run records ``cancelled`` instead of a failure
of whatever command was running. A second Ctrl-C stops at once.

A hangup (SIGHUP: the terminal closed, the ssh session dropped) is not a
stop: a run asked for nothing but to be watched there. While it runs,
SIGHUP is ignored, by the run and by every command it starts (an ignored
signal stays ignored across ``exec``: dvc, the stage's training), as
``nohup`` would; its console output stops (`console`) and its log, record
and Slack messages go on. To stop it: Ctrl-C, or ``inv repro.cancel``.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from dvc_invoke.adapters.dvc import inprocess
from dvc_invoke.engines.slurm import slurm_interruption
from dvc_invoke.errors import Cancelled, Lost, Requeued


class Interrupts:
    def __init__(self) -> None:
        self.received: str | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._handle)
            self._saved[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C
        self.received = signal.Signals(signum).name
        if signum == signal.SIGTERM:
            _interrupt_children()
        if inprocess.running():
            # DVC runs in this process (`inprocess`): it stops as the dvc command
            # does on Ctrl-C, catching the interrupt, cleaning up, exiting 252.
            raise KeyboardInterrupt

    def stopped(self, step: str, resume: str | None) -> Cancelled | None:
        """How the run stops after the signal it received, if it received one.

        SIGTERM to a SLURM job is SLURM's (`slurm_interruption` asks it why):
        a requeue is `Requeued`, a time limit or a node failure `Lost`,
        anything else (``scancel``, a preemption) `Cancelled`.
        """
        if not self.received:
            return None
        job = os.environ.get("SLURM_JOB_ID")
        if self.received == "SIGTERM" and job:
            how, reason = slurm_interruption(job)
            kind = {"requeued": Requeued, "lost": Lost}.get(how, Cancelled)
            return kind(reason, step=step, resume=resume)
        return Cancelled(f"interrupted ({self.received})", step=step, resume=resume)


def _interrupt_children() -> None:
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.send_signal(signal.SIGINT)
        except psutil.Error:
            pass
