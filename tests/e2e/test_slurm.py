"""Runs on a SLURM cluster: a real one started for the tests (slurm_cluster.py)."""

from __future__ import annotations

import json
import os

import pytest
from helpers import (
    assert_fresh_clone_up_to_date,
    assert_one_line_error,
    latest,
    wait_ended,
    wait_for,
)

SLOW = {"SANDBOX_SLOW": "predict:30"}


def job_processes(slurm, job):
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            env = proc.environ()
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if env.get("SLURM_JOB_ID") == job and env.get("SLURM_CLUSTER_NAME") == slurm.node:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def kill_job_processes(slurm, job):
    """What a node failure does: every process of the job gone at once."""
    import psutil

    procs = job_processes(slurm, job)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return [proc.pid for proc in procs]


def slurm_options(project, **options):
    config = {"dvc_invoke": {"pipelines": {"metrics": {"slurm": options}}}}
    (project.path / "invoke.yaml").write_text(json.dumps(config))


def test_a_run_submitted_to_slurm_runs_the_whole_flow_in_the_job(project, slurm, slack):
    run = project.inv("metrics", "--slurm", env={**slurm.env, **slack.web_api_env()})

    assert run.returncode == 0, run.output
    record = latest(project)
    assert record["job"] and record["detached"]
    assert f"submitted to SLURM as job {record['job']}" in run.stdout
    assert "sbatch --parsable --job-name=" in run.stdout

    try:
        ended = wait_ended(project, timeout=120)
    except AssertionError:
        job = record["job"]
        raise AssertionError(
            f"{slurm.run('scontrol', 'show', 'job', job).stdout}\n{latest(project)}\n"
            + open(record["log"]).read()[-3000:]
        ) from None

    assert ended["status"] == "succeeded", ended
    assert project.stages_run() == ["predict", "evaluate"]
    assert project.origin_log()[0] == "[DVC] Update model metrics"
    wait_for(lambda: slurm.state(record["job"]) == "COMPLETED", 30, "the job to complete")
    log = open(ended["log"]).read()
    assert "dvc repro --single-item --force metrics/dvc.yaml" in log
    # Announced from the login node, its result told from the job, in one message.
    (started,) = slack.calls("chat.postMessage")
    assert started.text.startswith("metrics started on ")
    wait_for(lambda: slack.calls("chat.update"), 30, "the result's message")
    assert slack.calls("chat.update")[-1].text.startswith("metrics succeeded after ")
    assert_fresh_clone_up_to_date(project)


def test_a_pending_job_says_why_then_runs(project, slurm):
    blocker = slurm.run(
        "sbatch", "--parsable", "-c", "4", "--output=/dev/null", "--wrap", "sleep 300"
    ).stdout.strip()
    try:
        wait_for(lambda: slurm.state(blocker) == "RUNNING", 60, "the blocker to take the node")
        run = project.inv("metrics", "--slurm", env=slurm.env)
        assert run.returncode == 0, run.output

        job = latest(project)["job"]

        # SLURM gives its reason at its next scheduling pass.
        status = lambda: project.inv("repro.status", env=slurm.env).stdout  # noqa: E731
        wait_for(lambda: f"SLURM job {job} pending (" in status(), 60, "SLURM's reason")
    finally:
        slurm.run("scancel", blocker)
    wait_for(lambda: slurm.state(job) in ("RUNNING", "COMPLETING", "COMPLETED"), 60, "to run")
    assert wait_ended(project, timeout=120)["status"] == "succeeded"


def test_a_job_at_its_time_limit_is_lost_with_slurms_reason(project, slurm, slack):
    slurm_options(project, time="00:01:00")  # SLURM looks every 30 s: it ends at 60-90 s
    run = project.inv(
        "metrics",
        "--slurm",
        env={**slurm.env, "SANDBOX_SLOW": "predict:600", **slack.web_api_env()},
    )
    assert run.returncode == 0, run.output
    job = latest(project)["job"]

    ended = wait_ended(project, timeout=180)

    assert ended["status"] == "lost", ended
    assert ended["reason"] == f"SLURM ended job {job} at its time limit", ended
    assert ended["step"] == "repro"
    wait_for(lambda: slack.calls("chat.update"), 30, "the message of its end")
    assert "failed" in slack.calls("chat.update")[-1].text
    assert "evaluate" not in project.stages_run()


def test_a_job_slurm_refuses_is_one_line_and_holds_nothing(project, slurm):
    slurm_options(project, partition="nope")

    run = project.inv("metrics", "--slurm", env=slurm.env)

    assert_one_line_error(run, "SLURM refused the job: invalid partition specified: nope")
    assert latest(project) is None  # no record claims the workspace
    assert project.inv("metrics").returncode == 0


def test_a_job_slurm_kills_is_lost_with_slurms_word_and_told_at_once(project, slurm, slack):
    run = project.inv("metrics", "--slurm", env={**slurm.env, **SLOW, **slack.web_api_env()})
    assert run.returncode == 0, run.output
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
    job = latest(project)["job"]
    assert "running" in project.inv("repro.status", env=slurm.env).stdout.lower()

    import psutil

    pids = kill_job_processes(slurm, job)  # a node failure, the OOM killer: nothing runs on
    wait_for(lambda: slurm.state(job) not in ("RUNNING", "COMPLETING"), 30, "the job to end")
    gone = lambda: not any(psutil.pid_exists(pid) for pid in pids)  # noqa: E731 - reaped too
    wait_for(gone, 30, "the job's processes to be gone")

    # Nobody runs a command: the settle job SLURM starts after the job tells the team.
    ended = wait_for(
        lambda: (r := latest(project))["status"] != "started" and r, 60, "the settle job"
    )
    assert ended["status"] == "lost", ended
    assert f"SLURM ended job {job} as" in ended["reason"]
    wait_for(lambda: slack.calls("chat.update"), 30, "the lost run's message")
    assert "failed" in slack.calls("chat.update")[-1].text
    status = project.inv("repro.status", env=slurm.env)
    assert status.returncode == 0 and "lost" in status.stdout, status.output
    assert project.inv("metrics").returncode == 0  # the workspace is free again


def test_scancel_even_with_kill_is_a_cancel_the_run_records(project, slurm, slack):
    run = project.inv("metrics", "--slurm", env={**slurm.env, **SLOW, **slack.web_api_env()})
    assert run.returncode == 0, run.output
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
    job = latest(project)["job"]

    # Measured: SLURM cancels a batch job so, SIGTERM first, SIGKILL after KillWait.
    slurm.run("scancel", "-s", "KILL", job)

    ended = wait_ended(project, timeout=60)
    assert ended["status"] == "cancelled", ended
    assert ended["reason"] == f"SLURM ended job {job} (scancel, or a preemption)"
    wait_for(lambda: slack.calls("chat.update"), 30, "the message of its end")
    assert "cancelled" in slack.calls("chat.update")[-1].text


def test_a_requeued_job_runs_the_flow_again_from_the_start_and_publishes(
    project, slurm, slack, tmp_path
):
    gate = tmp_path / "go"  # the predict stage waits for it: the requeue lands in repro
    env = {**slurm.env, "SANDBOX_WAIT": f"predict:{gate}", **slack.web_api_env()}
    run = project.inv("metrics", "--slurm", env=env)
    assert run.returncode == 0, run.output
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
    job = latest(project)["job"]

    requeue = slurm.run("scontrol", "requeue", job)  # what a preemption with requeue does
    assert requeue.returncode == 0, requeue.stderr

    requeued = wait_for(
        lambda: (r := latest(project))["status"] != "started" and r, 60, "the requeue's record"
    )
    assert requeued["status"] == "requeued", requeued
    assert requeued["reason"].startswith(f"SLURM requeued job {job} (job requeue)"), requeued
    assert requeued["step"] == "repro"
    wait_for(lambda: slack.calls("chat.update"), 30, "the requeue's message")
    told = slack.calls("chat.update")[-1].text
    assert told.startswith("metrics requeued after ") and "failed" not in told, told
    # SLURM holds a requeued job back (its BeginTime): the status says so, in its words.
    status = project.inv("repro.status", env=slurm.env)
    assert status.returncode == 0, status.output
    row = next(ln for ln in status.stdout.splitlines() if requeued["id"] in ln)
    assert "requeued" in row and f"SLURM job {job} requeued, pending (BeginTime)" in row, row
    blocked = project.inv("metrics", env=slurm.env)  # the workspace is still the run's
    assert_one_line_error(blocked, f"holds this workspace as SLURM job {job}")

    # SLURM's SIGTERM reaches dvc too: when it lands while dvc rewrites its rwlock
    # (seen here), the file is left empty, and every later `dvc repro` refuses.
    (project.path / ".dvc" / "tmp" / "rwlock").write_text("")
    gate.touch()
    slurm.run("scontrol", "update", f"jobid={job}", "starttime=now")  # not 120 s later

    again = lambda: (r := latest(project))["status"] not in ("started", "requeued") and r  # noqa: E731
    ended = wait_for(again, 120, "the restarted run to end")
    log = open(ended["log"]).read()
    assert ended["status"] == "succeeded", (ended["reason"], log[-5000:])
    assert ended["id"] == requeued["id"] and ended["restarts"] == 1, ended
    assert "left DVC's .dvc/tmp/rwlock torn: removed" in log
    # The restart ran the whole flow again: predict twice (the first one cut short).
    assert project.stages_run() == ["predict", "predict", "evaluate"]
    assert project.origin_log()[0] == "[DVC] Update model metrics"
    assert project.git("status", "--porcelain", "--untracked-files=no") == ""
    wait_for(lambda: slack.calls("chat.update")[-1].text.startswith("metrics succeeded"), 30)
    (started,) = slack.calls("chat.postMessage")  # one message, updated through it all
    assert started.text.startswith("metrics started on ")
    texts = [call.text for call in slack.calls("chat.update")]
    assert any(t.startswith("metrics started on ") and "(restart 1)" in t for t in texts), texts
    status = project.inv("repro.status", env=slurm.env)
    assert "(restart 1)" in status.stdout and "succeeded" in status.stdout, status.output
    assert_fresh_clone_up_to_date(project)


def test_a_node_failure_without_requeue_is_lost_never_cancelled(project, slurm, slack, tmp_path):
    slurm_options(project, no_requeue=True)
    env = {**slurm.env, "SANDBOX_WAIT": f"predict:{tmp_path / 'never'}", **slack.web_api_env()}
    run = project.inv("metrics", "--slurm", env=env)
    assert run.returncode == 0, run.output
    assert "--no-requeue --wrap" in run.stdout
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
    job = latest(project)["job"]

    node = f"nodename={slurm.node}"
    slurm.run("scontrol", "update", node, "state=down", "reason=test")
    try:
        ended = wait_ended(project, timeout=60)
    finally:
        slurm.run("scontrol", "update", node, "state=resume")  # already back, at its register
        idle = lambda: slurm.run("sinfo", "-h", "-o", "%t").stdout.strip() == "idle"  # noqa: E731
        wait_for(idle, 60, "the node to be idle again")

    assert ended["status"] == "lost", ended
    assert ended["reason"].startswith(f"SLURM ended job {job}: node failure"), ended
    assert "cancel" not in ended["reason"]
    assert slurm.state(job) == "NODE_FAIL"
    wait_for(lambda: slack.calls("chat.update"), 30, "the message of its end")
    assert "failed" in slack.calls("chat.update")[-1].text
    assert "evaluate" not in project.stages_run()


def test_cancel_stops_the_job_as_ctrl_c_would(project, slurm):
    run = project.inv("metrics", "--slurm", env={**slurm.env, **SLOW})
    assert run.returncode == 0, run.output
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
    job = latest(project)["job"]

    cancel = project.inv("repro.cancel", env=slurm.env)

    assert cancel.returncode == 0, cancel.output
    ended = latest(project)
    assert ended["status"] == "cancelled", ended
    assert "evaluate" not in project.stages_run()
    wait_for(lambda: slurm.state(job) not in ("RUNNING", "COMPLETING"), 30, "the job to end")
    assert project.git("status", "--porcelain", "--untracked-files=no") == ""


def test_a_dry_slurm_run_shows_the_sbatch_and_submits_nothing(project, slurm):
    slurm_options(project, partition="debug", time="00:10:00", cpus_per_task=1)

    jobs = lambda: set(slurm.run("squeue", "-h", "-o", "%i").stdout.split())  # noqa: E731
    before = jobs()  # other tests' settle jobs may still run

    run = project.inv("--dry", "metrics", "--slurm", env=slurm.env)

    assert run.returncode == 0, run.output
    sbatch, settle = [ln for ln in run.stdout.splitlines() if ln.startswith("sbatch ")]
    assert "--partition=debug --time=00:10:00 --cpus-per-task=1 --wrap" in sbatch
    # Then the job that settles the run however SLURM ends it: where the run may run.
    assert "--dependency=afterany:JOB_ID" in settle and "--partition=debug" in settle
    assert "--cpus-per-task" not in settle and "dvc_invoke settle" in settle
    assert latest(project) is None
    assert jobs() <= before


@pytest.mark.parametrize(
    "options, error",
    [
        ({"job_name": "x"}, "slurm option 'job_name' is not one to set"),
        ({"gres": ["gpu:1"]}, "slurm option gres must be text, a number or true (a flag)"),
        ({"requeue": False}, "slurm option requeue must be text, a number or true (a flag)"),
    ],
)
def test_bad_slurm_options_are_one_line(project, options, error):
    slurm_options(project, **options)
    run = project.inv("metrics", "--slurm")
    assert_one_line_error(run, error)


def test_a_host_without_slurm_never_calls_a_job_lost(project, tmp_path):
    assert project.inv("metrics").returncode == 0
    record = latest(project)
    path = project.path / ".dvc" / "tmp" / "dvc-invoke" / f"{record['id']}.json"
    job = {**record, "id": record["id"] + "j", "status": "started", "ended_at": None}
    job.update(job="4242", pid=None, started_at=record["started_at"] + 1)
    path.with_name(f"{job['id']}.json").write_text(json.dumps(job))
    bare = tmp_path / "bin"  # a PATH with git, python and dvc, and no SLURM
    bare.mkdir()
    import shutil
    import sys

    for tool in ("git", "bash", "sh"):
        (bare / tool).symlink_to(shutil.which(tool))
    env = {"PATH": f"{bare}:{os.path.dirname(sys.executable)}"}

    status = project.inv("repro.status", env=env)

    assert status.returncode == 0, status.output
    assert latest(project)["status"] == "started"


def test_a_controller_that_does_not_answer_never_makes_a_job_lost(project, slurm, tmp_path):
    run = project.inv("metrics", "--slurm", env={**slurm.env, "SANDBOX_SLOW": "predict:120"})
    assert run.returncode == 0, run.output
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
    job = latest(project)["job"]
    # The same cluster, asked on a port its controller does not listen on: what
    # a slurmctld restart looks like from the login node (scontrol retries ~18 s).
    import re

    from helpers import free_port

    conf = tmp_path / "slurm.conf"
    text = open(slurm.env["SLURM_CONF"]).read()
    conf.write_text(re.sub(r"SlurmctldPort=\d+", f"SlurmctldPort={free_port()}", text))

    status = project.inv("repro.status", env={"SLURM_CONF": str(conf)})

    assert status.returncode == 0, status.output
    assert f"SLURM job {job}, but SLURM does not answer" in status.stdout
    assert latest(project)["status"] == "started"  # not lost: nothing is known
    assert slurm.state(job) == "RUNNING"
    cancel = project.inv("repro.cancel", env=slurm.env)
    assert cancel.returncode == 0, cancel.output
