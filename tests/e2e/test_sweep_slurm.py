"""A sweep on SLURM: SLURM's job array (one experiment per task), then the
collector job; on the suite's real one-node cluster (slurm_cluster.py, 4 CPUs),
the get-started sandbox, its origin and DVC remote, the stand-in Slack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from helpers import assert_fresh_clone_up_to_date, assert_one_line_error, records, wait_for

from e2e.test_experiments import _by_bias, _sweep, _sweep_record, _sweepable

GRID = "train.bias=0.0,0.1,0.3,0.4,0.5,9"


def _ended(project, timeout=300):
    return wait_for(
        lambda: (r := _sweep_record(project)) and r["status"] != "started" and r,
        timeout,
        "the sweep to end",
    )


def _slurm_sweep(project, *args, slack=False, env=None, cwd=None):
    """``inv exp.run --pipeline train ARGS --slurm`` (``--skip slack`` unless ``slack``)."""
    skip = () if slack else ("--skip", "slack")
    return project.inv("exp.run", "--pipeline", "train", *args, "--slurm", *skip, env=env, cwd=cwd)


def _first_task_running(project, slurm, grid, *, seconds):
    """A sweep of ``grid`` on one slot, training ``seconds`` each, its first task running."""
    env = {**slurm.env, "SANDBOX_SLOW": f"train:{seconds}"}
    run = _slurm_sweep(project, "-S", grid, "--jobs", "1", env=env)
    assert run.returncode == 0, run.output
    record = _sweep_record(project)
    array = record["sweep"]["array"]
    wait_for(lambda: slurm.state(f"{array}_0") == "RUNNING", 60, "the first task to run")
    return record, array


def _origin_experiments(project):
    said = project.sh(f"git ls-remote {project.origin} 'refs/exps/*'")
    return {line.rsplit("/", 1)[-1] for line in said.splitlines() if line.strip()}


def test_a_sweep_on_slurm_is_one_array_task_per_experiment_collected_told_and_published(
    canonical, slurm, slack
):
    project = _sweepable(canonical)
    env = {**slurm.env, **slack.web_api_env()}

    run = _slurm_sweep(project, "-S", GRID, "--jobs", "3", "--name", "grid", slack=True, env=env)

    assert run.returncode == 0, run.output
    record = _sweep_record(project)
    array, collector = record["sweep"]["array"], record["job"]
    assert f"array {array} (6 experiments, 3 at once), collected by job {collector}" in run.stdout
    assert "--array=0-5%3" in run.stdout and f"--dependency=afterany:{array}" in run.stdout
    # Task 4 (bias 0.5) waits behind the three SLURM runs at once: cancelled before it starts.
    assert slurm.run("scancel", f"{array}_4").returncode == 0
    pending = project.inv("repro.logs", "--run", record["id"], "--exp", "grid-5", env=slurm.env)
    assert_one_line_error(pending, "grid-5 has no log yet", "--follow waits")
    status = project.inv("repro.status", env=slurm.env)
    assert f"SLURM array {array}: " in status.stdout, status.output

    ended = _ended(project)

    log = open(ended["log"]).read()
    assert ended["status"] == "succeeded", (ended, log[-3000:])
    exps = _by_bias(ended)
    assert {b: e["state"] for b, e in exps.items()} == {
        0.0: "success",
        0.1: "success",
        0.3: "success",
        0.4: "success",
        0.5: "cancelled",
        9: "failed",
    }, log[-3000:]
    assert [exps[b]["name"] for b in (0.0, 0.1, 0.3, 0.4, 0.5, 9)] == [
        f"grid-{i}" for i in range(1, 7)
    ]
    assert exps[9]["step"] == "train" and "diverged: bias 9" in exps[9]["log_tail"]
    assert "before it started (scancel)" in exps[0.5]["reason"]
    assert ended["sweep"]["best"] == "grid-1"
    assert ended["sweep"]["baseline"]["params"] == {"params.yaml:train.bias": 0.2}
    # Each experiment ran in its own clone: those that succeeded leave none behind.
    clones = project.path / ".dvc" / "tmp" / "dvc-invoke" / "sweeps" / ended["id"]
    assert not (clones / "grid-1").exists()
    # The collector's table, in the sweep's log; the failed and the cancelled say so.
    table = [ln for ln in log.splitlines() if ln.startswith(("baseline", "grid-"))]
    assert table[0].startswith("baseline") and table[1].startswith("grid-1"), log[-3000:]
    assert any("failed at train" in ln for ln in table)
    assert any(ln.startswith("grid-5") and "cancelled" in ln for ln in table)

    # Shared by their tasks: origin holds the four that succeeded.
    assert _origin_experiments(project) == {"grid-1", "grid-2", "grid-3", "grid-4"}
    # Slack: the start, updated to the ranked table; the failure in the thread.
    wait_for(lambda: slack.calls("chat.update"), 30, "the sweep's end on Slack")
    end = slack.calls("chat.update")[-1]
    assert "train sweep succeeded" in end.text and "best grid-1" in end.text
    thread = [p for p in slack.calls("chat.postMessage") if p.body.get("thread_ts")]
    assert any("grid-6" in p.text for p in thread)

    # Watched as any run: its row, and an experiment's log (its array task's).
    status = project.inv("repro.status", env=slurm.env)
    assert "sweep: 6 experiments: 4 succeeded, 1 failed, 1 cancelled" in status.stdout, (
        status.output
    )
    said = project.inv("repro.logs", "--run", ended["id"], "--exp", "grid-6", env=slurm.env)
    assert said.returncode == 0 and "diverged: bias 9" in said.stdout, said.output

    # The best, published as a run; a fresh clone is up to date.
    published = project.inv("exp.publish", "--best", "--pipeline", "train")
    assert published.returncode == 0, published.output
    assert project.origin_log()[0] == "[DVC] Publish experiment grid-1 (train)"
    assert_fresh_clone_up_to_date(project)


def test_a_cancelled_slurm_sweep_is_one_scancel_and_told_with_what_finished(canonical, slurm):
    project = _sweepable(canonical)
    record, array = _first_task_running(project, slurm, "train.bias=0.0,0.1,0.3", seconds=30)

    cancel = project.inv("repro.cancel", "--run", record["id"], env=slurm.env)

    assert cancel.returncode == 0, cancel.output
    ended = _ended(project, timeout=120)
    assert ended["status"] == "cancelled", ended
    assert {e["state"] for e in ended["experiments"]} == {"cancelled"}, ended["experiments"]
    wait_for(
        lambda: all(
            slurm.state(j) not in ("PENDING", "RUNNING", "COMPLETING")
            for j in (f"{array}_0", record["job"])
        ),
        60,
        "SLURM to end the array and the collector",
    )
    assert _origin_experiments(project) == set()


def test_bad_slurm_sweeps_are_one_line_and_submit_nothing(canonical, slurm):
    project = _sweepable(canonical)

    gpus = _slurm_sweep(project, "-S", "train.bias=0.1", "--gpus", "all", slack=True, env=slurm.env)
    assert_one_line_error(gpus, "--gpus", "gres")

    (project.path / "invoke.yaml").write_text(
        '{"dvc_invoke": {"pipelines": {"train": {"slurm": {"partition": "nope"}}}}}'
    )
    project.git("add", "invoke.yaml")
    project.git("commit", "-qm", "A partition that is not there")
    project.git("push", "-q")
    refused = _slurm_sweep(project, "-S", "train.bias=0.1,0.3", env=slurm.env)
    assert_one_line_error(refused, "SLURM refused the job: invalid partition specified: nope")
    assert not [r for r in records(project) if r.get("sweep")]  # nothing claims the workspace
    assert slurm.run("squeue", "-h").stdout.strip() == ""  # nothing submitted, nothing held
    assert not (project.path / ".dvc" / "tmp" / "dvc-invoke" / "sweeps").exists()


def test_a_requeued_task_pushes_its_experiment_again_over_the_first(canonical, slurm):
    project = _sweepable(canonical)
    run = _slurm_sweep(
        project, "-S", "train.bias=0.0,0.1", "--jobs", "2", "--name", "again", env=slurm.env
    )
    assert run.returncode == 0, run.output
    ended = _ended(project)
    assert ended["status"] == "succeeded", ended
    array = ended["sweep"]["array"]
    first = project.sh(f"git ls-remote {project.origin} 'refs/exps/*/again-1'").split()[0]

    # SLURM runs a finished task again (a requeue, as after a node failure): the
    # experiment it shared whole stays as it is, made once, pushed once.
    assert slurm.run("scontrol", "requeue", f"{array}_0").returncode == 0
    log = ended["experiments"][0]["log"]
    wait_for(
        lambda: open(log).read().count("dvc-invoke sweep-task: again-1 ") == 2,
        180,
        "the requeued task to end",
    )
    said = open(log).read()
    assert said.count("dvc-invoke sweep-task: again-1 shared") == 2, said[-2000:]
    assert said.count(" exp run ") == 1 and said.count(" exp push ") == 1, said[-2000:]
    again = project.sh(f"git ls-remote {project.origin} 'refs/exps/*/again-1'").split()[0]
    assert again == first


def test_work_goes_on_in_the_workspace_while_the_sweep_runs_on_its_own_commit(canonical, slurm):
    project = _sweepable(canonical)
    run = _slurm_sweep(
        project,
        "-S",
        "train.bias=0.0,0.1",
        "--jobs",
        "2",
        env={**slurm.env, "SANDBOX_SLOW": "train:10"},
    )
    assert run.returncode == 0, run.output
    record = _sweep_record(project)
    # Its log says where it is before the collector writes a line; the hint printed works.
    assert "status:  inv repro.status\n" in run.stdout
    logs = project.inv("repro.logs", "--run", record["id"], env=slurm.env)
    assert logs.returncode == 0 and "submitted to SLURM" in logs.stdout, logs.output
    array = record["sweep"]["array"]
    wait_for(lambda: slurm.state(f"{array}_0") == "RUNNING", 60, "the first task to run")

    # Meanwhile: a commit pushed, another one not, and an edit not committed.
    (project.path / "NOTES.md").write_text("notes\n")
    project.git("add", "NOTES.md")
    project.git("commit", "-qm", "Notes")
    project.git("push", "-q")
    (project.path / "MORE.md").write_text("more\n")
    project.git("add", "MORE.md")
    project.git("commit", "-qm", "More")
    (project.path / "NOTES.md").write_text("notes, edited\n")
    # An experiment's log, followed to its end.
    name = record["experiments"][1]["name"]
    follow = project.inv(
        "repro.logs", "--run", record["id"], "--exp", name, "--follow", env=slurm.env
    )
    assert follow.returncode == 0 and f"sweep-task: {name} shared" in follow.stdout, follow.output

    ended = _ended(project)
    assert ended["status"] == "succeeded", (ended, open(ended["log"]).read()[-3000:])
    assert [e["state"] for e in ended["experiments"]] == ["success", "success"]
    assert ended["sweep"]["baseline"]["params"] == {"params.yaml:train.bias": 0.2}


def test_a_sweep_whose_collector_is_gone_is_lost_and_its_array_cancelled(canonical, slurm):
    project = _sweepable(canonical)
    record, array = _first_task_running(project, slurm, "train.bias=0.0,0.1", seconds=60)

    assert slurm.run("scancel", record["job"]).returncode == 0  # the collector, as an admin might
    status = project.inv("repro.status", env=slurm.env)

    lost = _sweep_record(project)
    assert lost["status"] == "lost", (lost, status.output)
    assert f"its SLURM array {array} is cancelled" in lost["reason"]
    assert lost["resume"] == (
        f"dvc exp pull origin --rev {record['sweep']['commit']}; inv exp.show --all"
    )
    wait_for(
        lambda: slurm.state(f"{array}_0") not in ("RUNNING", "COMPLETING"), 60, "the task to end"
    )


def test_a_slurm_sweep_of_a_dvc_project_in_a_monorepo_folder(canonical, slurm, tmp_path):
    """`dvc init --subdir`: the DVC project is ml/ of a larger git repository."""
    mono, ml = tmp_path / "mono", tmp_path / "mono" / "ml"
    shutil.copytree(canonical.path, ml, ignore=shutil.ignore_patterns(".git"))
    origin = tmp_path / "mono-origin.git"
    env = {**os.environ, **canonical.env}
    for line in (
        "git init -q -b main",
        "git config user.name 'ML team' && git config user.email ml@example.com",
        "git add -A",
        "git commit -qm 'The ML project, in a folder'",
        f"git init -q --bare {origin}",
        f"git remote add origin {origin}",
        "git push -q -u origin main",
    ):
        subprocess.run(line, shell=True, cwd=mono, check=True, capture_output=True, env=env)
    dvc = [sys.executable, "-m", "dvc"]
    name = subprocess.run([*dvc, "remote", "default"], cwd=ml, capture_output=True, text=True)
    subprocess.run(
        [*dvc, "remote", "modify", "--local", name.stdout.strip(), "url", str(canonical.remote)],
        cwd=ml,
        check=True,
    )

    run = _slurm_sweep(canonical, "-S", "train.bias=0.0,0.1", "--jobs", "2", env=slurm.env, cwd=ml)

    assert run.returncode == 0, run.output
    folder = ml / ".dvc" / "tmp" / "dvc-invoke"

    def ended():
        found = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        return next((r for r in found if r.get("sweep") and r["status"] != "started"), None)

    record = wait_for(ended, 300, "the sweep to end")
    assert record["status"] == "succeeded", open(record["log"]).read()[-3000:]
    assert [e["state"] for e in record["experiments"]] == ["success", "success"]
    said = subprocess.run(
        ["git", "ls-remote", str(origin), "refs/exps/*"], capture_output=True, text=True
    ).stdout
    assert {line.rsplit("/", 1)[-1] for line in said.splitlines()} == {
        e["name"] for e in record["experiments"]
    }


def test_a_sweep_submitted_to_slurm_from_a_login_host_over_ssh(canonical, slurm, sshd):
    from e2e.test_hosts import RUN_ID, ended_on, host_checkout, with_hosts

    project = _sweepable(canonical)
    with_hosts(project, sshd)
    # The login node's own .env says where its cluster is (here: the test cluster).
    login = host_checkout(project, "gpu-1", env_file=f"SLURM_CONF={slurm.env['SLURM_CONF']}\n")

    run = _sweep(project, "-S", "train.bias=0.0,0.1", "--host", "gpu-1", "--slurm")

    assert run.returncode == 0, run.output
    assert "submitted to SLURM from gpu-1" in run.stdout, run.stdout
    assert " --slurm --detach" not in run.stdout  # submitted there, not a detached sweep
    run_id = RUN_ID.search(run.stdout).group(1)
    ended = ended_on(login, run_id, timeout=300)
    assert ended["status"] == "succeeded" and ended["sweep"]["array"], ended
    assert [e["state"] for e in ended["experiments"]] == ["success", "success"], ended
    assert {e["name"] for e in ended["experiments"]} <= _origin_experiments(project)
