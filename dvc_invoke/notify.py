"""Tell the team how pipeline runs went.

Every run reports ``started`` and its end (``succeeded``, ``failed``,
``cancelled``) to each configured notifier. With none configured, the
report goes to the console. A notifier never fails a run.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

from invoke import Collection, task

from . import console
from .errors import exits
from .report import RunReport


class Notifier(Protocol):
    name: str

    def report(self, report: RunReport) -> None: ...

    def send(self, text: str) -> None: ...


class ConsoleNotifier:
    """Prints reports and messages where the run's output goes."""

    name = "console"

    def report(self, report: RunReport) -> None:
        if report.status == "started":
            return console.step(report.pipeline, "started", f"{report.command} on {report.host}")
        console.result(report.status == "succeeded", report.headline())
        for line in report.details():
            console.info(line)

    def send(self, text: str) -> None:
        console.info(text)


def notifiers(c: Any) -> list[Notifier]:
    """The notifiers configured for context ``c``."""
    return [ConsoleNotifier()]


def deliver(c: Any, report: RunReport) -> None:
    """Hand ``report`` to every notifier. A failing notifier is a warning, never an error."""
    for notifier in notifiers(c):
        try:
            notifier.report(report)
        except Exception as exc:  # noqa: BLE001 - a notification must never fail the run
            console.warn(f"{notifier.name} notification failed: {type(exc).__name__}: {exc}")


@task(default=True, help={"message": "The text to send to the team."})
@exits
def send(c, message):
    """Send a message to the team through the configured notifiers."""
    for notifier in notifiers(c):
        notifier.send(message)


@task
@exits
def test(c):
    """Send a test message, to check the notification set-up."""
    send(c, f"dvc-invoke test message from {socket.gethostname()}")


ns = Collection(send, test)
