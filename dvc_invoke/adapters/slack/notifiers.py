"""The two Slack notifiers of a run's chain.

- `WebApiNotifier` (``SLACK_BOT_TOKEN`` + ``SLACK_CHANNEL``): posts when a
  run starts, turns that message into the result with ``chat.update``, and
  replies in its thread with the end of the log when the run failed.
- `WebhookNotifier` (``SLACK_WEBHOOK_URL``): one message when a run ends.

Neither fails the run: a delivery failure is one warning per reason, and one
that no later message will fix silences the notifier for the rest of the run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from dvc_invoke.adapters.slack.blocks import experiment_tails, fit, message, tail_blocks
from dvc_invoke.adapters.slack.client import web_client, webhook_client
from dvc_invoke.adapters.slack.failures import WebhookError, blocks_refused, describe
from dvc_invoke.adapters.slack.settings import SlackSettings
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs.record import RunReport


class _SlackNotifier:
    """What both Slack notifiers share: one client, secrets kept out, one warning per error."""

    name = "slack"
    remote = True

    def __init__(
        self, settings: SlackSettings, warn: Any, *, texts: Mapping[str, str] | None = None
    ):
        self.settings = settings
        self.warn = warn
        self.texts = dict(texts or {})  # the pipeline's text per status
        self.disabled = False  # after an error no later message will fix
        self.warned: set[str] = set()
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        raise NotImplementedError

    def _send(self, text: str) -> None:
        raise NotImplementedError

    def _with_blocks(self, call: Any, text: str, blocks: list[Any], **kw: Any) -> Any:
        """``call`` with the blocks; with the text alone if Slack will not take them.

        A message is never dropped for its form: the text says what happened.
        """
        try:
            return call(text=text, blocks=blocks, **kw)
        except Exception as exc:  # noqa: BLE001 - sorted out here
            if not blocks_refused(exc):
                raise
            reason, _ = describe(exc, self.settings.secrets)
            self.warn(f"Slack refused the message's blocks ({reason}); sent its text alone")
            return call(text=text, **kw)

    def send(self, text: str) -> bool:
        try:
            self._send(text)
            return True
        except Exception as exc:  # noqa: BLE001 - a notification never fails the caller
            self._fail(exc, "message")
            return False

    def _fail(self, exc: BaseException, what: str, *, needs: str | None = None) -> None:
        """One warning per reason; a permanent one disables what follows. ``needs``:
        the scope the call needs, named when Slack says one is missing."""
        reason, permanent = describe(exc, self.settings.secrets)
        if permanent:
            self.disabled = True
        if reason == "missing_scope" and needs:
            reason += f": the Slack app needs the {needs} scope"
        if reason not in self.warned:
            self.warned.add(reason)
            self.warn(f"Slack {what} failed ({reason}); the run goes on")


class WebApiNotifier(_SlackNotifier):
    posts_pictures = True  # the changed plots, as PNGs in the run's thread

    def __init__(
        self,
        settings: SlackSettings,
        warn: Any,
        *,
        channel: str | None = None,
        texts: Mapping[str, str] | None = None,
    ):
        super().__init__(settings, warn, texts=texts)
        self.channel = channel or settings.channel

    def _make_client(self) -> Any:
        return web_client(self.settings)

    def _send(self, text: str) -> None:
        self.client.chat_postMessage(channel=self.channel, text=text)

    def start(self, report: RunReport) -> str | None:
        """Post the run's first message; Slack's word when it refuses for good.

        The first message is the check that the run's outcome will be heard
        of: a rejected token or an unknown channel refuses the run (returned,
        not warned about); Slack being slow or down is only a warning.
        """
        text, blocks = message(report, self.texts.get("started"))
        try:
            resp = self._with_blocks(
                self.client.chat_postMessage, text, blocks, channel=self.channel
            )
        except Exception as exc:  # noqa: BLE001 - sorted out below
            reason, permanent = describe(exc, self.settings.secrets)
            if permanent:
                return reason
            self._fail(exc, "notification")
            return None
        report.messages[self.name] = {"channel": resp["channel"], "ts": resp["ts"]}
        return None

    def report(self, report: RunReport) -> None:
        if self.disabled:
            return
        posted = report.messages.get(self.name)
        if report.status == "started":
            if not posted:  # a detached run's first message was posted when it was launched
                refused = self.start(report)
                if refused:  # checked on purpose no earlier (--skip slack): a warning
                    self.disabled = True
                    self.warn(f"Slack notification failed ({refused}); the run goes on")
            if not (posted and report.restarts):  # a restart's message says it runs again
                return
        text, blocks = message(report, self.texts.get(report.status))
        try:
            if posted:
                # chat.update wants the channel id that postMessage returned, not a name.
                update = self.client.chat_update
                self._with_blocks(update, text, blocks, channel=posted["channel"], ts=posted["ts"])
            else:
                resp = self._with_blocks(
                    self.client.chat_postMessage, text, blocks, channel=self.channel
                )
                posted = report.messages[self.name] = {"channel": resp["channel"], "ts": resp["ts"]}
            # In its thread: a sweep's failed experiments, one reply each; a failure's log.
            replies = experiment_tails(report) if report.ended else []
            if report.status in ("failed", "cancelled", "lost") and report.log_tail:
                replies.append(tail_blocks(report))
            for reply_text, reply in replies:
                self._with_blocks(
                    self.client.chat_postMessage,
                    reply_text,
                    reply,
                    channel=posted["channel"],
                    thread_ts=posted["ts"],
                )
        except Exception as exc:  # noqa: BLE001 - a notification never fails the run
            self._fail(exc, "notification")
            return
        self._upload_plots(report, posted)

    def _upload_plots(self, report: RunReport, posted: Mapping[str, str]) -> None:
        """The run's changed plots, as PNGs in its thread (the app needs ``files:write``)."""
        drawn = [p for p in report.plots if p.get("png") and os.path.isfile(p["png"])]
        if report.status != "succeeded" or not drawn:
            return
        uploads = [
            {"file": p["png"], "filename": os.path.basename(p["png"]), "title": str(p["id"])}
            for p in drawn
        ]
        try:
            self.client.files_upload_v2(
                file_uploads=uploads,
                channel=posted["channel"],
                thread_ts=posted["ts"],
                initial_comment=fit(f"{report.pipeline}: {report.plots_changed()}", 3000),
            )
        except Exception as exc:  # noqa: BLE001 - a picture never fails the run
            self._fail(exc, "plot upload", needs="files:write")

    def check(self) -> str:
        """auth.test, then a test message: what works, or exactly what does not."""
        from slack_sdk.errors import SlackApiError

        try:
            auth = self.client.auth_test()
        except Exception as exc:  # noqa: BLE001
            reason, _ = describe(exc, self.settings.secrets)
            if isinstance(exc, SlackApiError):
                raise DvcInvokeError(f"Slack rejected SLACK_BOT_TOKEN: {reason}") from None
            raise DvcInvokeError(
                f"cannot reach Slack at {self.settings.shown_api_url}: {reason}"
            ) from None
        who = f"{auth.get('user', '?')} in {auth.get('team', '?')}"
        try:
            self.client.chat_postMessage(
                channel=self.channel, text=f"dvc-invoke test message from {socket.gethostname()}"
            )
        except Exception as exc:  # noqa: BLE001
            reason, _ = describe(exc, self.settings.secrets)
            raise DvcInvokeError(
                f"token works ({who}) but posting to {self.channel} failed: {reason}"
                + (" (invite the app to the channel)" if reason == "not_in_channel" else "")
            ) from None
        return f"Slack Web API: posted a test message to {self.channel} as {who}"


class WebhookNotifier(_SlackNotifier):
    name = "webhook"

    def start(self, report: RunReport) -> str | None:
        return None  # a webhook posts once, at the end

    def _make_client(self) -> Any:
        return webhook_client(self.settings)

    def _send(self, text: str) -> None:
        self._post(text)

    def _post(self, text: str, blocks: list[Any] | None = None) -> None:
        self._with_blocks(self._send_once, text, blocks or [])

    def _send_once(self, *, text: str, blocks: list[Any] | None = None) -> None:
        resp = self.client.send(text=text, blocks=blocks or None)
        # NOTE: webhook errors do not raise: the status and body say it.
        if resp.status_code != 200 or resp.body != "ok":
            raise WebhookError(resp.status_code, resp.body)

    def report(self, report: RunReport) -> None:
        if self.disabled or report.status == "started":
            return  # a webhook cannot update a message: one message, at the end
        text, blocks = message(report, self.texts.get(report.status))
        if report.status in ("failed", "cancelled", "lost") and report.log_tail:
            blocks += tail_blocks(report)[1]
        try:
            self._post(text, blocks)
        except Exception as exc:  # noqa: BLE001 - a notification never fails the run
            self._fail(exc, "notification")

    def check(self) -> str:
        try:
            self._post(f"dvc-invoke test message from {socket.gethostname()}")
        except Exception as exc:  # noqa: BLE001
            reason, _ = describe(exc, self.settings.secrets)
            raise DvcInvokeError(f"the Slack webhook refused the test message: {reason}") from None
        return "Slack webhook: posted a test message"
