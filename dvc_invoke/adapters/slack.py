"""Slack: settings from the environment, Block Kit messages, and two notifiers.

- `WebApiNotifier` (``SLACK_BOT_TOKEN`` + ``SLACK_CHANNEL``): posts when a
  run starts, turns that message into the result with ``chat.update``, and
  replies in its thread with the end of the log when the run failed.
- `WebhookNotifier` (``SLACK_WEBHOOK_URL``): one message when a run ends.

Retries are slack_sdk's own handlers (connection errors, 5xx, 429 with
Retry-After), bounded so that a Slack outage costs a run seconds. The bot
token and the webhook URL are secrets: they are kept out of every message,
warning and log line, slack_sdk's included. slack_sdk is imported on first
use only.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from dvc_invoke.config.settings import SlackOptions
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs.record import RunReport, format_duration

DEFAULT_API_URL = "https://slack.com/api/"
SECTION_LIMIT = 3000  # a section's text, after escaping
TEXT_LIMIT = 3000  # the top-level text: the notification and the fallback
LOG_TAIL_LIMIT = 2900
EMOJI = {
    "started": ":arrow_forward:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
    "lost": ":x:",
    "requeued": ":repeat:",
}
# Errors that no retry and no later message of the same run will fix.
PERMANENT = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_token",
    "no_service",
    "no_active_hooks",
    "action_prohibited",
}


@dataclass
class SlackSettings:
    token: str | None = None
    channel: str | None = None
    webhook_url: str | None = None
    api_url: str = DEFAULT_API_URL
    timeout: float = 5.0
    retries: int = 2
    max_retry_after: float = 5.0

    @property
    def secrets(self) -> list[str]:
        userinfo = _userinfo(self.api_url)
        return [s for s in (self.token, self.webhook_url, userinfo) if s]

    @property
    def shown_api_url(self) -> str:
        """``api_url`` as it may be printed: a proxy's user and password redacted."""
        return without_userinfo(self.api_url)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, options: SlackOptions | None = None
    ) -> SlackSettings:
        """Read and check the ``SLACK_*`` variables; a malformed set-up is an error now."""
        env = os.environ if env is None else env
        options = options or SlackOptions()

        def get(name: str) -> str | None:
            value = (env.get(name) or "").strip()
            return value or None

        s = cls(
            token=get("SLACK_BOT_TOKEN"),
            channel=get("SLACK_CHANNEL"),
            webhook_url=get("SLACK_WEBHOOK_URL"),
            api_url=get("SLACK_API_URL") or DEFAULT_API_URL,
            timeout=options.timeout,
            retries=options.retries,
            max_retry_after=options.max_retry_after,
        )
        if s.token and not s.channel:
            raise DvcInvokeError(
                "SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not: name the channel to post to",
                step="guards",
            )
        if s.channel and not s.token and not s.webhook_url:
            raise DvcInvokeError(
                "SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not: set the bot token"
                " (or use SLACK_WEBHOOK_URL)",
                step="guards",
            )
        if s.webhook_url and not _is_http(s.webhook_url):
            # NOTE: the value is a secret: say what is wrong, never what it is.
            raise DvcInvokeError("SLACK_WEBHOOK_URL is not an http(s) URL", step="guards")
        if not _is_http(s.api_url):
            raise DvcInvokeError(
                f"SLACK_API_URL is not an http(s) URL: {without_userinfo(s.api_url)!r}",
                step="guards",
            )
        if not s.api_url.endswith("/"):
            s.api_url += "/"
        return s


def _is_http(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


# What may hold a user and password: everything before the last "@" after the
# scheme (a password may hold an unencoded "/", "?" or "#"; more is redacted
# rather than less).
_USERINFO = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://)?(.*)@")


def _userinfo(url: str) -> str | None:
    match = _USERINFO.match(url)
    return match.group(1) or None if match else None


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced: it is a secret."""
    userinfo = _userinfo(url)
    return url.replace(f"{userinfo}@", "[redacted]@", 1) if userinfo else url


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


class _Redacting(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = ()
        return True


def _logger(secrets: list[str]) -> logging.Logger:
    """slack_sdk's logger for our clients: warnings only, secrets redacted,
    and never on the console by itself.

    slack_sdk logs the request URL at INFO when it retries, which for a
    webhook is the secret itself; an unset level would let that through. It
    logs "Failed to send a request…" at ERROR once per attempt: with no
    handler anywhere, Python's last-resort handler would print each to
    stderr, beside the one warning of ours that says the same. A project
    that configures logging still gets them, redacted.
    """
    logger = logging.getLogger("dvc_invoke.slack_sdk")
    logger.setLevel(logging.WARNING)
    logger.filters = [_Redacting(secrets)]
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def _retry_handlers(s: SlackSettings) -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    class BoundedRateLimitHandler(RateLimitErrorRetryHandler):
        """Honours Retry-After, unless Slack asks for a longer wait than a run should pay."""

        def _can_retry(self, *, state, request, response=None, error=None):  # type: ignore[no-untyped-def]
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            for key, values in (response.headers or {}).items():
                if key.lower() == "retry-after":
                    try:
                        return float(values[0]) <= s.max_retry_after
                    except (ValueError, IndexError):
                        return True
            return True

    # NOTE: max_retry_count is one budget shared by all the handlers.
    n = s.retries
    return [
        ConnectionErrorRetryHandler(max_retry_count=n),
        BoundedRateLimitHandler(max_retry_count=n),
        ServerErrorRetryHandler(max_retry_count=n),
    ]


class WebhookError(Exception):
    """A webhook answered, but not with 200 ``ok`` (webhook clients never raise)."""

    def __init__(self, status: int, body: str):
        self.status, self.body = status, body
        super().__init__(f"HTTP {status}")


def describe(exc: BaseException, secrets: list[str]) -> tuple[str, bool]:
    """Slack's own word for what went wrong, and whether it is permanent."""
    from slack_sdk.errors import SlackApiError, SlackObjectFormationError

    if isinstance(exc, SlackObjectFormationError):
        return redact(f"message refused before sending: {exc}", secrets), False
    if isinstance(exc, WebhookError):
        body = (exc.body or "").strip()
        word = body if body and len(body) < 60 and " " not in body else f"HTTP {exc.status}"
        permanent = body in PERMANENT or exc.status in (403, 404, 410)
        return redact(word, secrets), permanent
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", None)
        error = None
        try:
            error = response.get("error")
        except Exception:  # noqa: BLE001 - a body that is not JSON
            error = None
        if error:
            return redact(str(error), secrets), error in PERMANENT
        return f"HTTP {status}", status in (401, 403, 404)
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out", False
    reason = getattr(exc, "reason", None) or exc
    return redact(f"connection failed: {reason}", secrets), False


# -- messages ---------------------------------------------------------------


def escape(text: str) -> str:
    """Slack mrkdwn control characters in text that is not ours."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, never cutting an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def fit(text: str, limit: int) -> str:
    """Text that is not ours, escaped, within ``limit`` characters once escaped."""
    return clip(escape(text), limit)


def _unfence(text: str) -> str:
    # NOTE: a zero-width space between backticks, and at the ends: a ``` in a
    # log, or a backtick next to ours, cannot close our fence.
    text = re.sub(r"`(?=`)", "`\u200b", text)
    if text.startswith("`"):
        text = "\u200b" + text
    if text.endswith("`"):
        text += "\u200b"
    return text


def code(text: str, limit: int) -> str:
    """Inline code, unless ``text`` holds a backtick that would end it early."""
    if "`" in text:
        return fit(text, limit)
    return f"`{fit(text, limit - 2)}`"


def fence(text: str, limit: int) -> str:
    """A code block of the end of ``text``: whole last lines, within ``limit`` once escaped."""
    body = log_tail(_unfence(escape(text.rstrip())), limit - 6)
    return f"```{body}```"


def log_tail(text: str, limit: int = LOG_TAIL_LIMIT) -> str:
    """The end of a log, whole lines, within ``limit`` characters."""
    text = text.rstrip()
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    cut = tail.find("\n")
    if 0 <= cut < len(tail) - 1:
        return tail[cut + 1 :]
    # One long line: never start inside an entity that escaping made.
    semi = tail.find(";", 0, 6)
    if semi != -1 and "&" not in tail[:semi]:
        tail = tail[semi + 1 :]
    return tail


def _section(text: str) -> Any:
    from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

    return SectionBlock(text=MarkdownTextObject(text=text))


def message(report: RunReport, custom: str | None = None) -> tuple[str, list[Any]]:
    """The plain text and Block Kit blocks for ``report``.

    Every string that is not ours (names, commands, reasons, logs) is escaped,
    so none can mention anyone or end our formatting, and every text is sized
    after escaping, within Slack's limits: a long one is cut, never the message.
    """
    from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

    plain = report.headline()
    if custom:
        plain = f"{plain}: {custom}"
    text = fit(plain, TEXT_LIMIT)
    word = "failed" if report.status == "lost" else report.status
    title = f"{EMOJI[report.status]} *{fit(report.pipeline, 200)}* {word}"
    if report.status != "started":
        title += f" after {format_duration(report.duration)}"
    blocks: list[Any] = [_section(title)]
    if custom:
        blocks.append(_section(fit(custom, SECTION_LIMIT)))
    fields = [f"*Host*\n{fit(report.host, 200)}", f"*Command*\n{code(report.command, 1800)}"]
    commits = report.commits()
    if commits:
        fields.insert(0, f"*Branch*\n{fit(commits, 240)}")
    blocks.append(SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]))
    rows = report.metric_rows()
    if rows:
        header = "*Metrics and params* (against the run's first commit)\n"
        blocks.append(_section(header + fence("\n".join(rows), SECTION_LIMIT - len(header))))
    if report.status in ("failed", "cancelled", "lost"):
        lines = [f"*Failed at:* {fit(report.step or 'unknown step', 200)}"]
        if report.reason:
            lines.append(fit(report.reason, 1500))
        if report.resume:
            lines.append(f"*Resume with:* {code(report.resume, 1000)}")
        blocks.append(_section("\n".join(lines)))
    elif report.status == "requeued":
        step = fit(report.step or "unknown step", 200)
        blocks.append(_section(f"*Requeued at:* {step}\n{fit(report.reason or '', 1500)}"))
    elif report.published():
        plots = report.plots_changed()
        done = fit("; ".join(report.published() + ([plots] if plots else [])), 1900)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=done)]))
    return text, blocks


def tail_blocks(report: RunReport) -> tuple[str, list[Any]]:
    text = fit(f"{report.pipeline} {report.status}: end of the log", TEXT_LIMIT)
    return text, [_section(fence(report.log_tail or "", LOG_TAIL_LIMIT))]


# -- notifiers --------------------------------------------------------------


# Slack's answers to a message whose blocks it will not take: the text alone is sent instead.
REFUSED_BLOCKS = {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "too_many_attachments"}


def _blocks_refused(exc: BaseException) -> bool:
    from slack_sdk.errors import SlackApiError, SlackObjectFormationError

    if isinstance(exc, SlackObjectFormationError):
        return True
    if isinstance(exc, WebhookError):
        return (exc.body or "").strip() in REFUSED_BLOCKS
    if isinstance(exc, SlackApiError):
        try:
            return exc.response.get("error") in REFUSED_BLOCKS
        except Exception:  # noqa: BLE001 - a body that is not JSON
            return False
    return False


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
            s = self.settings
            self._client = self._make_client(
                timeout=int(max(1, s.timeout)),
                logger=_logger(s.secrets),
                retry_handlers=_retry_handlers(s),
            )
        return self._client

    def _make_client(self, **options: Any) -> Any:
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
            if not _blocks_refused(exc):
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

    def _make_client(self, **options: Any) -> Any:
        from slack_sdk import WebClient

        return WebClient(token=self.settings.token, base_url=self.settings.api_url, **options)

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
            if report.status in ("failed", "cancelled", "lost") and report.log_tail:
                tail_text, tail = tail_blocks(report)
                self._with_blocks(
                    self.client.chat_postMessage,
                    tail_text,
                    tail,
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

    def _make_client(self, **options: Any) -> Any:
        from slack_sdk.webhook import WebhookClient

        return WebhookClient(self.settings.webhook_url or "", **options)

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
