"""Who hears of a run: the `Notifier` protocol, the console's notifier, and the chain.

A run's chain is the console, then Slack as the environment configures it,
then the notifiers a project adds with `register`; `announce` tells it a run
starts, `deliver` how it ended.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from dvc_invoke import console
from dvc_invoke.config import project
from dvc_invoke.config.project import find_root
from dvc_invoke.config.settings import settings
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs.record import RunReport


class Notifier(Protocol):
    """Who hears of a run. The console and Slack implement it; so can a notifier
    of your own (email, a chat of another kind), appended to the chain.

    ``remote`` notifiers are told of a start first: one that refuses it for good
    (a revoked token) stops the run before it starts, and only then do the
    local ones (the console) say it started. Every method handles its own
    delivery failures (a warning, never an exception): a run never fails
    because a message did not arrive.
    """

    name: str
    remote: bool

    def start(self, report: RunReport) -> str | None:
        """Announce the run's start; return why it was refused for good, else None."""
        ...

    def report(self, report: RunReport) -> None:
        """Tell the run's outcome (the thread of its start, where there is one)."""
        ...

    def send(self, text: str) -> bool:
        """Post a message of the user's; whether it arrived."""
        ...

    def check(self) -> str:
        """Check the set-up (``inv notify.test``): what was checked, or raise DvcInvokeError."""
        ...


class ConsoleNotifier:
    """Prints reports and messages where the run's output goes."""

    name = "console"
    remote = False

    def __init__(self, ends_with_reason: bool = False):
        # The run's own command ends with one line saying why it failed and how
        # to resume: the report then leaves both to it, so each is said once.
        self.ends_with_reason = ends_with_reason

    def start(self, report: RunReport) -> str | None:
        console.step(report.pipeline, "started", f"{report.command} on {report.host}")
        return None

    def report(self, report: RunReport) -> None:
        if report.status == "started":
            self.start(report)
            return
        ok = report.status == "succeeded"
        brief = self.ends_with_reason and not ok
        console.result(ok, report.headline(reason=not brief))
        for line in report.details():
            if not (brief and line == f"resume with: {report.resume}"):
                console.info(line)

    def send(self, text: str) -> bool:
        console.info(text)
        return True

    def check(self) -> str:
        return "the console prints every report"


def _root() -> Path | None:
    try:
        return find_root()
    except DvcInvokeError:
        return None


# Notifiers of the project's own, added by its tasks.py with `register`.
_REGISTERED: list[Callable[[Any], Notifier]] = []


def register(factory: Callable[[Any], Notifier]) -> None:
    """Add a notifier of your own to every run's chain, after the console and Slack.

    ``factory(c)`` makes it from the run's invoke context (its config); call
    this in ``tasks.py``, which every run loads, and so does the settling of a
    run whose process died (``python -m dvc_invoke settle``).
    """
    if factory not in _REGISTERED:
        _REGISTERED.append(factory)


def notifiers(
    c: Any,
    root: Path | None = None,
    *,
    slack: Mapping[str, str] | None = None,
    ends_with_reason: bool = False,
) -> list[Notifier]:
    """The notifiers of this project: the console, then Slack as configured.

    Loads the project's ``.env`` first, and refuses a malformed Slack set-up
    (a token without a channel, a URL that is not http(s)) with one line, so
    that a run never starts only to be heard of by nobody. With
    ``ends_with_reason``, the console leaves a failure's reason and resume to
    the command's last line.
    """
    project.load(root if root is not None else _root())
    from dvc_invoke.adapters.slack.notifiers import WebApiNotifier, WebhookNotifier
    from dvc_invoke.adapters.slack.settings import SlackSettings

    s = SlackSettings.from_env(options=settings(c).slack)
    overrides = dict(slack or {})  # the pipeline's channel and texts
    channel = overrides.pop("channel", None)
    chain: list[Notifier] = [ConsoleNotifier(ends_with_reason)]
    if s.token:
        chain.append(WebApiNotifier(s, console.warn, channel=channel, texts=overrides))
    if s.webhook_url:
        chain.append(WebhookNotifier(s, console.warn, texts=overrides))
    chain.extend(factory(c) for factory in _REGISTERED)
    return chain


def announce(chain: list[Notifier], report: RunReport) -> list[str]:
    """Report the run's start; return what refused it for good (Slack's word)."""
    refusals = []
    for notifier in chain:
        if notifier.remote and (refused := notifier.start(report)):
            refusals.append(f"{notifier.name}: {refused}")
    if not refusals:
        for notifier in chain:
            if not notifier.remote:
                notifier.start(report)
    return refusals


def deliver(chain: list[Notifier], report: RunReport) -> None:
    """Hand ``report`` to every notifier; each handles its own failures."""
    for notifier in chain:
        notifier.report(report)
