"""The ``dvc_invoke`` config: defaults, invoke's merge, and one line for any bad value."""

from __future__ import annotations

import pytest
from invoke import Config, Context

from dvc_invoke.config.settings import Settings, SlackOptions, Timeouts, settings
from dvc_invoke.errors import DvcInvokeError


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


def test_variables_set_each_setting_as_invoke_names_them():
    env = {
        "INVOKE_DVC_INVOKE_RETRIES": "3",
        "INVOKE_DVC_INVOKE_ECHO": "0",
        "INVOKE_DVC_INVOKE_RETRY_DELAY": "0.5",
        "INVOKE_DVC_INVOKE_PUSH_SIDE_BRANCH": "yes",
        "INVOKE_DVC_INVOKE_SLACK_TIMEOUT": "1.5",
        "INVOKE_DVC_INVOKE_TIMEOUTS_COMMIT": "0",
        "INVOKE_DVC_INVOKE_TIMEOUTS_DVC_PUSH": "3600",
        "INVOKE_DVC_INVOKE_DVC": "/opt/dvc/bin/dvc",
        "INVOKE_DVC_INVOKE_SSH": "ssh -F ssh_config",
        "INVOKE_RUN_ECHO": "1",  # invoke's own: not ours to read
    }
    s = Settings.from_mapping({"retries": 1, "slack": {"retries": 4}}, env)
    assert (s.retries, s.echo, s.retry_delay, s.push_side_branch) == (3, False, 0.5, True)
    assert s.slack == SlackOptions(timeout=1.5, retries=4, max_retry_after=5.0)
    assert s.timeouts == Timeouts(commit=None, git_push=600.0, dvc_push=3600.0)
    assert (s.dvc, s.ssh) == ("/opt/dvc/bin/dvc", ("ssh", "-F", "ssh_config"))


def test_a_configured_host_or_group_takes_variables_for_what_it_has():
    given = {"hosts": {"gpu1": {"ssh": "gpu1", "path": "/srv/a"}}, "host_groups": {"all": ["gpu1"]}}
    env = {
        "INVOKE_DVC_INVOKE_HOSTS_GPU1_PATH": "/srv/b",
        "INVOKE_DVC_INVOKE_HOSTS_GPU2_PATH": "/srv/c",  # no such host: as invoke, ignored
    }
    s = Settings.from_mapping(given, env)
    assert s.hosts["gpu1"].path == "/srv/b"
    assert list(s.hosts) == ["gpu1"]


def test_a_context_reads_the_variables_with_its_configs_prefix(monkeypatch):
    monkeypatch.setenv("INVOKE_DVC_INVOKE_RETRIES", "5")
    monkeypatch.setenv("MYTOOL_DVC_INVOKE_RETRIES", "7")
    assert settings(Context(Config())).retries == 5

    class Mine(Config):
        prefix = "mytool"

    assert settings(Context(Mine())).retries == 7


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("RETRIES", "many", "which must be a whole number from 0 to 100"),
        ("RETRIES", "2.5", "which must be a whole number"),
        ("ECHO", "maybe", "which must be true or false"),
        ("RETRY_DELAY", "-1", "which must be a number of seconds"),
        ("SLACK_TIMEOUT", "0", "which must be a number of seconds above 0"),
        ("TIMEOUTS_GIT_PUSH", "soon", "which must be a number of seconds"),
        ("SSH", "", "which must be an ssh command line"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(variable, value, expected):
    with pytest.raises(DvcInvokeError) as caught:
        Settings.from_mapping({}, {f"INVOKE_DVC_INVOKE_{variable}": value})
    line = caught.value.line()
    assert line.startswith(f"dvc-invoke: INVOKE_DVC_INVOKE_{variable}={value} sets dvc_invoke.")
    assert expected in line
    assert "\n" not in line


def test_without_variables_the_config_decides():
    assert Settings.from_mapping({"retries": 4}, {"PATH": "/bin"}).retries == 4


def test_a_configured_pipeline_takes_variables_for_what_it_sets():
    given = {"pipelines": {"train": {"dvcfile": "train/dvc.yaml", "force": False, "pull": ["a"]}}}
    env = {
        "INVOKE_DVC_INVOKE_PIPELINES_TRAIN_FORCE": "yes",
        "INVOKE_DVC_INVOKE_PIPELINES_TRAIN_PULL": "data/a, data/b",  # a list: words
    }
    assert Settings.from_mapping(given, env).pipelines["train"] == {
        "dvcfile": "train/dvc.yaml",
        "force": True,
        "pull": ["data/a", "data/b"],
    }
    with pytest.raises(DvcInvokeError) as caught:
        Settings.from_mapping(given, {"INVOKE_DVC_INVOKE_PIPELINES_TRAIN_FORCE": "sometimes"})
    assert caught.value.line().startswith(
        "dvc-invoke: INVOKE_DVC_INVOKE_PIPELINES_TRAIN_FORCE=sometimes sets"
        " dvc_invoke.pipelines.train.force, which must be true or false"
    )
