"""Runs on GPU hosts over SSH: a real sshd on 127.0.0.1, each host a checkout of its own.

The sandbox's checkout is the laptop; hosts gpu-1 and gpu-2 are ssh aliases
(in an ssh_config passed with -F, as a user's ~/.ssh/config) whose projects
live beside it, cloned from the same origin.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_fresh_clone_up_to_date, assert_one_line_error, records, wait_for

from dvc_invoke.adapters.ssh import in_checkout
from dvc_invoke.config.settings import Settings
from dvc_invoke.engines.ssh_agent import STARTED
from dvc_invoke.errors import DvcInvokeError

RUN_ID = re.compile(r"as run (\S+)")


def with_hosts(project, sshd, settings=None, **extra):
    """Configure hosts gpu-1 and gpu-2 (and group gpus) in the project, committed and pushed."""
    base = project.sandbox.base
    config = {
        "dvc_invoke": {
            "ssh": sshd.ssh,
            "hosts": {
                name: {"ssh": name, "path": str(base / name), "python": sys.executable}
                for name in ("gpu-1", "gpu-2")
            }
            | extra,
            "host_groups": {"gpus": ["gpu-1", "gpu-2"]},
        }
        | dict(settings or {})
    }
    (project.path / "invoke.yaml").write_text(json.dumps(config, indent=1))
    project.git("add", "invoke.yaml")
    project.git("commit", "-qm", "Our GPU hosts")
    project.git("push", "-q")


def host_checkout(project, name, env_file=""):
    """A host on which the project was cloned by hand, with the host's own .env."""
    path = project.sandbox.base / name
    subprocess.run(["git", "clone", "-q", str(project.sandbox.origin), str(path)], check=True)
    if env_file:
        (path / ".env").write_text(env_file)
    return dataclasses.replace(project, path=path)


def edit(host, path):
    with (host.path / path).open("a") as f:
        f.write("# edited on the host\n")


def on(project, name):
    return dataclasses.replace(project, path=project.sandbox.base / name)


def ended_on(host, run_id, timeout=120):
    def done():
        found = [r for r in records(host) if r["id"] == run_id]
        return found and found[0]["status"] != "started" and found[0]

    return wait_for(done, timeout, f"run {run_id} to end on its host")


def test_a_run_on_a_host_clones_runs_publishes_and_is_watched_from_the_laptop(project, sshd, slack):
    with_hosts(project, sshd)
    host_checkout(
        project, "gpu-1", env_file="".join(f"{k}={v}\n" for k, v in slack.web_api_env().items())
    )

    run = project.inv("metrics", "--host", "gpu-1")

    assert run.returncode == 0, run.output
    run_id = RUN_ID.search(run.stdout).group(1)
    assert f"follow:  inv repro.logs --run {run_id} --follow --host gpu-1" in run.stdout
    assert STARTED not in run.output  # the host's line for the laptop is read, not shown
    # Followed from the laptop as it is written, until the run ends there.
    followed = project.inv("repro.logs", "--run", run_id, "--follow", "--host", "gpu-1")
    assert followed.returncode == 0, followed.output
    assert "metrics succeeded" in followed.stdout
    ended = ended_on(on(project, "gpu-1"), run_id, timeout=5)  # ended already
    assert ended["status"] == "succeeded", ended
    # The host told the team with its own .env, and published to origin.
    assert [c.text.split(" ")[:2] for c in slack.calls("chat.postMessage")] == [
        ["metrics", "started"]
    ]
    assert "[DVC] Update model metrics" in project.origin_log()[0]
    status = project.inv("repro.status", "--host", "gpu-1")
    assert status.returncode == 0, status.output
    assert run_id in status.stdout and "succeeded" in status.stdout
    logs = project.inv("repro.logs", "--run", run_id, "--host", "gpu-1")
    assert logs.returncode == 0 and "metrics succeeded" in logs.stdout, logs.output
    assert_fresh_clone_up_to_date(project)


def test_a_login_node_over_ssh_submits_the_run_to_slurm(project, sshd, slurm):
    cluster = {"pipelines": {"metrics": {"slurm": {"partition": "debug", "time": "00:10:00"}}}}
    with_hosts(project, sshd, cluster)
    # The login node's own .env says where its cluster is (here: the test cluster).
    login = host_checkout(project, "gpu-1", env_file=f"SLURM_CONF={slurm.env['SLURM_CONF']}\n")

    run = project.inv("metrics", "--host", "gpu-1", "--slurm")

    assert run.returncode == 0, run.output
    assert "submitted to SLURM from gpu-1" in run.stdout
    run_id = RUN_ID.search(run.stdout).group(1)
    ended = ended_on(login, run_id)
    assert ended["status"] == "succeeded" and ended["job"], ended
    status = project.inv("repro.status", "--host", "gpu-1")
    assert run_id in status.stdout and "succeeded" in status.stdout, status.output


def test_a_host_without_the_project_gets_a_clone_at_its_path(project, sshd):
    with_hosts(project, sshd)

    run = project.inv("repro", "--pipeline", "metrics", "--host", "gpu-2")

    assert run.returncode == 0, run.output
    host = on(project, "gpu-2")
    assert (host.path / ".git").is_dir()
    ended = ended_on(host, RUN_ID.search(run.stdout).group(1))
    assert ended["status"] == "succeeded", ended
    assert host.git("rev-parse", "HEAD") == project.git("ls-remote", "origin", "main").split()[0]


def test_a_busy_host_makes_the_group_pick_the_next_and_cancel_stops_it_there(project, sshd):
    with_hosts(project, sshd)
    busy = host_checkout(project, "gpu-1", env_file="SANDBOX_SLOW=predict:60\n")
    first = project.inv("metrics", "--host", "gpu-1")
    assert first.returncode == 0, first.output
    first_id = RUN_ID.search(first.stdout).group(1)
    wait_for(lambda: any(r.get("pid") for r in records(busy)), 60, "the run to start on gpu-1")

    picked = project.inv("metrics", "--host", "gpus")

    assert picked.returncode == 0, picked.output
    assert "running on gpu-2" in picked.stdout
    second = ended_on(on(project, "gpu-2"), RUN_ID.search(picked.stdout).group(1))
    assert second["status"] == "succeeded", second
    # gpu-2 published: the laptop pulls, and gpu-1 still holds its run.
    project.git("pull", "-q")
    again = project.inv("metrics", "--host", "gpu-1")
    assert_one_line_error(again, f"run {first_id} (metrics) holds", "--host gpu-1")

    cancel = project.inv("repro.cancel", "--run", first_id, "--host", "gpu-1")

    assert cancel.returncode == 0, cancel.output
    assert ended_on(busy, first_id)["status"] == "cancelled"
    # What the cancelled run left goes from the laptop too; the host is free again.
    discard = project.inv("repro.discard", "--pipeline", "metrics", "--host", "gpu-1")
    assert discard.returncode == 0, discard.output
    assert busy.git("status", "--porcelain", "--untracked-files=no") == ""


def test_two_laptops_starting_on_one_host_at_once_never_share_its_checkout(project, sshd):
    """Between the host's checkout and the run's claim, the checkout is reserved:
    a teammate's start on another branch cannot move it under the first run."""
    import concurrent.futures

    with_hosts(project, sshd)
    teammate = project.clone("teammate")
    teammate.git("checkout", "-q", "-b", "exp")
    teammate.git("push", "-q", "-u", "origin", "exp")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        mine = pool.submit(project.inv, "metrics", "--host", "gpu-1")
        theirs = pool.submit(teammate.inv, "metrics", "--host", "gpu-1")
        runs = [mine.result(), theirs.result()]

    won = [r for r in runs if r.returncode == 0]
    lost = [r for r in runs if r.returncode != 0]
    assert len(won) == 1 and len(lost) == 1, [r.output for r in runs]
    assert_one_line_error(lost[0], "host gpu-1")
    run_id = RUN_ID.search(won[0].stdout).group(1)
    host = on(project, "gpu-1")
    ended = ended_on(host, run_id)
    assert ended["status"] == "succeeded", ended
    assert ended["branch"] == ("main" if won[0] is runs[0] else "exp")
    assert not (host.path / ".dvc" / "tmp" / "dvc-invoke" / "reserved").exists()


def test_two_starts_on_a_group_at_once_take_two_hosts(project, sshd):
    """Both may find gpu-1 free; the one that reserves it second goes on to gpu-2."""
    import concurrent.futures

    with_hosts(project, sshd)
    teammate = project.clone("teammate")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        mine = pool.submit(project.inv, "metrics", "--host", "gpus")
        theirs = pool.submit(teammate.inv, "repro", "--pipeline", "training", "--host", "gpus")
        runs = [mine.result(), theirs.result()]

    assert all(r.returncode == 0 for r in runs), [r.output for r in runs]
    hosts = {re.search(r"running on (gpu-\d)", r.stdout).group(1) for r in runs}
    assert hosts == {"gpu-1", "gpu-2"}
    for r in runs:
        name = re.search(r"running on (gpu-\d)", r.stdout).group(1)
        ended = ended_on(on(project, name), RUN_ID.search(r.stdout).group(1))
        assert ended["status"] == "succeeded", ended


def test_every_host_of_a_group_busy_is_one_line_naming_each(project, sshd):
    with_hosts(project, sshd)
    dirty = host_checkout(project, "gpu-1")
    edit(dirty, "metrics/predict.py")
    host_checkout(project, "gpu-2")
    (on(project, "gpu-2").path / "tasks.py").write_text("# edited on the host\n")

    run = project.inv("metrics", "--host", "gpus")

    assert_one_line_error(run, "no free host in gpus", "gpu-1: its checkout has changes", "gpu-2:")
    assert records(dirty) == [] and records(on(project, "gpu-2")) == []


def test_a_dirty_host_checkout_is_refused_and_nothing_starts(project, sshd):
    with_hosts(project, sshd)
    host = host_checkout(project, "gpu-1")
    edit(host, "metrics/predict.py")

    run = project.inv("metrics", "--host", "gpu-1")

    assert_one_line_error(
        run, "host gpu-1", "has changes (metrics/predict.py)", "commit or discard"
    )
    assert records(host) == []
    assert (host.path / "metrics/predict.py").read_text().endswith("# edited on the host\n")


def test_an_unreachable_host_is_one_line_and_nothing_starts(project, sshd):
    with_hosts(project, sshd, gone={"ssh": "root@127.0.0.1:1", "path": "/srv/ml/project"})
    before = project.origin_log()

    run = project.inv("metrics", "--host", "gone")

    assert_one_line_error(
        run, "cannot reach host gone", "Connection refused", "ssh -p 1 root@127.0.0.1 true"
    )
    assert project.origin_log() == before


def test_a_refused_key_is_one_line_and_nothing_starts(project, sshd):
    # Straight to sshd's address, without the alias's key: no key it accepts.
    ssh = f"{sshd.ssh} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    target = f"nobody-here@127.0.0.1:{sshd.port}"
    with_hosts(project, sshd, {"ssh": ssh}, nokey={"ssh": target, "path": "/srv/ml/project"})

    run = project.inv("metrics", "--host", "nokey")

    assert_one_line_error(run, "cannot reach host nokey", "Permission denied", "keys")
    assert not any(on(project, n).path.exists() for n in ("gpu-1", "gpu-2"))


def test_a_host_whose_python_has_no_dvc_invoke_is_one_line(project, sshd):
    with_hosts(
        project,
        sshd,
        bare={
            "ssh": "gpu-1",
            "path": str(project.sandbox.base / "bare"),
            "python": "/usr/bin/python3",
        },
    )

    run = project.inv("metrics", "--host", "bare")

    assert_one_line_error(run, "host bare", "/usr/bin/python3 has no dvc_invoke", "pip install")
    assert not (project.sandbox.base / "bare").exists()


def test_a_commit_the_host_cannot_fetch_is_refused_on_the_laptop(project, sshd):
    with_hosts(project, sshd)
    (project.path / "notes.txt").write_text("not pushed\n")
    project.git("add", "notes.txt")
    project.git("commit", "-qm", "Local only")

    run = project.inv("metrics", "--host", "gpu-1")

    assert_one_line_error(run, "is not on origin/main yet", "git push first")
    assert not on(project, "gpu-1").path.exists()


def test_a_laptop_behind_its_upstream_is_refused_before_the_host_moves(project, sshd):
    with_hosts(project, sshd)
    host = host_checkout(project, "gpu-1")
    teammate = project.clone("teammate")
    (teammate.path / "notes.txt").write_text("a teammate's commit\n")
    teammate.git("add", "notes.txt")
    teammate.git("commit", "-qm", "A teammate's commit")
    teammate.git("push", "-q")
    at = host.git("rev-parse", "HEAD")

    run = project.inv("metrics", "--host", "gpu-1")

    assert_one_line_error(run, "1 commit(s) behind origin/main", "git pull first")
    assert host.git("rev-parse", "HEAD") == at


def test_a_hosts_commands_use_its_python_whatever_its_bashrc_says(sshd, tmp_path):
    # The test sshd's ~/.bashrc puts a decoy python first in every bash that sshd
    # starts (as `pyenv init` does), and bash takes each `bash -c` of a run for one.
    bare = subprocess.run(
        ["ssh", "-F", str(sshd.ssh_config), "gpu-1", "python -c 1"], capture_output=True, text=True
    )
    assert bare.returncode == 97 and "decoy" in bare.stderr  # the decoy is there
    host = Settings.from_mapping(
        {"hosts": {"h": {"ssh": "gpu-1", "path": str(tmp_path), "python": sys.executable}}}
    ).hosts["h"]
    probe = "import invoke; invoke.Context().run('command -v python', hide=False)"
    line = in_checkout(host, "", f"{sys.executable} -c {shlex.quote(probe)}")

    res = subprocess.run(
        ["ssh", "-F", str(sshd.ssh_config), "gpu-1", line], capture_output=True, text=True
    )

    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(Path(sys.executable).parent / "python")


def test_dry_shows_the_remote_commands_and_starts_nothing(project, sshd):
    with_hosts(project, sshd)

    run = project.inv("--dry", "metrics", "--host", "gpu-1")

    assert run.returncode == 0, run.output
    assert "dvc_invoke host checkout main" in run.stdout
    assert "-m invoke metrics --detach" in run.stdout
    assert not on(project, "gpu-1").path.exists()


# -- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hosts_config, fragment",
    [
        ({"a": {"ssh": "-oProxyCommand=touch /tmp/x", "path": "/p"}}, "an ssh alias"),
        ({"a": {"ssh": "a b", "path": "/p"}}, "an ssh alias"),
        ({"a": {"ssh": "a", "path": "relative"}}, "an absolute path"),
        ({"a": {"ssh": "a", "path": "/p", "python": "py; rm -rf ~"}}, "a command name or a path"),
        ({"a": {"ssh": "a"}}, "dvc_invoke.hosts.a.path is missing"),
        ({"a": {"ssh": "a", "path": "/p", "gpus": 2}}, "dvc_invoke.hosts.a.gpus is not a setting"),
        ({"a;b": {"ssh": "a", "path": "/p"}}, "named with letters"),
    ],
)
def test_host_settings_are_validated_naming_the_key(hosts_config, fragment):
    with pytest.raises(DvcInvokeError, match=re.escape(fragment)):
        Settings.from_mapping({"hosts": hosts_config})


def test_a_group_names_only_hosts():
    with pytest.raises(DvcInvokeError, match="names 'gpu-9', which is not a host"):
        Settings.from_mapping(
            {"hosts": {"gpu-1": {"ssh": "gpu-1", "path": "/p"}}, "host_groups": {"g": ["gpu-9"]}}
        )


@pytest.mark.parametrize("colour", ["NO_COLOR", "FORCE_COLOR"])
def test_a_hosts_status_is_coloured_as_the_laptops_console(project, sshd, colour):
    with_hosts(project, sshd)
    host = host_checkout(project, "gpu-1")
    host.inv("metrics")  # a run of the host's (its commit fails there: no git identity)
    assert records(host)
    env = {"NO_COLOR": "", "FORCE_COLOR": "", colour: "1"}

    status = project.inv("repro.status", "--host", "gpu-1", env=env)  # stdout: a pipe

    assert status.returncode == 0, status.output
    assert records(host)[0]["id"] in status.stdout
    if colour == "NO_COLOR":
        assert status.output.count("\x1b[") == 0, status.output
    else:  # the host's own table, its header in bold (not only the ssh command's echo here)
        header = [ln for ln in status.stdout.splitlines() if "PIPELINE" in ln]
        assert header and "\x1b[1m" in header[0], status.stdout
