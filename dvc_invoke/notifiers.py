"""The notifier chain of a run: the console, then Slack as configured.

The ``notify`` collection and the flow both build it with `notifiers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from . import console, environment
from .errors import DvcInvokeError
from .report import RunReport
from .settings import settings
from .workspace import find_root


class Notifier(Protocol):
    name: str

    def report(self, report: RunReport) -> None: ...

    def send(self, text: str) -> bool: ...


class ConsoleNotifier:
    """Prints reports and messages where the run's output goes."""

    name = "console"

    def report(self, report: RunReport) -> None:
        if report.status == "started":
            console.step(report.pipeline, "started", f"{report.command} on {report.host}")
            return
        console.result(report.status == "succeeded", report.headline())
        for line in report.details():
            console.info(line)

    def send(self, text: str) -> bool:
        console.info(text)
        return True


def _root() -> Path | None:
    try:
        return find_root()
    except DvcInvokeError:
        return None


def notifiers(
    c: Any, root: Path | None = None, *, slack: Mapping[str, str] | None = None
) -> list[Notifier]:
    """The notifiers of this project: the console, then Slack as configured.

    Loads the project's ``.env`` first, and refuses a malformed Slack set-up
    (a token without a channel, a URL that is not http(s)) with one line, so
    that a run never starts only to be heard of by nobody.
    """
    environment.load(root if root is not None else _root())
    from .slack import SlackSettings, WebApiNotifier, WebhookNotifier

    s = SlackSettings.from_env(options=settings(c).slack)
    overrides = dict(slack or {})  # the pipeline's channel and texts
    channel = overrides.pop("channel", None)
    chain: list[Notifier] = [ConsoleNotifier()]
    if s.token:
        chain.append(WebApiNotifier(s, console.warn, channel=channel, texts=overrides))
    if s.webhook_url:
        chain.append(WebhookNotifier(s, console.warn, texts=overrides))
    return chain


def announce(chain: list[Notifier], report: RunReport) -> list[str]:
    """Report the run's start; return what refused it for good (Slack's word)."""
    refusals = []
    for notifier in chain:
        if hasattr(notifier, "start"):
            refused = notifier.start(report)
            if refused:
                refusals.append(f"{notifier.name}: {refused}")
    if not refusals:
        for notifier in chain:
            if not hasattr(notifier, "start"):
                notifier.report(report)
    return refusals


def deliver(chain: list[Notifier], report: RunReport) -> None:
    """Hand ``report`` to every notifier; each handles its own failures."""
    for notifier in chain:
        notifier.report(report)
