"""Notifiers of a project's own, for its ``tasks.py``: the protocol a notifier follows
(`Notifier`), `register` to add one to every run's chain, and the chain itself.

    from dvc_invoke.notifiers import register

    register(Journal)  # made with the run's invoke context: Journal(c)

Every run hands its start and its end (and a run found lost) to the console, to
Slack as configured, then to each registered notifier; each handles its own
failures, so a message that did not arrive never fails a run.
"""

from __future__ import annotations

from dvc_invoke.flow.notifiers import (
    ConsoleNotifier,
    Notifier,
    announce,
    deliver,
    notifiers,
    register,
)

__all__ = ["ConsoleNotifier", "Notifier", "announce", "deliver", "notifiers", "register"]
