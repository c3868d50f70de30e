"""A sweep spread over a group of GPU hosts: real sshd on 127.0.0.1 (hosts gpu-1 and
gpu-2, each a checkout of its own), real git and DVC, a stand-in ``nvidia-smi`` with
two GPUs on the hosts' PATH, the stand-in Slack; origin is where the hosts meet."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys

import psutil
import pytest
from helpers import assert_fresh_clone_up_to_date, assert_one_line_error, records, wait_for

from .test_experiments import STANDIN_SMI, _exp_processes, _sweepable
from .test_hosts import ended_on, host_checkout, on, with_hosts

REFS = "refs/dvc-invoke/sweeps/"


@pytest.fixture
def gpu_sshd(tmp_path, isolated_environment):
    """An sshd whose sessions find a stand-in nvidia-smi (two GPUs) first on PATH."""
    from sshd_server import Sshd, available

    if available():
        pytest.skip(available())
    bin_dir = tmp_path / "gpu-bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(STANDIN_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    identity = {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "dvc-invoke host"), ("EMAIL", "host@dvc-invoke.invalid"))
    }
    env = {**identity, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    server = Sshd(tmp_path / "sshd").start(env=env)
    yield server
    server.stop()


def _spread(project, *args, env=None):
    return project.inv(
        "exp.run", "--pipeline", "train", *args, "--gpus", "all", "--host", "gpus", env=env
    )


def _run_ids(output):
    return dict(re.findall(r"running on (gpu-\d) as run (\S+)", output))


def _origin_refs(project):
    out = subprocess.run(
        ["git", "ls-remote", str(project.sandbox.origin), REFS + "*"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(line.split("/")[-1] for line in out.splitlines())


def _unreachable(sshd, alias):
    """``alias`` made a host that does not answer (its machine gone)."""
    text = sshd.ssh_config.read_text()
    head, _, rest = text.partition(f"Host {alias}\n")
    body, sep, tail = rest.partition("Host ")
    body = body.replace(f"Port {sshd.port}", "Port 9")  # nothing listens on port 9
    sshd.ssh_config.write_text(f"{head}Host {alias}\n{body}{sep}{tail}")


def _reachable(sshd, alias):
    sshd.ssh_config.write_text(
        sshd.ssh_config.read_text().replace("Port 9\n", f"Port {sshd.port}\n")
    )


def test_a_grid_spread_over_two_hosts_one_gone_midway_is_told_by_the_laptop(
    canonical, gpu_sshd, slack
):
    project = _sweepable(canonical)
    with_hosts(project, gpu_sshd)
    env_file = "".join(f"{k}={v}\n" for k, v in slack.web_api_env().items())
    # Each training a few seconds on gpu-1 (its GPU seen while it runs); gpu-2's is slow:
    host_checkout(project, "gpu-1", env_file=env_file + "SANDBOX_SLOW=train:3\n")
    # gpu-2's training is slow: it is still running when its machine goes away.
    host_checkout(project, "gpu-2", env_file=env_file + "SANDBOX_SLOW=train:90\n")

    run = _spread(project, "-S", "train.bias=0.0,0.1,0.4,0.5,0.6,0.7", "--name", "grid")

    assert run.returncode == 0, run.output
    ids = _run_ids(run.stdout)
    assert set(ids) == {"gpu-1", "gpu-2"}, run.stdout
    assert "share 1/2 (3 experiments: grid-1, grid-3, grid-5) running on gpu-1" in run.stdout
    assert "share 2/2 (3 experiments: grid-2, grid-4, grid-6) running on gpu-2" in run.stdout
    status = project.inv("repro.status")
    assert (
        f"sweep grid (train, 6 experiments) spread over gpu-1 (run {ids['gpu-1']}),"
        f" gpu-2 (run {ids['gpu-2']})" in status.stdout
    ), status.output
    gpu2 = on(project, "gpu-2")

    def running_there():
        found = [r for r in records(gpu2) if r["id"] == ids["gpu-2"]]
        return found and any(e["state"] == "running" for e in found[0]["experiments"]) and found[0]

    taken = wait_for(running_there, 120, "gpu-2's share to run")
    # gpu-2 goes away (two experiments running, one queued): its sweep and DVC's
    # workers killed, its machine unreachable.
    os.killpg(taken["pgid"], signal.SIGKILL)
    for proc in _exp_processes(gpu2.path):
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _unreachable(gpu_sshd, "gpu-2")

    ended = ended_on(on(project, "gpu-1"), ids["gpu-1"], timeout=180)
    assert ended["status"] == "succeeded", ended
    assert {e["name"]: e["state"] for e in ended["experiments"]} == {
        "grid-1": "success",
        "grid-3": "success",
        "grid-5": "success",
    }
    # Each experiment on a GPU of the host's two (the stand-in nvidia-smi's), both used.
    assert {e["gpu"] for e in ended["experiments"]} == {"0", "1"}, ended
    assert ended["sweep"]["part"] == [1, 2] and not ended["sweep"].get("collected")
    assert _origin_refs(project) == ["part-1"]  # told on origin; not collected: gpu-2 is gone

    shown = project.inv("exp.show", "--pipeline", "train", env=slack.web_api_env())

    assert shown.returncode == 0, shown.output
    assert "share 2: host gpu-2 is gone" in shown.output, shown.output
    told = next(r for r in records(project) if r.get("sweep"))
    states = {e["name"]: e["state"] for e in told["experiments"]}
    assert states == {
        "grid-1": "success",
        "grid-2": "lost",
        "grid-3": "success",
        "grid-4": "lost",
        "grid-5": "success",
        "grid-6": "lost",
    }
    lost = next(e for e in told["experiments"] if e["name"] == "grid-2")
    assert "host gpu-2 is gone" in lost["reason"] and lost["params"] == {
        "params.yaml:train.bias": 0.1
    }
    assert told["status"] == "succeeded" and told["sweep"]["best"] == "grid-1"
    assert _origin_refs(project) == ["collected", "part-1"]
    # The table is on Slack once, with the lost ones; the laptop has the experiments.
    tables = [c.text for c in slack.calls("chat.postMessage") if "6 experiments" in c.text]
    assert len(tables) == 1 and "3 lost" in tables[0], tables
    assert tables[0].startswith("train sweep grid (over gpu-1, gpu-2) succeeded after")
    assert " after 0s" not in tables[0]  # from the spread's start, not from the telling
    replies = [c.text for c in slack.calls("chat.postMessage") if c.body.get("thread_ts")]
    assert any("grid-2 lost" in r and "host gpu-2 is gone" in r for r in replies), replies
    shares = [c.text for c in slack.calls("chat.update")]
    assert any(t.startswith("train sweep grid (share 1/2) succeeded") for t in shares), shares
    assert "could not" not in shown.output, shown.output
    # Fetched here: `exp.show` lists them under HEAD, as DVC has them.
    assert "experiments on main" in shown.stdout, shown.output
    assert "grid-1" in shown.stdout.split("experiments on main")[1], shown.output
    again = project.inv("exp.show", "--pipeline", "train")
    assert again.returncode == 0 and "gone" not in again.output, again.output
    assert "spread over" not in project.inv("repro.status").stdout  # told: no longer pending
    # The best, made on gpu-1 and fetched without its data, published from the laptop.
    published = project.inv("exp.publish", "--best", "--pipeline", "train")
    assert published.returncode == 0, published.output
    assert "[DVC] Publish experiment grid-1 (train)" in project.origin_log()[0]
    assert_fresh_clone_up_to_date(project)

    # gpu-2 unreachable at the start: gpu-1 takes the whole grid, and tells it.
    alone = _spread(project, "-S", "train.bias=0.6,0.7", "--name", "alone")
    assert alone.returncode == 0, alone.output
    assert "gpu-2: cannot reach host gpu-2" in alone.stdout, alone.output
    assert "the other hosts take its share" in alone.stdout
    assert "share 1/1 (2 experiments: alone-1, alone-2) running on gpu-1" in alone.stdout
    ended = ended_on(on(project, "gpu-1"), _run_ids(alone.stdout)["gpu-1"], timeout=180)
    assert ended["sweep"].get("collected") and len(ended["experiments"]) == 2, ended

    # gpu-2 back: the experiment its killed share left queued in DVC's queue is
    # removed (nobody's), and its new share runs.
    _reachable(gpu_sshd, "gpu-2")
    (gpu2.path / ".env").write_text(env_file)
    back = _spread(project, "-S", "train.bias=0.8,0.9", "--name", "back")
    assert back.returncode == 0, back.output
    ids = _run_ids(back.stdout)
    ends = {h: ended_on(on(project, h), ids[h], timeout=180) for h in ("gpu-1", "gpu-2")}
    assert [e["status"] for e in ends.values()] == ["succeeded", "succeeded"], ends
    # (grid-4 too, when the kill came before DVC's second worker took it)
    removed = re.search(
        r"gpu-2: DVC's queue held (.+) of an earlier sweep that ended: removed", back.output
    )
    assert removed and "grid-6" in removed.group(1), back.output
    assert "grid-6" not in gpu2.sh(f"{sys.executable} -m dvc queue status")
    assert sum(bool(r["sweep"].get("collected")) for r in ends.values()) == 1, ends


def test_a_grid_spread_over_two_hosts_is_told_once_by_the_last_to_finish(
    canonical, gpu_sshd, slack
):
    project = _sweepable(canonical)
    with_hosts(project, gpu_sshd)
    env_file = "".join(f"{k}={v}\n" for k, v in slack.web_api_env().items())
    for host in ("gpu-1", "gpu-2"):
        host_checkout(project, host, env_file=env_file)

    run = _spread(project, "-S", "train.bias=0.0,0.1,9")

    assert run.returncode == 0, run.output
    ids = _run_ids(run.stdout)
    ends = {h: ended_on(on(project, h), ids[h], timeout=180) for h in ("gpu-1", "gpu-2")}
    collected = [h for h, r in ends.items() if r["sweep"].get("collected")]
    assert len(collected) == 1, ends
    whole = ends[collected[0]]
    names = sorted(e["name"] for e in whole["experiments"])
    assert len(names) == 3 and names[0].startswith("train-"), whole
    by_bias = {e["params"]["params.yaml:train.bias"]: e for e in whole["experiments"]}
    assert by_bias[9]["state"] == "failed" and "diverged" in by_bias[9]["log_tail"]
    assert {by_bias[0.0]["state"], by_bias[0.1]["state"]} == {"success"}
    assert _origin_refs(project) == ["collected", "part-1", "part-2"]
    listed = project.sh(f"{sys.executable} -m dvc exp list origin --name-only")
    assert sorted(listed.split()) == sorted(
        e["name"] for e in whole["experiments"] if e["state"] == "success"
    )
    # Slack: each share's message, and the whole table once (with its failure in the thread).
    whole_tables = [c for c in slack.calls("chat.update") if "3 experiments" in c.text]
    assert len(whole_tables) == 1, [c.text for c in slack.calls("chat.update")]
    assert "2 experiments pushed to origin by their hosts" in json.dumps(whole_tables[0].body)
    replies = [c for c in slack.calls("chat.postMessage") if "diverged" in json.dumps(c.body)]
    assert replies, "the failed experiment's log in the thread"
    # The laptop: told already, it fetches them.
    shown = project.inv("exp.show", "--pipeline", "train")
    assert shown.returncode == 0, shown.output
    assert (
        f"told by {collected[0]}: 3 experiments" in shown.stdout
        and by_bias[0.0]["name"] in shown.stdout
    ), shown.output

    # Bad input, one line each, nothing started.
    clash = _spread(project, "-S", "train.bias=0.2", "--name", names[0].rsplit("-", 1)[0])
    assert_one_line_error(clash, "exist on this commit already")
    no_share = _spread(project, "-S", "train.bias=0.2", "--no-share")
    assert_one_line_error(no_share, "--no-share", "always shared")
    on_slurm = project.inv(
        "exp.run", "--pipeline", "train", "-S", "train.bias=0.2", "--host", "gpus", "--slurm"
    )
    assert_one_line_error(on_slurm, "--slurm with --host gpus", "--host NAME --slurm")
    unread = project.inv(
        "exp.run", "--pipeline", "metrics", "-S", "train.bias=0.2", "--host", "gpus"
    )
    assert_one_line_error(unread, "no stage of metrics reads params.yaml:train.bias", "nothing was")
    dry = project.inv(
        "--dry", "exp.run", "--pipeline", "train", "-S", "train.bias=0.2,0.3", "--host", "gpus"
    )
    assert dry.returncode == 0, dry.output
    assert re.search(r"share 1/2 \(train-\w+-1\) on gpu-1", dry.stdout), dry.stdout
    assert re.search(r"share 2/2 \(train-\w+-2\) on gpu-2", dry.stdout), dry.stdout
    assert "dry run: nothing was started" in dry.stdout
    assert _origin_refs(project) == ["collected", "part-1", "part-2"]  # nothing more
    bad_part = project.inv("exp.run", "-S", "train.bias=0.2", "--part", "3/2", "--name", "x")
    assert_one_line_error(bad_part, "--part '3/2'")

    # A share its host refuses (its main has a commit of its own): the others run
    # on; the refused share's experiments are lost at the laptop's next look.
    on(project, "gpu-2").sh("git -c user.name=h -c user.email=h@h commit -q --allow-empty -m own")
    half = _spread(project, "-S", "train.bias=0.6,0.7", "--name", "half")
    assert_one_line_error(half, "share 2/2 did not start", "does not fast-forward", "others run on")
    assert "--part 2/2 --host gpu-2" in half.output  # how to start it again
    ended_on(on(project, "gpu-1"), _run_ids(half.stdout)["gpu-1"], timeout=180)
    shown = project.inv("exp.show", "--pipeline", "train")
    assert shown.returncode == 0, shown.output
    assert "share 2: it did not start on gpu-2" in shown.output, shown.output
    told = next(r for r in records(project) if r.get("sweep", {}).get("name") == "half")
    assert {e["name"]: e["state"] for e in told["experiments"]} == {
        "half-1": "success",
        "half-2": "lost",
    }


def test_a_share_whose_host_did_not_answer_is_picked_up_when_it_tells_late(
    canonical, gpu_sshd, slack
):
    project = _sweepable(canonical)
    with_hosts(project, gpu_sshd)
    env_file = "".join(f"{k}={v}\n" for k, v in slack.web_api_env().items())
    host_checkout(project, "gpu-1", env_file=env_file)
    host_checkout(project, "gpu-2", env_file=env_file + "SANDBOX_SLOW=train:25\n")

    run = _spread(project, "-S", "train.bias=0.0,0.1", "--name", "late")
    assert run.returncode == 0, run.output
    ids = _run_ids(run.stdout)
    _unreachable(gpu_sshd, "gpu-2")  # its network gone; its share runs on
    ended_on(on(project, "gpu-1"), ids["gpu-1"], timeout=120)

    dry = project.inv("--dry", "exp.show", "--pipeline", "train", env=slack.web_api_env())
    assert dry.returncode == 0 and "gone" not in dry.output, dry.output
    assert _origin_refs(project) == ["part-1"]  # a dry look tells nothing, pushes nothing
    shown = project.inv("exp.show", "--pipeline", "train", env=slack.web_api_env())
    assert "share 2: host gpu-2 is gone" in shown.output, shown.output
    told = next(r for r in records(project) if r.get("sweep", {}).get("name") == "late")
    assert {e["name"]: e["state"] for e in told["experiments"]} == {
        "late-1": "success",
        "late-2": "lost",
    }
    status = project.inv("repro.status")
    assert "told here without share(s) 2 (their host did not answer)" in status.stdout

    # gpu-2's share ends, finds the table told without it, and tells it anyway.
    share = ended_on(on(project, "gpu-2"), ids["gpu-2"], timeout=180)
    assert share["status"] == "succeeded", share
    log = open(share["log"]).read()
    assert "was told without this share" in log and "late-2 succeeded" in log, log[-2000:]

    again = project.inv("exp.show", "--pipeline", "train", env=slack.web_api_env())
    assert again.returncode == 0, again.output
    assert "share 2 told late by gpu-2: 1 experiment: 1 succeeded" in again.stdout, again.output
    amended = next(r for r in records(project) if r["id"] == told["id"])
    assert {e["name"]: e["state"] for e in amended["experiments"]} == {
        "late-1": "success",
        "late-2": "success",
    }
    assert "late-2" in again.stdout.split("experiments on main")[1]  # fetched here
    assert any("told late by gpu-2" in c.text for c in slack.calls("chat.postMessage"))
    assert "spread over" not in project.inv("repro.status").stdout
    assert "told here without" not in project.inv("repro.status").stdout
