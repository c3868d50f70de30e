"""Detached runs, run records, logs, cancel and lost runs: real background processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    assert_fresh_clone_up_to_date,
    assert_one_line_error,
    latest,
    records,
    wait_ended,
    wait_for,
)


def processes_in(pgid):
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            pass
    return found


SLOW = {"SANDBOX_SLOW": "predict:30"}


def start_slow(project, env=None):
    run = project.inv("metrics", "--detach", env={**SLOW, **(env or {})})
    assert run.returncode == 0, run.output
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage to start")
    return latest(project)


def test_a_detached_run_returns_at_once_and_finishes_in_the_background(project):
    run = project.inv("metrics", "--detach", env={"SANDBOX_SLOW": "predict:2"})

    assert run.returncode == 0, run.output
    record = latest(project)
    assert record["status"] == "started" and record["detached"]
    assert "evaluate" not in project.stages_run()  # it returned before the run ended
    assert f"inv repro.logs --run {record['id']} --follow" in run.stdout
    assert f"inv repro.cancel --run {record['id']}" in run.stdout

    ended = wait_ended(project)

    assert ended["status"] == "succeeded", ended
    assert project.stages_run() == ["predict", "evaluate"]
    assert project.origin_log()[0] == "[DVC] Update model metrics"
    assert project.git("status", "--porcelain") == ""
    log = open(ended["log"]).read()
    assert "dvc repro --single-item --force" in log and "metrics succeeded" in log


def test_a_detached_run_survives_the_hangup_of_its_terminal(project):
    # A login shell: its own session; the hangup reaches its whole process group.
    shell = subprocess.Popen(
        ["sh", "-c", f"{sys.executable} -m invoke metrics --detach; sleep 30"],
        cwd=project.path,
        env={**os.environ, "SANDBOX_SLOW": "predict:2", "SANDBOX_TRACE": str(project.trace_file)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: "predict" in project.stages_run(), 60, "the run to start")
        os.killpg(shell.pid, signal.SIGHUP)
        assert shell.wait(timeout=10) == -signal.SIGHUP
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)

    assert wait_ended(project)["status"] == "succeeded"
    assert project.origin_log()[0] == "[DVC] Update model metrics"


def test_a_failing_detached_run_is_notified_with_the_end_of_its_log(project, slack):
    (project.path / "metrics" / "evaluate.py").write_text("raise SystemExit('evaluation broke')\n")
    project.git("commit", "-qam", "Break the evaluation")

    run = project.inv("metrics", "--detach", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    ended = wait_ended(project)
    assert (ended["status"], ended["step"]) == ("failed", "repro")
    (update,) = slack.calls("chat.update")
    assert update.text.startswith("metrics failed")
    started, reply = slack.calls("chat.postMessage")
    assert started.text.startswith("metrics started")
    assert "evaluation broke" in reply.blocks_text


def test_killing_the_runs_processes_makes_it_lost_and_frees_the_workspace(project, slack):
    record = start_slow(project, slack.web_api_env())

    os.killpg(record["pgid"], signal.SIGKILL)  # OOM killer, reboot: nothing runs after
    wait_for(lambda: not processes_in(record["pgid"]), 10, "the processes to die")
    assert latest(project)["status"] == "started"  # nobody wrote an end

    status = project.inv("repro.status", env=slack.web_api_env())

    assert status.returncode == 0, status.output
    assert latest(project)["status"] == "lost"
    assert "lost" in status.stdout and record["id"] in status.stdout
    (update,) = slack.calls("chat.update")  # the team is told, once
    assert update.text.startswith("metrics failed")
    assert "died without a result" in update.blocks_text
    again = project.inv("repro.status", env=slack.web_api_env())
    assert again.returncode == 0 and len(slack.calls("chat.update")) == 1
    # Neither dvc-invoke's workspace lock nor DVC's stands in the way of the next run.
    rerun = project.inv("metrics")
    assert rerun.returncode == 0, rerun.output


def test_a_run_whose_process_is_killed_is_reported_lost_at_once(project, slack):
    record = start_slow(project, slack.web_api_env())

    os.kill(record["pid"], signal.SIGKILL)  # the run's own process only

    ended = wait_ended(project, timeout=30)
    assert ended["status"] == "lost"
    wait_for(lambda: slack.calls("chat.update"), 30, "the lost run's notification")
    # What it had started (dvc, the stage) does not go on changing the workspace.
    wait_for(lambda: not processes_in(record["pgid"]), 15, "the leftovers to stop")
    assert project.git("status", "--porcelain") == ""


def test_cancel_stops_the_run_and_its_children_and_says_so(project, slack):
    record = start_slow(project, slack.web_api_env())

    run = project.inv("repro.cancel", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert f"run {record['id']} (metrics) cancelled" in run.stdout
    ended = latest(project)
    assert (ended["status"], ended["step"]) == ("cancelled", "repro")
    wait_for(lambda: not processes_in(record["pgid"]), 15, "the run's processes to stop")
    (update,) = slack.calls("chat.update")
    assert update.text.startswith("metrics cancelled")
    assert project.git("status", "--porcelain") == ""
    assert project.origin_log()[0] != "[DVC] Update model metrics"
    # DVC's locks were released: the pipeline runs again.
    assert project.inv("metrics").returncode == 0


def test_a_second_run_is_refused_while_one_holds_the_workspace(project):
    record = start_slow(project)

    same = project.inv("metrics")
    other = project.inv("repro", "--pipeline", "training", "--detach")

    publish = project.inv("publish", "--pipeline", "metrics")
    for run in (same, other, publish):
        assert_one_line_error(run, f"run {record['id']} (metrics) is still running")
    assert len(records(project)) == 1
    assert project.inv("repro.cancel", "--run", record["id"]).returncode == 0


def test_logs_follow_ends_when_the_run_ends(project):
    run = project.inv("metrics", "--detach", env={"SANDBOX_SLOW": "predict:2"})
    assert run.returncode == 0, run.output

    follow = project.inv("repro.logs", "--follow")

    assert follow.returncode == 0, follow.output
    assert latest(project)["status"] == "succeeded"
    assert "predict: working for 2s" in follow.stdout
    assert "✔ metrics succeeded" in follow.stdout


def test_a_foreground_run_leaves_a_record_and_a_log_too(project):
    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    record = latest(project)
    assert record["status"] == "succeeded" and not record["detached"]
    assert record["commit_after"] == project.git("rev-parse", "HEAD")
    log = project.inv("repro.logs")
    assert "dvc repro --single-item --force" in log.stdout
    assert "metrics succeeded" in log.stdout
    status = project.inv("repro.status")
    assert record["id"] in status.stdout and "succeeded" in status.stdout
    assert project.git("status", "--porcelain") == ""


@pytest.mark.parametrize("move", ["commit", "edit"])
def test_a_run_never_commits_onto_a_workspace_that_moved(project, move):
    record = start_slow(project, {"SANDBOX_SLOW": "predict:3"})
    if move == "commit":
        project.git("commit", "-q", "--allow-empty", "-m", "Meanwhile, on the GPU box")
    else:
        (project.path / "training" / "train.py").write_text("# edited during the run\n")

    ended = wait_ended(project)

    assert (ended["status"], ended["step"]) == ("failed", "commit"), ended
    expected = (
        "the workspace moved during the run: HEAD moved to"
        if move == "commit"
        else "files no dvc.yaml declares changed during the run: training/train.py"
    )
    assert expected in ended["reason"]
    assert "nothing was committed" in ended["reason"]
    # Files alone: perhaps a stage writes a file its dvc.yaml does not declare.
    assert ("`git add -f` if git ignores them" in ended["reason"]) == (move == "edit")
    assert "[DVC] Update model metrics" not in project.git("log", "--format=%s")
    assert record["id"] == ended["id"]


def test_ctrl_c_in_the_foreground_cancels_the_run(project):
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "metrics"],
        cwd=project.path,
        env={**os.environ, **SLOW, "SANDBOX_TRACE": str(project.trace_file)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's foreground job
    )
    try:
        wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("dvc-invoke: cancelled during repro")
    assert "dvc_invoke" not in err  # the stage's own traceback is the stage's business
    assert latest(project)["status"] == "cancelled"
    assert latest(project)["resume"] == "inv metrics"  # the stage never finished: run it again
    assert project.git("status", "--porcelain") == ""


def test_an_interrupt_of_the_run_alone_lets_the_stage_finish_and_advises_publishing(project):
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "metrics"],
        cwd=project.path,
        env={**os.environ, "SANDBOX_SLOW": "predict:3", "SANDBOX_TRACE": str(project.trace_file)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
        os.kill(proc.pid, signal.SIGINT)  # `kill -INT <pid>`: dvc and the stage go on
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert proc.returncode == 130, out + err
    assert "then run: inv publish --pipeline metrics" in err
    assert project.stages_run() == ["predict", "evaluate"]  # DVC finished them
    assert latest(project)["resume"] == "inv publish --pipeline metrics"

    published = project.inv("publish", "--pipeline", "metrics")

    assert published.returncode == 0, published.output
    assert project.origin_log()[0] == "[DVC] Update model metrics"
    assert_fresh_clone_up_to_date(project)


def test_a_damaged_run_record_is_one_line(project):
    assert project.inv("metrics").returncode == 0
    record = project.path / ".dvc" / "tmp" / "dvc-invoke" / f"{latest(project)['id']}.json"
    run_id = record.stem
    record.write_text("{not json")

    run = project.inv("repro.logs", "--run", run_id)

    assert_one_line_error(run, f"run {run_id}'s record is damaged")


def marked_processes(run_id):
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("DVC_INVOKE_RUN_ID") == run_id:
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


def test_a_killed_foreground_run_leaves_nothing_running(project, slack):
    # Started by a script: the run shares the script's process group, which is
    # not the run's to kill; what it started must still be found and stopped.
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "metrics"],
        cwd=project.path,
        env={**os.environ, **SLOW, **slack.web_api_env(), "SANDBOX_TRACE": str(project.trace_file)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")
        record = latest(project)
        assert record["pgid"] is None  # the group is the test runner's, not the run's
        assert marked_processes(record["id"])  # dvc repro and the stage, at least
        proc.kill()  # the OOM killer takes the run's own process only
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()

    status = project.inv("repro.status", env=slack.web_api_env())

    assert status.returncode == 0, status.output
    assert latest(project)["status"] == "lost"
    wait_for(lambda: not marked_processes(record["id"]), 15, "the run's leftovers to stop")
    rerun = project.inv("metrics")
    assert rerun.returncode == 0, rerun.output
    assert project.stages_run().count("predict") == 2  # the rerun ran alone


def record_of_another_host(project):
    """A run of another host sharing this workspace (an NFS home): its pid means nothing here."""
    assert project.inv("metrics").returncode == 0
    record = latest(project)
    path = project.path / ".dvc" / "tmp" / "dvc-invoke" / f"{record['id']}.json"
    other = {**record, "id": record["id"] + "x", "host": "gpu-node-7", "status": "started"}
    other.update(pid=999999, pgid=None, ended_at=None, started_at=record["started_at"] + 1)
    path.with_name(f"{other['id']}.json").write_text(json.dumps(other))
    return other


def test_a_run_of_another_host_is_judged_there_not_here(project):
    other = record_of_another_host(project)

    status = project.inv("repro.status")
    run = project.inv("metrics")
    cancel = project.inv("repro.cancel", "--run", other["id"])

    assert status.returncode == 0, status.output
    assert latest(project)["status"] == "started"  # not marked lost from here
    assert_one_line_error(run, "of host gpu-node-7 holds this workspace", "--host-gone")
    assert_one_line_error(cancel, "runs on host gpu-node-7: cancel it there")
    assert latest(project)["status"] == "started"

    gone = project.inv("repro.cancel", "--run", other["id"], "--host-gone")

    assert gone.returncode == 0, gone.output
    assert latest(project)["status"] == "lost"
    assert "gpu-node-7 is gone" in latest(project)["reason"]
    assert project.inv("metrics").returncode == 0


@pytest.mark.parametrize("fault", ["a file", "read-only"])
def test_a_run_folder_that_cannot_be_written_is_one_line(project, fault):
    if fault == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = project.path / ".dvc" / "tmp" / "dvc-invoke"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    if fault == "a file":
        folder.write_text("not a folder\n")
    else:
        folder.mkdir(parents=True)
        folder.chmod(0o500)
    try:
        run = project.inv("metrics")
        assert_one_line_error(run, "cannot write run records in .dvc/tmp/dvc-invoke")
        assert project.stages_run() == []
    finally:
        if fault == "read-only":
            folder.chmod(0o700)


def test_status_shows_the_gated_metrics_first(project):
    assert project.inv("metrics").returncode == 0
    record = latest(project)
    path = project.path / ".dvc" / "tmp" / "dvc-invoke" / f"{record['id']}.json"
    many = [{"name": f"m.json:a{i}", "old": 1, "new": 2, "kind": "metric"} for i in range(5)]
    gated = {"name": "m.json:zz_acc", "old": 0.5, "new": 0.9, "kind": "metric", "gated": True}
    path.write_text(json.dumps({**record, "metrics": [*many, gated]}))

    status = project.inv("repro.status")

    assert status.returncode == 0, status.output
    assert "m.json:zz_acc: 0.5 → 0.9" in status.stdout


def test_stop_of_a_run_that_dies_without_a_word_ends_it_cancelled(tmp_path):
    import threading

    from dvc_invoke.engines import stop
    from dvc_invoke.runs.record import RunReport
    from dvc_invoke.runs.store import Store, process_identity

    # SIGTERM before the run could handle signals: it dies without writing its end.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    reaper = threading.Thread(target=proc.wait, daemon=True)
    reaper.start()  # reaped at once: its pid is gone, as a real run's would be
    try:
        store = Store(tmp_path)
        report = RunReport(pipeline="metrics", command="inv metrics", id="r1", pid=proc.pid)
        report.process_started = process_identity(proc.pid)
        store.save(report)

        ended, recorded = stop(store, report, timeout=1.0)

        assert (ended.status, recorded) == ("cancelled", False)
        reaper.join(timeout=5)
        assert proc.returncode == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()


FILLS_THE_DISK = """\
try:
    with open("filler", "wb") as filler:  # until the disk is full
        while True:
            filler.write(b"\\0" * 65536)
except OSError as exc:
    raise SystemExit(f"predict: {exc}")  # [Errno 28] No space left on device
"""


def test_a_stage_that_fills_the_disk_is_one_story_told_once(small_disk):
    project = small_disk
    predict = project.path / "metrics" / "predict.py"
    predict.write_text(
        predict.read_text().replace('trace("predict")\n', 'trace("predict")\n' + FILLS_THE_DISK, 1)
    )
    project.git("commit", "-qam", "Predict writes until the disk is full")

    run = project.inv("metrics")

    line = assert_one_line_error(run, "repro failed", "No space left on device")
    assert line.endswith("then run: inv metrics")
    assert "cannot write run records" not in run.output and "warning" not in run.output.lower()
    folder = project.path / ".dvc" / "tmp" / "dvc-invoke"
    assert list(folder.glob("*.tmp")) == []  # no half-written record behind
    (record,) = records(project)
    assert (record["status"], record["step"]) == ("failed", "repro")
    assert "No space left on device" in record["reason"]
    status = project.inv("repro.status")
    assert status.returncode == 0, status.output
    assert "lost" not in status.output  # no second story
    assert [r["status"] for r in records(project)] == ["failed"]


# The pre-push hook holds the run's push, once its commit is made, until the fifo is written.
HOLDS_THE_PUSH = """\
#!/bin/sh
if [ -n "$HOLD_PUSH" ] && [ "$(git log -1 --format=%s)" = "[DVC] Update training" ]; then
  touch "$HOLD_PUSH.reached"
  cat "$HOLD_PUSH" > /dev/null
fi
"""


def test_a_run_killed_between_its_commit_and_its_push_is_lost_committed_and_publish_finishes_it(
    project, tmp_path
):
    train = project.path / "training" / "train.py"
    train.write_text(train.read_text() + "# tuned\n")
    project.git("commit", "-qam", "Tune training")  # a change, so the run commits
    origin = project.origin_log()
    hold = tmp_path / "hold"
    os.mkfifo(hold)
    hook = project.path / ".git" / "hooks" / "pre-push"
    hook.write_text(HOLDS_THE_PUSH)
    hook.chmod(0o755)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "repro", "--pipeline", "training"],
        cwd=project.path,
        env={**os.environ, **project.env, "HOLD_PUSH": str(hold)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: Path(f"{hold}.reached").exists(), 120, "the run's git push")
        assert project.git("log", "-1", "--format=%s") == "[DVC] Update training"
        run_id = latest(project)["id"]
        proc.kill()  # the OOM killer: between the commit and the push
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()

    status = project.inv("repro.status")

    assert status.returncode == 0, status.output
    record = latest(project)
    assert (record["id"], record["status"]) == (run_id, "lost")
    assert (record["committed"], record["git_pushed"]) == (True, False)
    assert record["commit_after"] == project.git("rev-parse", "HEAD")
    assert record["resume"] == "inv publish --pipeline training"
    assert "then run: inv publish --pipeline training" in status.output
    assert marked_processes(run_id) == []  # the held push and its hook are stopped
    assert project.origin_log() == origin  # nothing reached git

    done = project.inv("publish", "--pipeline", "training")

    assert done.returncode == 0, done.output
    assert project.origin_log()[:2] == ["[DVC] Update training", "Tune training"]
    finished = latest(project)
    assert (finished["id"], finished["status"]) == (run_id, "succeeded")
    assert finished["published_by"] == "inv publish --pipeline training"
    mate = project.clone("teammate")  # pulls the run's model, finds training up to date
    mate.sh("dvc pull -q training/dvc.yaml dataset/train.csv.dvc")
    assert "Data and pipelines are up to date" in mate.sh("dvc status training/dvc.yaml")


# -- pruning ------------------------------------------------------------------------


def _ended_run(store, n, *, status="succeeded", pid=None, started_at=None):
    """An ended run of the store's own making: its record (`Store.save`), its log
    and its plot folder, where the run would have left them."""
    from dvc_invoke.runs.record import RunReport

    started_at = started_at if started_at is not None else 1_700_000_000.0 + n * 60
    report = RunReport(pipeline="metrics", command="inv metrics", started_at=started_at)
    report.id = f"run-{n:05d}"
    report.log = str(store.log_path(report.id))
    report.end(status, reason=None if status == "succeeded" else "a stage failed")
    report.ended_at = started_at + 30
    report.pid = pid
    store.save(report)
    Path(report.log).write_text(f"the log of run {n}\n")
    plots = store.dir / "plots" / report.id
    plots.mkdir(parents=True)
    (plots / "loss.png").write_bytes(b"png")
    return report


def _a_running_run(store, started_at):
    """A run this very process runs: started, its pid and the pid's start time recorded."""
    from dvc_invoke.runs.record import RunReport
    from dvc_invoke.runs.store import process_identity

    report = RunReport(pipeline="training", command="inv training", started_at=started_at)
    report.id, report.pid = "run-running", os.getpid()
    report.process_started = process_identity(os.getpid())
    report.log = str(store.log_path(report.id))
    store.save(report)
    Path(report.log).write_text("still running\n")
    return report


def test_prune_keeps_the_newest_runs_and_never_a_running_one(tmp_path):
    from dvc_invoke.config.settings import Keep
    from dvc_invoke.runs.store import Store

    store = Store(tmp_path)
    made = [_ended_run(store, n) for n in range(6)]
    # The oldest of all, and beyond any count: it runs, so it stays.
    running = _a_running_run(store, started_at=1_600_000_000.0)
    # Ended, but its process still runs (writing its end, its settle): it stays too.
    finishing = _ended_run(store, 6, pid=os.getpid(), started_at=1_600_000_100.0)
    finishing.process_started = running.process_started
    store.save(finishing)

    removed = store.prune(Keep(runs=2, days=None))

    kept = {r.id for r in Store(tmp_path).all()}
    assert kept == {made[5].id, made[4].id, running.id, finishing.id}
    # Oldest first: each run's log, plot folder and record, as paths in the project.
    assert removed[:3] == [
        ".dvc/tmp/dvc-invoke/run-00000.log",
        ".dvc/tmp/dvc-invoke/plots/run-00000",
        ".dvc/tmp/dvc-invoke/run-00000.json",
    ]
    assert len(removed) == 4 * 3
    for report in made[:4]:
        assert not Path(report.log).exists()
        assert not (store.dir / "plots" / report.id).exists()
    assert Path(running.log).read_text() == "still running\n"
    assert (store.dir / "plots" / made[5].id / "loss.png").exists()


def test_prune_by_age_and_its_dry_run(tmp_path):
    import time

    from dvc_invoke.config.settings import Keep
    from dvc_invoke.runs.store import Store

    store = Store(tmp_path)
    now = time.time()
    old = _ended_run(store, 1, status="failed", started_at=now - 40 * 86400)
    recent = _ended_run(store, 2, started_at=now - 2 * 86400)

    listed = store.prune(Keep(runs=None, days=30), dry=True)
    assert listed == [
        f".dvc/tmp/dvc-invoke/{old.id}.log",
        f".dvc/tmp/dvc-invoke/plots/{old.id}",
        f".dvc/tmp/dvc-invoke/{old.id}.json",
    ]
    assert {r.id for r in store.all()} == {old.id, recent.id}  # a dry run removes nothing

    assert store.prune(Keep(runs=None, days=30)) == listed
    assert [r.id for r in Store(tmp_path).all()] == [recent.id]
    assert store.prune(Keep(runs=None, days=None)) == []


def test_the_store_reads_records_changed_since_its_cache(tmp_path):
    from dvc_invoke.runs.store import Store

    store = Store(tmp_path)
    failed = _ended_run(store, 1, status="failed")
    assert [r.status for r in Store(tmp_path).newest(1)] == ["failed"]  # now in the cache
    assert (store.dir / Store.CACHE).is_file()

    # Finished by hand (`inv publish`): the record is rewritten as it succeeded.
    failed.status, failed.published_by = "succeeded", "inv publish"
    Store(tmp_path).save(failed)
    (store.dir / f"{failed.id}.json").touch()

    again = Store(tmp_path)
    assert [(r.status, r.published_by) for r in again.all()] == [("succeeded", "inv publish")]
    assert [r.id for r in again.newest(5, "metrics")] == [failed.id]
    assert again.newest(5, "training") == []
    # A damaged cache is read past: the records stand without it.
    (store.dir / Store.CACHE).write_text("{nope")
    assert [r.id for r in Store(tmp_path).all()] == [failed.id]


def test_a_run_prunes_old_runs_at_its_end(project):
    first = project.inv("metrics")
    assert first.returncode == 0, first.output
    old = latest(project)
    assert Path(old["log"]).exists()

    again = project.inv("metrics", "--force", env={"INVOKE_DVC_INVOKE_KEEP_RUNS": "1"})

    assert again.returncode == 0, again.output
    assert [r["id"] for r in records(project)] == [latest(project)["id"]] != [old["id"]]
    assert not Path(old["log"]).exists()


def test_prune_by_hand_lists_what_it_removed_and_spares_a_running_run(project):
    done = project.inv("metrics")
    assert done.returncode == 0, done.output
    old = latest(project)
    running = start_slow(project)
    # Older than the limit, both: the running one stays.
    env = {"INVOKE_DVC_INVOKE_KEEP_DAYS": "0.000001"}

    dry = project.inv("repro.prune", "--dry", env=env)
    assert dry.returncode == 0, dry.output
    assert f".dvc/tmp/dvc-invoke/{old['id']}.json" in dry.stdout
    assert "would remove 1 old run(s)" in dry.stdout
    assert {r["id"] for r in records(project)} == {old["id"], running["id"]}

    pruned = project.inv("repro.prune", env=env)

    assert pruned.returncode == 0, pruned.output
    assert f".dvc/tmp/dvc-invoke/{old['id']}.log" in pruned.stdout
    assert running["id"] not in pruned.stdout
    assert (
        "removed 1 old run(s); kept: the newest 200 runs, none older than 1e-06 days"
        in pruned.stdout
    )
    assert [r["id"] for r in records(project)] == [running["id"]]
    assert Path(running["log"]).exists()
    assert not Path(old["log"]).exists()
    cancel = project.inv("repro.cancel", "--run", running["id"])
    assert cancel.returncode == 0, cancel.output


def test_a_bad_keep_setting_is_one_line(project):
    run = project.inv("repro.prune", env={"INVOKE_DVC_INVOKE_KEEP_RUNS": "all"})
    assert_one_line_error(run, "INVOKE_DVC_INVOKE_KEEP_RUNS=all", "dvc_invoke.keep.runs")


def test_a_settled_folder_is_read_from_the_cache_and_a_new_record_is_seen(tmp_path):
    from dvc_invoke.runs.store import Store

    store = Store(tmp_path)
    first = _ended_run(store, 1)
    past = 1_700_000_000
    os.utime(store.dir, (past, past))  # settled: nothing written there for a while
    assert [r.id for r in Store(tmp_path).all()] == [first.id]
    # The folder as the cache saw it: the records are not listed again. (A record
    # changed in place, which the store never does, shows it: its summary stands.)
    record = store.record_path(first.id)
    record.write_text(record.read_text().replace('"metrics"', '"elsewhere"'))
    os.utime(store.dir, (past, past))
    assert Store(tmp_path).newest(1, "metrics")[0].pipeline == "elsewhere"

    # A run's record is written by a rename into the folder: it is seen at once.
    second = _ended_run(store, 2)
    assert [r.id for r in Store(tmp_path).all()] == [second.id, first.id]


def test_status_of_an_unknown_pipeline_is_one_line_naming_those_there_are(project):
    assert project.inv("metrics").returncode == 0

    typo = project.inv("repro.status", "--pipeline", "metircs")
    assert_one_line_error(typo, "metircs", "metrics")
    # Its folder is another name of it: its runs.
    by_folder = project.inv("repro.status", "--pipeline", "metrics/")
    assert by_folder.returncode == 0 and "succeeded" in by_folder.stdout, by_folder.output
