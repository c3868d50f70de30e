"""Slack's settings from the environment, and the secrets kept out of what is printed."""

from __future__ import annotations

import re

import pytest

from dvc_invoke.adapters.slack.settings import SlackSettings, without_userinfo
from dvc_invoke.errors import DvcInvokeError


@pytest.mark.parametrize(
    "url", ["https://u:pa/ss@proxy:8080/api/", "http://u:p?w#d@proxy/", "u:pw@proxy/api/"]
)
def test_a_password_with_url_characters_is_still_redacted(url):
    assert "pw" not in without_userinfo(url).replace("proxy", "") or "u:pw" not in without_userinfo(
        url
    )
    assert "[redacted]@" in without_userinfo(url)
    assert not any(part in without_userinfo(url) for part in ("pa/ss", "p?w#d", "u:pw"))
    assert SlackSettings(api_url=url).secrets  # kept out of slack_sdk's logs too


@pytest.mark.parametrize(
    "env, error",
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not"),
        ({"SLACK_CHANNEL": "#ml-runs"}, "SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not"),
        ({"SLACK_WEBHOOK_URL": "ftp://hooks.example/secret"}, "SLACK_WEBHOOK_URL is not an http"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "#x", "SLACK_API_URL": "slack.com/api"},
            "SLACK_API_URL is not an http(s) URL",
        ),
    ],
)
def test_a_malformed_setup_is_refused_when_read(env, error):
    with pytest.raises(DvcInvokeError, match=re.escape(error)):
        SlackSettings.from_env(env)


def test_a_webhook_url_that_is_not_http_is_refused_without_being_named():
    with pytest.raises(DvcInvokeError) as raised:
        SlackSettings.from_env({"SLACK_WEBHOOK_URL": "ftp://hooks.example/secret"})
    assert "secret" not in str(raised.value)


def test_blank_variables_are_unset_and_the_api_url_ends_with_a_slash():
    s = SlackSettings.from_env(
        {
            "SLACK_BOT_TOKEN": " xoxb-1 ",
            "SLACK_CHANNEL": "#x",
            "SLACK_WEBHOOK_URL": "  ",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
        }
    )
    assert (s.token, s.channel, s.webhook_url) == ("xoxb-1", "#x", None)
    assert s.api_url == "http://127.0.0.1:9/api/"
