"""The laptop's side of a run on a GPU host: which hosts a name means, the line that starts it."""

from __future__ import annotations

import pytest
from invoke import Config, Context, Result

from dvc_invoke.config.settings import Settings
from dvc_invoke.engines import ssh
from dvc_invoke.engines.ssh_agent import ENV_TELL, started_line
from dvc_invoke.errors import DvcInvokeError


def ctx(**dvc_invoke):
    return Context(Config(overrides={"dvc_invoke": dvc_invoke, "run": {"in_stream": False}}))


def test_an_unknown_host_lists_the_known_ones():
    c = ctx(hosts={"gpu-1": {"ssh": "gpu-1", "path": "/p"}}, host_groups={"gpus": ["gpu-1"]})
    with pytest.raises(DvcInvokeError, match=r"unknown host 'gpu-7'.*known: gpu-1, gpus"):
        ssh.choose(c, "gpu-7")
    assert [h.name for h in ssh.choose(c, "gpus")] == ["gpu-1"]


def test_a_group_means_its_members_in_order():
    hosts = {name: {"ssh": name, "path": "/p"} for name in ("a", "b", "c")}
    c = ctx(hosts=hosts, host_groups={"g": ["c", "a"]})
    assert [h.name for h in ssh.choose(c, "g")] == ["c", "a"]
    assert [h.name for h in ssh.choose(c, "b")] == ["b"]


def test_a_free_host_is_one_nothing_holds_with_a_gpu_left():
    host = Settings.from_mapping({"hosts": {"g": {"ssh": "g", "path": "/p"}}}).hosts["g"]
    assert ssh.Probe(host, gpus=None).free
    assert ssh.Probe(host, gpus=2, busy_gpus=1).free
    full = ssh.Probe(host, gpus=2, busy_gpus=2)
    assert not full.free and full.why_not() == "all 2 GPUs are in use"
    held = ssh.Probe(host, held={"id": "r1", "pipeline": "train"})
    assert not held.free and held.why_not() == "run r1 (train) holds its checkout"


def test_the_start_line_asks_the_run_for_its_id_in_one_line():
    host = Settings.from_mapping(
        {"hosts": {"g": {"ssh": "g", "path": "~/p", "python": "/v/bin/python"}}}
    ).hosts["g"]
    line = ssh._start_line(host, "", "https://git.example/p.git", "main", "abc", ["metrics"], False)
    assert line.startswith('{ [ -d "$HOME"/p/.git ] || git clone -q https://git.example/p.git ')
    assert "/v/bin/python -m dvc_invoke host checkout main abc &&" in line
    assert line.endswith(f"env {ENV_TELL}=1 /v/bin/python -m invoke metrics --detach")
    slurm = ssh._start_line(host, "", "u", "main", "abc", ["metrics"], True)
    assert slurm.endswith("-m invoke metrics --slurm")


def test_the_run_id_is_read_from_the_hosts_line_not_its_text(capsys):
    host = Settings.from_mapping({"hosts": {"g": {"ssh": "g", "path": "/p"}}}).hosts["g"]
    out = (
        "! the upstream moved\n"
        "metrics is running in the background as run 19990101-000000-decoy-0000\n"
        + started_line("20260101-120000-metrics-ab12")
        + "\n"
    )
    ssh._tell_started("metrics", host, out, slurm=False)
    said = capsys.readouterr()
    assert "as run 20260101-120000-metrics-ab12" in said.out
    assert "--run 20260101-120000-metrics-ab12 --follow --host g" in said.out
    assert "decoy" not in said.out
    assert "the upstream moved" in said.err + said.out


def test_without_the_hosts_line_what_it_printed_is_shown(capsys):
    host = Settings.from_mapping({"hosts": {"g": {"ssh": "g", "path": "/p"}}}).hosts["g"]
    ssh._tell_started("metrics", host, "started somehow\n", slurm=False)
    said = capsys.readouterr().out
    assert "metrics started on g (/p)" in said and "started somehow" in said


def test_a_hosts_failure_is_its_last_line_without_its_own_resume():
    said = "dvc-invoke: host failed: the checkout has changes (a.py); then run: inv metrics"
    assert ssh._said(Result(stderr=f"noise\n{said}\n", exited=1)) == (
        "host failed: the checkout has changes (a.py)"
    )
    assert ssh._said(Result(stderr="fatal: no such remote\n", exited=128)) == (
        "fatal: no such remote"
    )
    assert ssh._said(Result(exited=3)) == "exited with 3"
