"""The ssh transport: the command line, the remote shell words, ssh's own failures."""

from __future__ import annotations

import pytest
from invoke import Config, MockContext, Result

from dvc_invoke.adapters.ssh import (
    Remote,
    Unreachable,
    failure_kind,
    in_checkout,
    python_line,
    remote_path,
)
from dvc_invoke.config.settings import Settings
from dvc_invoke.errors import DvcInvokeError


def host(**fields):
    return Settings.from_mapping({"hosts": {"g": {"ssh": "g", "path": "/p"} | fields}}).hosts["g"]


def mock(*results, **dvc_invoke):
    config = Config(overrides={"dvc_invoke": dvc_invoke, "run": {"in_stream": False}})
    return MockContext(config=config, run=list(results))


def test_remote_paths_are_quoted_and_home_is_the_remote_users():
    assert remote_path("~/ml/my project") == "\"$HOME\"/'ml/my project'"
    assert remote_path("/srv/$(id)") == "'/srv/$(id)'"
    g = host(ssh="me@g:2222", path="~/p", python="/opt/venv/bin/python")
    assert (g.target, g.port) == ("me@g", "2222")
    line = in_checkout(g, "sub/", "python -V")
    assert line == (
        'cd "$HOME"/p/sub && unset SSH_CLIENT SSH2_CLIENT && PATH=/opt/venv/bin:"$PATH" python -V'
    )


def test_home_in_a_hosts_python_and_in_the_ssh_command_is_expanded(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    s = Settings.from_mapping(
        {
            "ssh": "ssh -F ~/.ssh/lab",
            "hosts": {"g": {"ssh": "g", "path": "/p", "python": "~/venv/bin/python"}},
        }
    )
    assert s.ssh == ("ssh", "-F", "/home/me/.ssh/lab")  # the local user's home, here
    # The remote user's home, there: expanded by the host's shell.
    assert python_line(s.hosts["g"], "-V") == '"$HOME"/venv/bin/python -V'


def test_a_python_by_name_and_its_arguments_are_quoted():
    assert python_line(host(), "-c", "print(1)") == "python3 -c 'print(1)'"
    assert python_line(host(python="/opt/my env/bin/python")) == "'/opt/my env/bin/python'"


def test_the_ssh_command_never_prompts_and_names_the_port_and_the_alias():
    c = mock(ssh="ssh -F /etc/lab")
    remote = Remote(c, host(ssh="me@gpu-1:2222"))
    assert remote.argv() == [
        "ssh", "-F", "/etc/lab", "-o", "BatchMode=yes", "-p", "2222", "--", "me@gpu-1",
    ]  # fmt: skip
    assert remote.argv(tty=True)[:6] == ["ssh", "-F", "/etc/lab", "-o", "BatchMode=yes", "-t"]
    assert remote.command("cd /p && ls") == (
        "ssh -F /etc/lab -o BatchMode=yes -p 2222 -- me@gpu-1 'cd /p && ls'"
    )


def test_a_remote_line_runs_through_c_run():
    c = mock(Result(stdout="hi\n"))
    res = Remote(c, host()).run("echo hi")
    assert res.stdout == "hi\n"
    assert c.run.call_args.args[0].endswith("-- g 'echo hi'")


@pytest.mark.parametrize(
    "said, kind",
    [
        ("ssh: connect to host 127.0.0.1 port 1: Connection refused", "refused"),
        ("me@127.0.0.1: Permission denied (publickey).", "auth"),
        ("ssh: Could not resolve hostname nowhere: Name or service not known", "unreachable"),
        ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "unreachable"),
    ],
)
def test_ssh_failures_are_classed_by_what_ssh_said(said, kind):
    assert failure_kind(said) == kind


def test_an_unreachable_host_is_one_line_naming_how_to_check_it():
    said = "me@g: Permission denied (publickey)."
    c = mock(Result(exited=255, stderr=f"Warning: added\n{said}\n"))
    with pytest.raises(Unreachable) as raised:
        Remote(c, host(ssh="me@g:2222")).run("true")
    assert raised.value.kind == "auth"
    assert raised.value.step == "host"
    assert raised.value.reason == (
        f"cannot reach host g (me@g:2222) over ssh: {said}; check that"
        " `ssh -p 2222 me@g true` works from here (keys, ~/.ssh/config)"
    )


def test_a_silent_ssh_failure_is_an_interruption():
    c = mock(Result(exited=255, stderr=""))
    with pytest.raises(Exception) as raised:
        Remote(c, host()).run("true")
    assert not isinstance(raised.value, DvcInvokeError)
    assert raised.value.code == 130


def test_a_host_python_without_dvc_invoke_is_one_line():
    c = mock(Result(exited=1, stderr="/usr/bin/python3: No module named dvc_invoke\n"))
    with pytest.raises(DvcInvokeError, match=r"host g: python3 has no dvc_invoke: install"):
        Remote(c, host(python="python3")).run("python3 -m dvc_invoke host probe")
