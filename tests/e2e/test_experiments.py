"""Experiments: a sweep on DVC's real queue and workers, its table, sharing it, and
publishing the best as a run; cancelled, lost, refused.

End to end: DVC's get-started layout (train.bias swept, the gate on eval/metrics.json:acc),
its origin and DVC remote, the stand-in Slack."""

from __future__ import annotations

import os
import signal
import sys

import psutil
import yaml
from helpers import assert_fresh_clone_up_to_date, assert_one_line_error, records, wait_for

DIVERGES = "if bias >= 9:\n    sys.exit(f'diverged: bias {bias}')\n"


def _sweepable(project, bias=0.2):
    """The project published at train.bias ``bias``, its training diverging at 9 or more."""
    train = project.path / "src" / "train.py"
    text = train.read_text().replace("import json\n", "import json\nimport sys\n", 1)
    text = text.replace(
        'reader = csv.DictReader(open("data/features/train.csv"))',
        DIVERGES + 'reader = csv.DictReader(open("data/features/train.csv"))',
    )
    train.write_text(text)
    params = project.path / "params.yaml"
    params.write_text(params.read_text().replace("bias: 0.0", f"bias: {bias}"))
    project.git("commit", "-qam", f"Training at bias {bias}, stopped when it diverges")
    project.inv("train", "--skip", "slack")  # refused by its gate: worse on purpose
    done = project.inv("publish", "--pipeline", "train", "--accept")
    assert done.returncode == 0, done.output
    return project


def _sweep(project, *args, env=None):
    """``inv exp.run --pipeline train ARGS --skip slack``."""
    return project.inv("exp.run", "--pipeline", "train", *args, "--skip", "slack", env=env)


def _sweep_record(project):
    return next(r for r in records(project) if r.get("sweep") is not None)


def _by_bias(record):
    return {e["params"]["params.yaml:train.bias"]: e for e in record["experiments"]}


def _queue_status(project):
    return project.sh(f"{sys.executable} -m dvc queue status")


def _exp_processes(root):
    """DVC's queue workers and experiment runs of the project at ``root``, and the
    stages they ran (in DVC's temporary copies under .dvc/tmp/exps)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            line = " ".join(proc.info["cmdline"] or ())
            cwd = proc.info["cwd"] or ""
            ours = "queue-worker" in line or "exec-run" in line
            if (
                ours
                and str(root) in line + cwd
                or cwd.startswith(str(root / ".dvc" / "tmp" / "exps"))
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_a_sweep_is_ranked_told_shared_and_its_best_published(canonical, slack):
    project = _sweepable(canonical)
    env = slack.web_api_env()

    run = project.inv(
        "exp.run", "--pipeline", "train", "-S", "train.bias=0.0,0.1,0.4,9", "--jobs", "2", env=env
    )

    assert run.returncode == 0, run.output
    record = _sweep_record(project)
    assert record["status"] == "succeeded"
    exps = _by_bias(record)
    assert {b: e["state"] for b, e in exps.items()} == {
        0.0: "success",
        0.1: "success",
        0.4: "success",
        9: "failed",
    }
    assert exps[9]["step"] == "train" and "diverged: bias 9" in exps[9]["log_tail"]
    assert (
        exps[0.0]["metrics"]["eval/metrics.json:acc"]
        > exps[0.4]["metrics"]["eval/metrics.json:acc"]
    )
    best = exps[0.0]["name"]
    assert record["sweep"]["best"] == best
    assert record["sweep"]["baseline"]["params"] == {"params.yaml:train.bias": 0.2}
    # The console's table: the baseline, then the best first, the failed last.
    table = [
        ln for ln in run.stdout.splitlines() if ln.startswith(("baseline", best, exps[9]["name"]))
    ]
    assert table[0].startswith("baseline") and table[1].startswith(best), run.stdout
    assert "failed at train" in table[-1]
    assert f"best {best}" in run.stdout

    # Slack: one message, started then updated to the ranked table; the failure in its thread.
    posts = [p for p in slack.calls("chat.postMessage") if not p.body.get("thread_ts")]
    assert len(posts) == 1 and "train sweep started" in posts[0].text
    end = slack.calls("chat.update")[-1]
    assert "train sweep succeeded" in end.text and f"best {best}" in end.text
    shown = end.blocks_text
    assert shown.index("baseline") < shown.index(best) < shown.index(exps[9]["name"])
    assert "failed at train" in shown
    thread = [p for p in slack.calls("chat.postMessage") if p.body.get("thread_ts")]
    assert len(thread) == 1 and exps[9]["name"] in thread[0].text
    assert "diverged: bias 9" in thread[0].blocks_text

    # The plots the best one changed, as PNGs in the thread.
    (picture,) = slack.files
    assert picture.title == "eval/plots/errors.json" and picture.data.startswith(b"\x89PNG")
    assert picture.thread_ts is not None and picture.thread_ts == thread[0].body["thread_ts"]
    assert "plots changed: eval/plots/errors.json" in shown

    # Watched as a run: its row, and each experiment's own log.
    status = project.inv("repro.status")
    assert "sweep: 4 experiments: 3 succeeded, 1 failed" in status.stdout, status.output
    log = project.inv("repro.logs", "--run", record["id"], "--exp", exps[9]["name"])
    assert log.returncode == 0 and "diverged: bias 9" in log.stdout, log.output

    # The same ranking from exp.show, straight from DVC's refs.
    shown = project.inv("exp.show", "--pipeline", "train")
    assert shown.returncode == 0, shown.output
    rows = [
        ln.split()[0]
        for ln in shown.stdout.splitlines()
        if ln.split()[:1] and ln.split()[0] in {"baseline", *(e["name"] for e in exps.values())}
    ]
    assert rows == ["baseline", best, exps[0.1]["name"], exps[0.4]["name"], exps[9]["name"]], (
        shown.stdout
    )

    # Shared: the team sees the three that succeeded on origin.
    teammate = project.clone("teammate")
    listed = teammate.sh(f"{sys.executable} -m dvc exp list origin --name-only")
    assert set(listed.split()) == {exps[b]["name"] for b in (0.0, 0.1, 0.4)}

    # A worse one is refused before anything is applied.
    head = project.git("rev-parse", "HEAD").strip()
    worse = project.inv("exp.publish", "--name", exps[0.4]["name"], "--pipeline", "train")
    assert_one_line_error(worse, "worse", "nothing was applied", "--accept")
    assert project.git("rev-parse", "HEAD").strip() == head
    assert project.git("status", "--porcelain") == ""

    # The best, published as a run: its name in the commit, on Slack, and a fresh clone up to date.
    published = project.inv("exp.publish", "--best", "--pipeline", "train", env=env)
    assert published.returncode == 0, published.output
    assert project.origin_log()[0] == f"[DVC] Publish experiment {best} (train)"
    assert_fresh_clone_up_to_date(project)
    clone_params = yaml.safe_load((project.path.parent / "check-clone" / "params.yaml").read_text())
    assert clone_params["train"]["bias"] == 0.0
    told = slack.calls("chat.postMessage")[-1]
    assert "train succeeded" in told.text and f"experiment {best}" in told.text
    assert "train.bias" in told.blocks_text

    # One made on the commit before is refused: never applied over newer code.
    older = project.inv("exp.publish", "--name", exps[0.1]["name"], "--pipeline", "train")
    line = assert_one_line_error(older, f"was made on {head[:7]}", "nothing was applied")
    assert "exp.run" in line
    assert project.git("status", "--porcelain") == ""


def test_a_cancelled_sweep_leaves_no_experiment_queued_or_running(canonical):
    project = _sweepable(canonical)
    env = {"SANDBOX_SLOW": "train:60"}

    started = project.inv(
        "exp.run",
        "--pipeline",
        "train",
        "-S",
        "train.bias=0.0,0.1,0.3",
        "--detach",
        "--skip",
        "slack",
        env=env,
    )
    assert started.returncode == 0, started.output
    record = wait_for(
        lambda: (
            (r := _sweep_record(project))
            and any(e["state"] == "running" for e in r["experiments"])
            and r
        ),
        timeout=120,
        what="an experiment running",
    )

    cancel = project.inv("repro.cancel", "--run", record["id"])

    assert cancel.returncode == 0, cancel.output
    ended = wait_for(
        lambda: (r := _sweep_record(project))["status"] != "started" and r, 60, "the sweep's end"
    )
    assert ended["status"] == "cancelled"
    assert {e["state"] for e in ended["experiments"]} == {"cancelled"}
    status = _queue_status(project)
    assert "Queued" not in status and "Running" not in status, status
    wait_for(lambda: not _exp_processes(project.path), 30, "DVC's workers and experiments to end")


def test_an_experiment_whose_worker_died_is_lost(canonical):
    project = _sweepable(canonical)

    started = project.inv(
        "exp.run",
        "--pipeline",
        "train",
        "-S",
        "train.bias=0.1",
        "--detach",
        "--skip",
        "slack",
        env={"SANDBOX_SLOW": "train:60"},
    )
    assert started.returncode == 0, started.output
    running = wait_for(
        lambda: (
            (r := _sweep_record(project))
            and r["experiments"]
            and r["experiments"][0].get("pid")
            and r
        ),
        timeout=120,
        what="the experiment's process",
    )
    pid = running["experiments"][0]["pid"]
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # its DVC worker, and the experiment with it

    ended = wait_for(
        lambda: (r := _sweep_record(project))["status"] != "started" and r, 60, "the sweep's end"
    )
    (exp,) = ended["experiments"]
    assert exp["state"] == "lost" and f"pid {pid}" in exp["reason"]
    assert ended["status"] == "failed" and ended["reason"] == "no experiment succeeded"
    project.sh(f"{sys.executable} -m dvc queue remove --all -q", check=False)


def test_bad_sweeps_and_publishes_are_one_line_each(canonical):
    project = canonical

    params = project.path / "params.yaml"
    params.write_text(params.read_text() + "report:\n  title: Errors\n")
    project.sh("git commit -qam 'A title for the report' && git push -q")
    unread = _sweep(project, "-S", "report.title=a,b")
    assert_one_line_error(
        unread, "no stage of train reads params.yaml:report.title", "nothing was queued"
    )
    absent = _sweep(project, "-S", "prepare.seed=1,2")
    assert_one_line_error(absent, "no param params.yaml:prepare.seed", "+KEY=VALUE")

    unknown = project.inv("exp.run", "--pipeline", "train", "-S", "train.nope=1", "--skip", "slack")
    assert_one_line_error(unknown, "no param params.yaml:train.nope", "+KEY=VALUE")

    nothing = project.inv("exp.run", "--pipeline", "train", "--skip", "slack")
    assert_one_line_error(nothing, "-S")

    missing = project.inv("exp.publish", "--name", "lucky-bear", "--pipeline", "train")
    assert_one_line_error(missing, "no experiment lucky-bear", "dvc exp pull origin lucky-bear")

    no_rank = project.inv("exp.publish", "--best", "--pipeline", "metrics")
    assert_one_line_error(no_rank, "no succeeded experiment")

    project.sh(f"{sys.executable} -m dvc exp run --queue -q -S train.bias=5 --name by-hand")
    queued = project.inv(
        "exp.run", "--pipeline", "train", "-S", "train.bias=1,2", "--skip", "slack"
    )
    assert_one_line_error(queued, "queued by hand: by-hand", "dvc queue remove --queued")
    project.sh(f"{sys.executable} -m dvc queue remove --queued -q")

    project.git("commit", "--allow-empty", "-qm", "Not pushed yet")
    ahead = project.inv("exp.run", "--pipeline", "train", "-S", "train.bias=1,2", "--skip", "slack")
    assert_one_line_error(ahead, "HEAD is 1 commit ahead of origin/main", "git push")
    project.git("reset", "-q", "--hard", "HEAD~1")

    (project.path / "src" / "train.py").write_text("# edited\n")
    dirty = project.inv("exp.run", "--pipeline", "train", "-S", "train.bias=1,2", "--skip", "slack")
    assert_one_line_error(dirty, "src/train.py")
    assert "Queued" not in _queue_status(project)


STANDIN_SMI = """#!/bin/sh
# A stand-in nvidia-smi: two GPUs; those named in $STANDIN_GPUS_BUSY run a process.
case "$*" in
  *--query-gpu=*) printf '0, GPU-aaaa, NVIDIA Stand-in 80GB\\n1, GPU-bbbb, NVIDIA Stand-in 80GB\\n' ;;
  *--query-compute-apps=*) for g in $STANDIN_GPUS_BUSY; do printf '%s, 4242, 1000\\n' "$g"; done ;;
  *) exit 2 ;;
esac
"""


def test_one_experiment_per_free_gpu_each_worker_pinned_to_its_own(canonical, tmp_path):
    project = _sweepable(canonical)
    bin_dir = tmp_path / "gpu-bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(STANDIN_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SANDBOX_SLOW": "train:6"}

    run = project.inv(
        "exp.run",
        "--pipeline",
        "train",
        "-S",
        "train.bias=0.0,0.1",
        "--gpus",
        "all",
        "--skip",
        "slack",
        "--no-share",
        env=env,
    )

    assert run.returncode == 0, run.output
    record = _sweep_record(project)
    assert record["sweep"]["gpus"] == [0, 1] and record["sweep"]["jobs"] == 2
    # Each experiment ran in its own worker, pinned to its own GPU.
    assert sorted(e["gpu"] for e in record["experiments"]) == ["0", "1"], run.stdout
    assert "CUDA_VISIBLE_DEVICES=1 " in run.stdout  # the second worker's start, as echoed

    # A busy GPU is left out; none free, or one that is not there, is one line.
    busy = {**env, "STANDIN_GPUS_BUSY": "GPU-aaaa GPU-bbbb"}
    none_free = _sweep(project, "-S", "train.bias=0.3", "--gpus", "all", env=busy)
    assert_one_line_error(none_free, "no free GPU here", "0 (NVIDIA Stand-in 80GB)")
    missing = _sweep(project, "-S", "train.bias=0.3", "--gpus", "0,5", env=env)
    assert_one_line_error(missing, "no GPU 5 here")
    one_busy = {**env, "STANDIN_GPUS_BUSY": "GPU-aaaa", "SANDBOX_SLOW": "train:3"}
    one_free = _sweep(project, "-S", "train.bias=0.3", "--gpus", "all", "--no-share", env=one_busy)
    assert one_free.returncode == 0, one_free.output
    latest_sweep = _sweep_record(project)
    assert latest_sweep["sweep"]["gpus"] == [1]
    assert [e["gpu"] for e in latest_sweep["experiments"]] == ["1"]


def test_a_sweep_on_a_gpu_host_is_watched_from_the_laptop_and_shared_to_origin(canonical, sshd):
    from .test_hosts import RUN_ID, ended_on, host_checkout, on, with_hosts

    project = _sweepable(canonical)
    with_hosts(project, sshd)
    host_checkout(project, "gpu-1")

    run = _sweep(project, "-S", "train.bias=0.0,0.1", "--jobs", "2", "--host", "gpu-1")

    assert run.returncode == 0, run.output
    run_id = RUN_ID.search(run.stdout).group(1)
    assert f"inv repro.cancel --run {run_id} --host gpu-1" in run.stdout
    followed = project.inv("repro.logs", "--run", run_id, "--follow", "--host", "gpu-1")
    assert followed.returncode == 0, followed.output
    ended = ended_on(on(project, "gpu-1"), run_id)
    assert ended["status"] == "succeeded" and ended["host"] != "", ended
    assert "train sweep succeeded" in followed.stdout
    status = project.inv("repro.status", "--host", "gpu-1")
    assert "sweep: 2 experiments: 2 succeeded" in status.stdout, status.output
    # Shared from the host: the laptop sees them on origin.
    listed = project.sh(f"{sys.executable} -m dvc exp list origin --name-only")
    assert set(listed.split()) == {e["name"] for e in ended["experiments"]}
