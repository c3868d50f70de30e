"""Tell the team how pipeline runs went: the console, and Slack when configured.

Every run reports ``started`` and its end (``succeeded``, ``failed``,
``cancelled``). Slack is set up in the environment or the project's
``.env``: ``SLACK_BOT_TOKEN`` + ``SLACK_CHANNEL`` for the Web API (one
message, updated with the result; a failure's log in its thread), or
``SLACK_WEBHOOK_URL`` for an incoming webhook (one message at the end).
A notification never fails a run: when Slack is down or refuses, the run
goes on and one warning says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.tasks import task

from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flags import Task

if TYPE_CHECKING:
    from invoke.context import Context


@task(klass=Task, default=True, help={"message": "The text to send to the team."})
def send(c: Context, message: str) -> None:
    """Send a message to the team: on Slack when configured, and to the console."""
    from dvc_invoke.flow.notifiers import notifiers

    if message in ("-h", "--help"):  # taken for the text by invoke's parser: never sent
        raise DvcInvokeError(
            "not sent: that is a request for help: `inv --help notify`", step="notify"
        )
    chain = notifiers(c)
    if not message or not message.strip():
        raise DvcInvokeError("the message is empty", step="notify")
    for notifier in chain:
        notifier.send(message)


@task(klass=Task)
def test(c: Context) -> None:
    """Check the Slack set-up: validate the token (auth.test) and post a test message."""
    from dvc_invoke import console
    from dvc_invoke.flow.notifiers import notifiers

    chain = notifiers(c)
    slack = [n for n in chain if n.remote]
    if not slack:
        raise DvcInvokeError(
            "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_CHANNEL, or"
            " SLACK_WEBHOOK_URL, in the environment or the project's .env (see .env.example)",
            step="notify",
        )
    for notifier in slack:
        console.result(True, notifier.check())


ns = Collection(send, test)
