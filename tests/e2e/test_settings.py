"""The ``dvc_invoke`` config: defaults, invoke's merge, and one line for any bad value.

End to end: real projects, `inv` run as a user runs it."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, echoed


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


def test_a_variable_in_the_environment_sets_the_run(project):
    quiet = project.inv("metrics", env={"INVOKE_DVC_INVOKE_ECHO": "0"})
    assert quiet.returncode == 0, quiet.output
    assert echoed(quiet) == []

    loud = project.inv("metrics", env={"INVOKE_DVC_INVOKE_ECHO": "1"})
    assert loud.returncode == 0, loud.output
    assert echoed(loud)[0].startswith("git fetch")


def test_a_bad_variable_refuses_the_run_before_anyone_is_told(project, slack):
    env = {**slack.web_api_env(), "INVOKE_DVC_INVOKE_RETRIES": "many"}

    run = project.inv("metrics", env=env)

    assert_one_line_error(run, "INVOKE_DVC_INVOKE_RETRIES=many", "a whole number from 0 to 100")
    assert slack.requests == []
    assert project.stages_run() == []
