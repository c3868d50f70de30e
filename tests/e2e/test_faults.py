"""Faults a team really meets, each asserting that nothing is lost.

"Nothing lost" means: no lock file reaches the branch without its data on
the DVC remote, the run's results stay in the workspace or on a branch, and
one command (given in the failure's line) finishes or redoes the job.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest
import yaml
from helpers import (
    Run,
    assert_fresh_clone_up_to_date,
    assert_one_line_error,
    latest,
    wait_ended,
    wait_for,
)

MESSAGE = "[DVC] Update model metrics"


def teammate_pushes(project, path, text, message="Teammate's change"):
    mate = project.clone(f"mate-{abs(hash((path, message))) % 10000}")
    target = mate.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    mate.git("add", path)
    mate.git("commit", "-qm", message)
    mate.git("push", "-q")
    return mate


def run_detached_slow(project, seconds=3, **env):
    run = project.inv("metrics", "--detach", env={"SANDBOX_SLOW": f"predict:{seconds}", **env})
    assert run.returncode == 0, run.output
    wait_for(lambda: "predict" in project.stages_run(), 60, "the predict stage")


def data_is_on_the_remote(project, path="metrics/predictions.csv"):
    other = project.clone(
        f"check-{abs(hash(path)) % 10000}-{len(os.listdir(project.sandbox.base))}"
    )
    other.sh(f"dvc pull -q {path}")
    return (other.path / path).is_file()


def script(path, body):
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


# -- teammates -------------------------------------------------------------------


def test_a_teammates_unrelated_push_mid_run_is_replayed_under_the_run(project):
    run_detached_slow(project)
    teammate_pushes(project, "README.md", "# Our ML project\n")

    ended = wait_ended(project)

    assert ended["status"] == "succeeded", ended
    assert project.origin_log()[:2] == [MESSAGE, "Teammate's change"]
    assert data_is_on_the_remote(project)
    assert "teammates pushed meanwhile" in open(ended["log"]).read()


@pytest.mark.parametrize(
    "path, text",
    [
        ("metrics/evaluate.py", "raise SystemExit('a better evaluation')\n"),
        ("metrics/dvc.lock", "schema: '2.0'\nstages: {}\n"),
        ("training/dvc.lock", "schema: '2.0'\nstages: {}\n"),  # a retrained model
    ],
    ids=["dependency", "lock-conflict", "upstream-lock"],
)
def test_a_teammates_push_of_what_the_run_depends_on_keeps_the_run_aside(project, path, text):
    start = project.git("rev-parse", "HEAD")
    run_detached_slow(project)
    teammate_pushes(project, path, text)

    ended = wait_ended(project)

    assert (ended["status"], ended["step"]) == ("failed", "git push"), ended
    assert path in ended["reason"] and "stale" in ended["reason"]
    assert ended["resume"].startswith("git pull, then inv repro --pipeline metrics")
    # The branch never got the stale lock; the run's commit is on a branch of its own.
    assert project.origin_log()[:2] == ["Teammate's change", "[DVC] Update training"]
    assert project.git("rev-parse", "HEAD") == start
    assert project.git("status", "--porcelain", "--untracked-files=no") == ""
    side = project.git("for-each-ref", "--format=%(refname:short)", "refs/heads/dvc-invoke/")
    assert side.startswith("dvc-invoke/metrics/")
    assert project.git("log", "-1", "--format=%s", side) == MESSAGE
    # ...and that commit's data is on the DVC remote: nothing of the run is lost.
    check = project.sandbox.base / "side-check"
    project.sh(f"git clone -q -b {side} . {check}")
    project.sh(f"cd {check} && dvc pull -q metrics/predictions.csv")
    assert (check / "metrics" / "predictions.csv").is_file()


def test_a_branch_behind_its_upstream_is_refused_before_the_run(project):
    teammate_pushes(project, "README.md", "# news\n")

    run = project.inv("metrics")

    assert_one_line_error(run, "is 1 commit behind origin/main: pull first")
    assert project.stages_run() == []
    guards = project.inv("guards", "--pipeline", "metrics")
    assert_one_line_error(guards, "is 1 commit behind origin/main")
    nofetch = project.inv("guards", "--pipeline", "metrics", "--skip", "fetch")
    assert_one_line_error(nofetch, "is behind origin: it has commits this clone lacks")
    skipped = project.inv(
        "guards", "--pipeline", "metrics", "--skip", "fetch", "--skip", "git-push"
    )
    assert skipped.returncode == 0, skipped.output


# -- remotes ---------------------------------------------------------------------


def test_an_unreachable_git_remote_is_refused_before_the_run(project):
    project.sandbox.origin.rename(project.sandbox.base / "origin-away.git")

    run = project.inv("metrics")

    assert_one_line_error(run, "guards failed", "cannot fetch from git remote 'origin'")
    assert project.stages_run() == []
    nofetch = project.inv("metrics", "--skip", "fetch")
    assert_one_line_error(nofetch, "git remote 'origin' does not accept a push")
    assert project.stages_run() == []


@pytest.mark.parametrize("broken", ["missing", "file"])
def test_a_broken_dvc_remote_is_refused_before_the_run(project, broken):
    remote = project.sandbox.remote
    remote.rename(remote.with_name("remote-away"))
    if broken == "file":
        remote.write_text("not a folder\n")

    run = project.inv("metrics")

    expected = "does not exist: mount it" if broken == "missing" else "is not a folder"
    line = assert_one_line_error(run, "guards failed", "DVC remote 'storage'", expected)
    if broken == "missing":
        assert f"create it (mkdir -p {remote})" in line
    assert project.stages_run() == []


def test_data_push_to_a_local_remote_that_is_gone_is_refused_and_makes_no_folder(project):
    remote = project.sandbox.remote
    remote.rename(remote.with_name("remote-away"))

    run = project.inv("data.push", "--pipeline", "metrics")

    assert_one_line_error(run, "dvc push failed", "does not exist: mount it", "nothing was pushed")
    assert not remote.exists()


def test_no_dvc_remote_at_all_is_refused_before_the_run(project):
    project.sh("dvc remote remove storage && git commit -qam 'No remote'")

    run = project.inv("metrics")

    assert_one_line_error(run, "no DVC remote is configured", "dvc remote add")


def test_the_dvc_remote_vanishing_mid_run_stops_before_git_push(project):
    origin = project.origin_log()
    remote = project.sandbox.remote
    run_detached_slow(project)
    remote.rename(remote.with_name("remote-away"))
    remote.write_text("the share went away\n")

    ended = wait_ended(project)

    assert (ended["status"], ended["step"]) == ("failed", "dvc push"), ended
    assert project.origin_log() == origin  # no lock without its data
    assert project.git("log", "-1", "--format=%s") == MESSAGE  # kept locally
    assert ended["resume"] == "inv publish --pipeline metrics"

    remote.unlink()
    remote.with_name("remote-away").rename(remote)
    done = project.inv("publish", "--pipeline", "metrics")

    assert done.returncode == 0, done.output
    assert project.origin_log()[0] == MESSAGE
    assert data_is_on_the_remote(project)


def test_a_transient_git_push_failure_is_retried(project, tmp_path):
    calls = tmp_path / "receive-pack-calls"
    wrapper = script(
        tmp_path / "flaky-receive-pack",
        f"""\
        n=$(cat {calls} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {calls}
        # the preflight's dry run is call 1; the real push's first try fails
        if [ "$n" = 2 ]; then echo "error: Connection reset by peer" >&2; exit 1; fi
        exec git-receive-pack "$@"
        """,
    )
    project.git("config", "remote.origin.receivepack", str(wrapper))
    (project.path / "invoke.yaml").write_text("dvc_invoke:\n  retry_delay: 0.1\n")

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    assert "git push: " in run.stdout and "trying again in 0.1s (1/2)" in run.stdout
    assert project.origin_log()[0] == MESSAGE
    assert calls.read_text().strip() == "3"


def test_a_transient_dvc_push_failure_is_retried_and_a_permanent_one_is_not(project, tmp_path):
    calls = tmp_path / "dvc-push-calls"
    wrapper = script(
        tmp_path / "flaky-dvc",
        f"""\
        if [ "$1" = push ]; then
          n=$(cat {calls} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {calls}
          if [ "$n" = 1 ]; then echo "ERROR: failed to push data: Read timed out" >&2; exit 1; fi
          if [ "$n" = 2 ]; then echo "ERROR: failed to push data: Permission denied" >&2; exit 1; fi
        fi
        exec dvc "$@"
        """,
    )
    (project.path / "invoke.yaml").write_text(
        f"dvc_invoke:\n  dvc: {wrapper}\n  retry_delay: 0.1\n"
    )

    run = project.inv("metrics")

    line = assert_one_line_error(run, "dvc push failed", "Permission denied")
    assert calls.read_text().strip() == "2"  # timed out: retried; refused: not
    assert "inv publish --pipeline metrics" in line
    again = project.inv("publish", "--pipeline", "metrics")
    assert again.returncode == 0, again.output
    assert project.origin_log()[0] == MESSAGE


# -- interrupts ------------------------------------------------------------------


def test_sigterm_during_dvc_push_leaves_a_run_that_publish_finishes(project, tmp_path):
    wrapper = script(
        tmp_path / "slow-push-dvc",
        """\
        if [ "$1" = push ] && [ -n "$SLOW_PUSH" ]; then sleep 30; fi
        exec dvc "$@"
        """,
    )
    (project.path / "invoke.yaml").write_text(f"dvc_invoke:\n  dvc: {wrapper}\n")
    origin = project.origin_log()
    run = project.inv("metrics", "--detach", env={"SLOW_PUSH": "1"})
    assert run.returncode == 0, run.output
    wait_for(lambda: (latest(project) or {}).get("step") == "publish", 60, "publishing")
    wait_for(lambda: "slow-push-dvc push" in open(latest(project)["log"]).read(), 30, "dvc push")

    os.kill(latest(project)["pid"], signal.SIGTERM)

    ended = wait_ended(project)
    assert (ended["status"], ended["step"]) == ("cancelled", "dvc push"), ended
    assert ended["resume"] == "inv publish --pipeline metrics"
    assert project.origin_log() == origin
    done = project.inv("publish", "--pipeline", "metrics")
    assert done.returncode == 0, done.output
    assert project.origin_log()[0] == MESSAGE
    assert data_is_on_the_remote(project)


@pytest.fixture
def full_remote(project):
    """The DVC remote on a real, tiny filesystem that is full."""
    remote = project.sandbox.remote
    moved = remote.with_name("remote-before")
    remote.rename(moved)
    remote.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(remote)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["cp", "-a", f"{moved}/.", str(remote)], check=True)
        filler = remote / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(fd)
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(remote)], capture_output=True)


def test_a_full_dvc_remote_stops_before_git_push_and_publish_finishes_later(project, full_remote):
    origin = project.origin_log()

    run = project.inv("metrics")

    line = assert_one_line_error(run, "dvc push failed", "inv publish --pipeline metrics")
    assert "No space left on device" in line
    assert "dvc push metrics/predictions.csv" in run.stdout and "trying again" not in run.stdout
    assert project.origin_log() == origin
    assert project.git("log", "-1", "--format=%s") == MESSAGE

    full_remote.unlink()  # space again
    done = project.inv("publish", "--pipeline", "metrics")

    assert done.returncode == 0, done.output
    assert project.origin_log()[0] == MESSAGE


@pytest.mark.parametrize("fault", ["unmounted", "re-created"])
def test_a_local_remote_replaced_mid_run_gets_nothing_and_publish_finishes_later(
    canonical, fault, request
):
    """A share unmounted mid-run leaves an empty mountpoint; a folder removed and
    re-created is empty too. `dvc push` would fill either, quietly."""
    remote = canonical.sandbox.remote
    real = remote.with_name("dvc-remote.real")
    if fault == "unmounted":
        remote.rename(real)
        remote.mkdir()
        mounted = subprocess.run(["mount", "--bind", str(real), str(remote)], capture_output=True)
        if mounted.returncode != 0:
            remote.rmdir()
            real.rename(remote)
            pytest.skip(f"mount --bind is not permitted here: {mounted.stderr.decode().strip()}")
        request.addfinalizer(
            lambda: subprocess.run(["umount", "-l", str(remote)], capture_output=True)
        )
    origin = canonical.origin_log()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(SANDBOX_TRACE=str(canonical.trace_file), SANDBOX_SLOW="evaluate:4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "metrics"],
        cwd=canonical.path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: "evaluate" in canonical.stages_run(), 60, "the evaluate stage")
    if fault == "unmounted":
        subprocess.run(["umount", str(remote)], check=True)  # the share goes away
    else:
        remote.rename(real)
        remote.mkdir()
    out, err = proc.communicate(timeout=180)

    line = assert_one_line_error(
        Run(proc.returncode, out, err), "dvc push failed", "is not the folder it was"
    )
    assert line.endswith("then run: inv publish --pipeline metrics")
    assert list(remote.iterdir()) == []  # nothing went to the stand-in folder
    assert canonical.origin_log() == origin

    remote.rmdir()
    real.rename(remote)  # mounted again
    done = canonical.inv("publish", "--pipeline", "metrics")

    assert done.returncode == 0, done.output
    assert canonical.origin_log()[0] == "[DVC] Update metrics"
    assert_fresh_clone_up_to_date(canonical)


def test_an_object_in_neither_cache_nor_remote_keeps_the_lock_off_git(canonical):
    """`dvc push` says "Everything is up to date" and exits 0 when the cache lacks
    an object: the remote is asked, and the lock file stays off the branch."""
    (canonical.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    train:\n      gates: {}\n"  # not about gates
    )
    data = canonical.path / "data" / "data.csv"
    data.write_text(data.read_text() + "41,82.2\n42,84.0\n")
    canonical.sh("dvc add -q data/data.csv")
    canonical.git("commit", "-qam", "More data, never pushed")
    md5 = yaml.safe_load((canonical.path / "data" / "data.csv.dvc").read_text())["outs"][0]["md5"]
    (canonical.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink()
    origin = canonical.origin_log()

    run = canonical.inv("train", "--skip", "fetch")

    line = assert_one_line_error(run, "dvc push failed", "data/data.csv exist neither")
    assert "nothing was pushed to git" in line
    assert canonical.origin_log() == origin
    assert canonical.git("log", "-1", "--format=%s") == "[DVC] Update train"  # kept locally


def test_a_protected_branch_keeps_the_run_for_review_and_says_what_the_server_said(project):
    hook = project.sandbox.origin / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "while read old new ref; do\n"
        '  if [ "$ref" = refs/heads/main ]; then\n'
        '    echo "GH006: Protected branch update failed for refs/heads/main." >&2; exit 1\n'
        "  fi\n"
        "done\n"
    )
    hook.chmod(0o755)
    start = project.git("rev-parse", "HEAD")

    run = project.inv("metrics")

    line = assert_one_line_error(run, "git push failed: git push rejected for good")
    assert "GH006: Protected branch update failed" in line and "hook declined" in line
    assert "then run: open a pull request from dvc-invoke/metrics/" in line
    assert project.origin_log()[0] != MESSAGE  # main never got it
    assert project.git("rev-parse", "HEAD") == start  # nor does the local main
    side = project.git("for-each-ref", "--format=%(refname:short)", "refs/heads/dvc-invoke/")
    origin = project.sandbox.origin
    assert project.sh(f"git -C {origin} log -1 --format=%s {side}").strip() == MESSAGE
    # The branch for review is whole: its clone pulls everything and is up to date.
    check = project.sandbox.base / "review-check"
    project.sh(f"git clone -q -b {side} {origin} {check}")
    project.sh(f"cd {check} && dvc pull -q")
    assert "Data and pipelines are up to date" in project.sh(f"cd {check} && dvc status")
    assert latest(project)["resume"].startswith(f"open a pull request from {side}, or inv")


def refuse_pushes(project, *, to: str = "refs/heads/") -> None:
    """A server hook that refuses every push to refs starting with ``to``."""
    hook = project.sandbox.origin / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "while read old new ref; do\n"
        f'  case "$ref" in {to}*) echo "pushes are frozen" >&2; exit 1;; esac\n'
        "done\n"
    )
    hook.chmod(0o755)


def test_a_run_kept_aside_is_published_by_inv_publish_once_origin_accepts(project):
    refuse_pushes(project)  # main and the side branch alike
    start = project.git("rev-parse", "HEAD")
    refused = project.inv("metrics")
    line = assert_one_line_error(refused, "git push rejected for good", "not pushed", "inv publish")
    # The side branch's own refusal says what the server said, and the way out is a command.
    assert "(not pushed: pushes are frozen" in line, line
    assert line.endswith(
        "then run: inv publish --pipeline metrics once origin accepts pushes to main"
    )
    side = latest(project)["kept"]
    assert side.startswith("dvc-invoke/metrics/")
    assert project.git("rev-parse", "HEAD") == start
    assert project.sh(f"git -C {project.sandbox.origin} branch --list 'dvc-invoke/*'") == ""

    still = project.inv("publish", "--pipeline", "metrics")  # origin refuses still

    assert_one_line_error(still, "git push rejected for good", side)
    assert "succeeded" not in still.output
    assert latest(project)["status"] == "failed"
    assert project.git("rev-parse", "HEAD") == start  # put back again, no new branch
    assert (
        project.git("for-each-ref", "--format=%(refname:short)", "refs/heads/dvc-invoke/") == side
    )

    (project.sandbox.origin / "hooks" / "pre-receive").unlink()
    done = project.inv("publish", "--pipeline", "metrics")

    assert done.returncode == 0, done.output
    assert project.origin_log()[0] == MESSAGE
    assert project.git("rev-parse", "origin/main") == project.git("rev-parse", "HEAD")
    # Published where it was meant to go: the local side branch is gone.
    assert project.git("for-each-ref", "refs/heads/dvc-invoke/") == ""
    record = latest(project)
    assert (record["status"], record["git_pushed"]) == ("succeeded", True)
    assert_fresh_clone_up_to_date(project)


def test_a_run_kept_aside_is_not_put_on_a_branch_that_moved_since(project):
    refuse_pushes(project)
    assert project.inv("metrics").returncode != 0
    side = latest(project)["kept"]
    (project.sandbox.origin / "hooks" / "pre-receive").unlink()
    (project.path / "NOTES.md").write_text("a commit of the user's\n")
    project.git("add", "NOTES.md")
    project.git("commit", "-qm", "Notes")
    head = project.git("rev-parse", "HEAD")

    run = project.inv("publish", "--pipeline", "metrics")

    line = assert_one_line_error(run, "git push failed", f"kept on branch {side}")
    assert f"git push origin {side}" in line
    assert project.git("rev-parse", "HEAD") == head
    assert project.origin_log()[0] != MESSAGE


# -- time limits -----------------------------------------------------------------


def running(word):
    """The processes of this machine whose command line holds ``word``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if word in " ".join(proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def a_hook(project, name, body):
    return script(project.path / ".git" / "hooks" / name, body)


def test_a_pre_commit_hook_that_hangs_is_stopped_at_its_time_limit(project):
    hook = a_hook(project, "pre-commit", "echo 'checking...'\nsleep 31001\n")
    (project.path / "invoke.yaml").write_text("dvc_invoke:\n  timeouts: {commit: 2}\n")
    head, origin, remote = (
        project.git("rev-parse", "HEAD"),
        project.origin_log(),
        project.remote_objects(),
    )

    run = project.inv("metrics")

    line = assert_one_line_error(
        run,
        "commit failed: git commit did not finish within 2 s (a hook that hangs?)",
        "nothing was committed",
        "raise dvc_invoke.timeouts.commit or fix the hook",
    )
    assert line.endswith("then run: inv publish --pipeline metrics")
    assert running("sleep 31001") == []  # the hook's own processes are stopped too
    assert not (project.path / ".git" / "index.lock").exists()
    assert project.git("rev-parse", "HEAD") == head
    assert project.git("diff", "--cached", "--name-only") == ""
    assert (project.origin_log(), project.remote_objects()) == (origin, remote)
    assert (latest(project)["status"], latest(project)["step"]) == ("failed", "commit")
    hook.unlink()
    (project.path / "invoke.yaml").unlink()  # no limit a loaded machine could reach
    done = project.inv("publish", "--pipeline", "metrics")
    assert done.returncode == 0, done.output
    assert project.origin_log()[0] == MESSAGE
    assert_fresh_clone_up_to_date(project)


def test_a_pre_push_hook_that_hangs_is_stopped_at_the_guards(project):
    a_hook(project, "pre-push", "sleep 31002\n")  # git push --dry-run runs it too
    (project.path / "invoke.yaml").write_text("dvc_invoke:\n  timeouts: {git_push: 2}\n")

    run = project.inv("metrics")

    assert_one_line_error(
        run,
        "guards failed: git push did not finish within 2 s",
        "raise dvc_invoke.timeouts.git_push",
    )
    assert project.stages_run() == []
    assert running("sleep 31002") == []


# Python starts it in every process: a `dvc push` process sleeps before it does anything.
STALLED_PUSH = """\
import os, sys, time
if os.path.basename(sys.argv[0]) == "dvc" and sys.argv[1:2] == ["push"]:
    time.sleep(31003)
"""


@pytest.mark.parametrize("dvc", ["the DVC of the run's process", "a configured dvc"])
def test_a_dvc_push_that_stalls_is_stopped_at_its_time_limit(project, tmp_path, dvc):
    (tmp_path / "sitecustomize.py").write_text(STALLED_PUSH)
    config = "dvc_invoke:\n  timeouts: {dvc_push: 2}\n"
    if dvc == "a configured dvc":
        config += f"  dvc: {os.path.join(os.path.dirname(sys.executable), 'dvc')}\n"
    (project.path / "invoke.yaml").write_text(config)
    origin = project.origin_log()

    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    run = project.inv("metrics", env={"PYTHONPATH": os.pathsep.join(path)})

    line = assert_one_line_error(
        run,
        "dvc push failed: dvc push did not finish within 2 s",
        "nothing was pushed to git",
        "raise dvc_invoke.timeouts.dvc_push",
    )
    assert line.endswith("then run: inv publish --pipeline metrics")
    assert running("31003") == [] and project.origin_log() == origin
    (project.path / "invoke.yaml").unlink()  # no limit a loaded machine could reach
    done = project.inv("publish", "--pipeline", "metrics")  # the remote answers again
    assert done.returncode == 0, done.output
    assert project.origin_log()[0] == MESSAGE
    assert data_is_on_the_remote(project)
