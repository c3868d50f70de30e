"""slack_sdk's clients, as every notifier gets them: bounded retries, a logger that redacts.

Retries are slack_sdk's own handlers (connection errors, 5xx, 429 with
Retry-After), bounded so that a Slack outage costs a run seconds. slack_sdk's
log lines go through a logger that keeps the settings' secrets out of them.
"""

from __future__ import annotations

import logging
from typing import Any

from dvc_invoke.adapters.slack.settings import SlackSettings, redact


def web_client(s: SlackSettings) -> Any:
    """A Web API client (``chat.postMessage``, ``chat.update``, uploads) for the bot token."""
    from slack_sdk import WebClient

    return WebClient(token=s.token, base_url=s.api_url, **_options(s))


def webhook_client(s: SlackSettings) -> Any:
    """A client for the incoming webhook; it answers with a status and body, never raises."""
    from slack_sdk.webhook import WebhookClient

    return WebhookClient(s.webhook_url or "", **_options(s))


def _options(s: SlackSettings) -> dict[str, Any]:
    return {
        "timeout": int(max(1, s.timeout)),
        "logger": _logger(s.secrets),
        "retry_handlers": _retry_handlers(s),
    }


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
