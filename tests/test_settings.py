"""The ``dvc_invoke`` config: defaults, invoke's merge, and one line for any bad value."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error
from invoke import Config, Context

from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.settings import Settings, SlackOptions, Timeouts, settings


def test_defaults_and_a_partial_slack_mapping_merge():
    s = settings(Context(Config(overrides={"dvc_invoke": {"slack": {"timeout": 1}}})))
    assert s.slack == SlackOptions(timeout=1.0, retries=2, max_retry_after=5.0)
    assert (s.echo, s.retries, s.retry_delay, s.dvc) == (True, 2, 2.0, "")
    assert s.timeouts == Timeouts(commit=600.0, git_push=600.0, dvc_push=None)


def test_a_time_limit_of_0_or_null_is_none():
    given = {"timeouts": {"commit": 0, "git_push": None, "dvc_push": 3600}}
    assert Settings.from_mapping(given).timeouts == Timeouts(None, None, 3600.0)


@pytest.mark.parametrize(
    "given, error",
    [
        ({"retries": "many"}, "dvc_invoke.retries must be a whole number"),
        ({"retries": -1}, "dvc_invoke.retries must be a whole number"),
        ({"retry_delay": "soon"}, "dvc_invoke.retry_delay must be a number of seconds"),
        ({"slack": {"timeout": "abc"}}, "dvc_invoke.slack.timeout must be a number of seconds"),
        ({"slack": {"timeout": 0}}, "dvc_invoke.slack.timeout must be a number of seconds above 0"),
        ({"slack": 3}, "dvc_invoke.slack must be a mapping, not 3"),
        ({"dvc": 5}, "dvc_invoke.dvc must be a string, not 5"),
        ({"echo": "no"}, "dvc_invoke.echo must be true or false, not 'no'"),
        ({"push_side_branch": 1}, "dvc_invoke.push_side_branch must be true or false"),
        ({"pipelines": ["metrics"]}, "dvc_invoke.pipelines must be a mapping"),
        ({"retires": 3}, "dvc_invoke.retires is not a setting (did you mean dvc_invoke.retries?)"),
        ({"echo": {"on": True}}, "dvc_invoke.echo must be a single value"),
        ({"slack": {"timeout": {"s": 5}}}, "dvc_invoke.slack.timeout must be a single value"),
        (
            {"timeouts": {"commit": "soon"}},
            "dvc_invoke.timeouts.commit must be a number of seconds",
        ),
        (
            {"timeouts": {"git_push": -1}},
            "dvc_invoke.timeouts.git_push must be a number of seconds",
        ),
        ({"timeouts": {"comit": 3}}, "(did you mean dvc_invoke.timeouts.commit?)"),
        ({"timeouts": 300}, "dvc_invoke.timeouts must be a mapping, not 300"),
    ],
)
def test_a_bad_value_names_its_key(given, error):
    with pytest.raises(DvcInvokeError) as caught:
        Settings.from_mapping(given)
    assert error in caught.value.reason


@pytest.mark.parametrize(
    "given, error",
    [
        ({"retries": "many"}, "config dvc_invoke.retries must be a whole number"),
        ({"slack": {"timeout": "abc"}}, "config dvc_invoke.slack.timeout must be a number"),
        ({"dvc": 5}, "config dvc_invoke.dvc must be a string, not 5"),
        ({"echo": "no"}, "config dvc_invoke.echo must be true or false"),
    ],
)
def test_a_bad_value_in_invoke_yaml_refuses_the_run_before_anyone_is_told(
    project, slack, given, error
):
    (project.path / "invoke.yaml").write_text(json.dumps({"dvc_invoke": given}))

    run = project.inv("metrics", env=slack.web_api_env())

    assert_one_line_error(run, error)
    assert slack.requests == []  # Slack never heard of a run that could not start
    assert project.stages_run() == []
