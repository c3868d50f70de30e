"""What a failed Slack call means: Slack's own word for it, and whether it is for good.

A Web API call raises slack_sdk's errors; a webhook answers with a status and
a body instead, which `WebhookError` carries. Every word is redacted: a
secret never reaches a warning.
"""

from __future__ import annotations

from dvc_invoke.adapters.slack.settings import redact

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
# Slack's answers to a message whose blocks it will not take: the text alone is sent instead.
REFUSED_BLOCKS = {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "too_many_attachments"}


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


def blocks_refused(exc: BaseException) -> bool:
    """Whether Slack refused a message for its blocks, so that its text alone may go."""
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
