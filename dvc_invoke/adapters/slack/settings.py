"""Slack's settings, read from the ``SLACK_*`` environment variables, and its secrets.

The bot token, the webhook URL and a proxy's ``user:password@`` in
``SLACK_API_URL`` are secrets: `SlackSettings.secrets` lists them, `redact`
takes them out of a text, `without_userinfo` out of a URL that is printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from dvc_invoke.config.settings import SlackOptions
from dvc_invoke.errors import DvcInvokeError

DEFAULT_API_URL = "https://slack.com/api/"


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
        s._check()
        if not s.api_url.endswith("/"):
            s.api_url += "/"
        return s

    def _check(self) -> None:
        """Refuse a set-up that would post nowhere, or to something that is not a URL."""
        if self.token and not self.channel:
            raise DvcInvokeError(
                "SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not: name the channel to post to",
                step="guards",
            )
        if self.channel and not self.token and not self.webhook_url:
            raise DvcInvokeError(
                "SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not: set the bot token"
                " (or use SLACK_WEBHOOK_URL)",
                step="guards",
            )
        if self.webhook_url and not _is_http(self.webhook_url):
            # NOTE: the value is a secret: say what is wrong, never what it is.
            raise DvcInvokeError("SLACK_WEBHOOK_URL is not an http(s) URL", step="guards")
        if not _is_http(self.api_url):
            raise DvcInvokeError(
                f"SLACK_API_URL is not an http(s) URL: {without_userinfo(self.api_url)!r}",
                step="guards",
            )


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
