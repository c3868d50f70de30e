"""The whole flow, end to end: `inv metrics` and `inv repro --pipeline NAME`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import assert_fresh_clone_up_to_date, assert_one_line_error, echoed, latest


def test_fresh_clone_pulls_inputs_runs_and_publishes(fresh):
    assert not (fresh.path / "model" / "model.json").exists()
    before = fresh.git("rev-parse", "HEAD")

    run = fresh.inv("metrics")

    assert run.returncode == 0, run.output
    # One pull for every input, the model of the other pipeline included.
    # Named by the stages that write them: the train stage's model, the test set's .dvc.
    assert "dvc pull training/dvc.yaml:train dataset/testset.dvc\n" in run.stdout
    assert fresh.stages_run() == ["predict", "evaluate"]
    assert fresh.origin_log()[0] == "[DVC] Update model metrics"
    assert fresh.git("rev-parse", "HEAD") == fresh.git("rev-parse", "origin/main")
    changed = fresh.git("diff", "--name-only", before, "HEAD").split()
    assert sorted(changed) == ["metrics/.gitignore", "metrics/dvc.lock", "metrics/scores.json"]
    assert fresh.git("status", "--porcelain") == ""
    assert "metrics succeeded" in run.stdout
    # DVC's own progress is shown, not its advice to `git add` and `dvc push`:
    # the flow does both. The run's log reads the same.
    log = Path(latest(fresh)["log"]).read_text()
    for output in (run.stdout, log):
        assert "Running stage 'metrics/dvc.yaml:evaluate'" in output
        assert "To track the changes with git" not in output
        assert "send your updates to remote storage" not in output

    # What landed is usable: another teammate gets the predictions from the remote.
    other = fresh.clone("other")
    other.sh("dvc pull metrics/predictions.csv")
    assert (other.path / "metrics" / "predictions.csv").read_text() == (
        fresh.path / "metrics" / "predictions.csv"
    ).read_text()


def test_dvc_push_happens_before_git_push(fresh):
    run = fresh.inv("metrics")
    assert run.returncode == 0, run.output
    verbs = [" ".join(cmd.split()[:2]) for cmd in echoed(run)]
    assert verbs == [
        "git fetch",  # preflight: is the branch behind its upstream?
        "dvc pull",
        "dvc repro",
        "git add",
        "git commit",
        "dvc push",
        "dvc status",  # the remote holds every object the commit references
        "git push",
    ]


def test_forced_run_never_retrains_the_upstream_model(project):
    model = (project.path / "model" / "model.json").read_text()
    lock = (project.path / "training" / "dvc.lock").read_text()

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    assert project.stages_run() == ["predict", "evaluate"]
    assert (project.path / "model" / "model.json").read_text() == model
    assert (project.path / "training" / "dvc.lock").read_text() == lock


def retrain_needed(project):
    """A teammate's new training data: the training pipeline is stale."""
    data = project.path / "dataset" / "train.csv"
    data.write_text(data.read_text() + "6,12.2\n")
    project.sh("dvc add -q dataset/train.csv && dvc push -q dataset/train.csv")
    project.git("commit", "-qam", "More training data")
    project.git("push", "-q")


def test_upstream_runs_each_stale_upstream_pipeline_whole_first(project):
    retrain_needed(project)

    run = project.inv("metrics", "--upstream")

    assert run.returncode == 0, run.output
    assert project.stages_run() == ["train", "predict", "evaluate"]
    # Two runs, two commits: training's lock never rides along with the metrics.
    assert project.origin_log()[:2] == ["[DVC] Update model metrics", "[DVC] Update training"]
    assert "upstream training must run first: stage train: dataset/train.csv changed" in run.stdout
    assert_fresh_clone_up_to_date(project)


def test_upstream_that_does_not_commit_is_refused_before_any_stage(project):
    retrain_needed(project)
    config = {"dvc_invoke": {"pipelines": {"training": {"commit": False}}}}
    (project.path / "invoke.yaml").write_text(json.dumps(config))
    project.git("add", "invoke.yaml")
    project.git("commit", "-qm", "Training is committed by hand")
    project.git("push", "-q")

    run = project.inv("metrics", "--upstream")

    assert_one_line_error(run, "pipeline training must run first but does not commit")
    assert project.stages_run() == []


def test_a_stale_upstream_is_one_warning_and_is_not_rebuilt(project):
    model = (project.path / "training" / "dvc.lock").read_text()
    retrain_needed(project)

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    (warning,) = [ln for ln in run.stdout.splitlines() if ln.startswith("! upstream is stale")]
    assert "training (stage train: dataset/train.csv changed)" in warning
    assert project.stages_run() == ["predict", "evaluate"]
    assert (project.path / "training" / "dvc.lock").read_text() == model


def test_a_teammates_published_upstream_is_not_stale_before_it_is_pulled(project):
    # A teammate retrained and published; here, `git pull` brought the lock,
    # not the data: the workspace's model is the old one, yet nothing is stale.
    teammate = project.clone("teammate")
    teammate.sh("dvc pull -q dataset/train.csv")
    retrain_needed(teammate)
    assert teammate.inv("repro", "--pipeline", "training").returncode == 0
    project.git("pull", "-q")

    run = project.inv("metrics", "--upstream")

    assert run.returncode == 0, run.output
    assert "upstream is stale" not in run.stdout and "must run first" not in run.stdout
    assert project.stages_run() == ["train", "predict", "evaluate"]  # train: the teammate's
    assert project.origin_log()[0] == "[DVC] Update model metrics"


def test_upstream_with_nothing_stale_upstream_runs_only_the_pipeline(project):
    run = project.inv("metrics", "--upstream")

    assert run.returncode == 0, run.output
    assert project.stages_run() == ["predict", "evaluate"]
    assert "upstream is stale" not in run.stdout


def test_unchanged_pipeline_makes_no_commit_and_no_push(project):
    first = project.inv("metrics")
    assert first.returncode == 0, first.output
    head = project.git("rev-parse", "HEAD")
    log = project.origin_log()

    again = project.inv("metrics")  # forced: the stages run, with the same results

    assert again.returncode == 0, again.output
    assert project.stages_run() == ["predict", "evaluate"] * 2
    assert project.git("rev-parse", "HEAD") == head
    assert project.origin_log() == log
    # Its inputs are in the workspace as recorded: what `dvc pull` would find, no pull.
    assert [cmd.split()[:2] for cmd in echoed(again)] == [["git", "fetch"], ["dvc", "repro"]]
    assert "nothing to pull" in again.stdout
    assert "no commit" in again.stdout


def test_unforced_repro_skips_unchanged_stages_and_publishes_nothing(project):
    origin = project.origin_log()

    run = project.inv("repro", "--pipeline", "training")

    assert run.returncode == 0, run.output
    assert project.stages_run() == []
    assert project.origin_log() == origin
    assert "training succeeded" in run.stdout


def test_repro_task_runs_a_pipeline_found_by_folder(project):
    (project.path / "dataset" / "train.csv").write_text("x,y\n1,3\n2,6\n")
    project.sh("dvc add -q dataset/train.csv && git commit -qam 'More data'")

    run = project.inv("repro", "--pipeline", "training")

    assert run.returncode == 0, run.output
    assert project.stages_run() == ["train"]
    assert json.loads((project.path / "model" / "model.json").read_text()) == {"slope": 3.0}
    assert project.origin_log()[:2] == ["[DVC] Update training", "More data"]
    assert project.git("status", "--porcelain") == ""


def test_configured_pipeline_wins_and_keeps_its_message_verbatim(project):
    message = 'Metrics: it\'s $(touch PWNED) `date` "quoted"\n\nsecond paragraph'
    (project.path / "invoke.yaml").write_text(
        json.dumps(
            {
                "dvc_invoke": {
                    "pipelines": {
                        "eval": {"dvcfile": "metrics/dvc.yaml", "message": message, "force": True}
                    }
                }
            }
        )
    )
    run = project.inv("repro", "--pipeline", "eval")

    assert run.returncode == 0, run.output
    assert project.git("log", "-1", "--format=%B") == message
    assert not list(project.sandbox.base.rglob("PWNED"))


@pytest.mark.parametrize("staged", [False, True], ids=["unstaged", "staged"])
def test_dirty_workspace_is_refused_before_anything_runs(project, staged):
    (project.path / "metrics" / "evaluate.py").write_text("raise SystemExit(1)\n")
    if staged:
        project.git("add", "metrics/evaluate.py")
    head = project.git("rev-parse", "HEAD")

    run = project.inv("metrics")

    line = assert_one_line_error(run, "guards failed", "metrics/evaluate.py", "inv metrics")
    assert "uncommitted changes" in line
    assert project.stages_run() == []
    assert project.git("rev-parse", "HEAD") == head
    assert "started" not in run.stdout
    assert "git fetch" not in run.output  # refused before anything reached the network


def test_untracked_files_do_not_block_a_run_and_are_never_committed(project):
    (project.path / "notes.txt").write_text("scratch\n")
    (project.path / ".env").write_text("MODEL_REGISTRY_PASSWORD=not-for-git\n")

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    tracked = project.git("ls-files").split()
    assert "notes.txt" not in tracked and ".env" not in tracked


@pytest.mark.parametrize(
    "name",
    ["nope", "x; touch PWNED", "$(touch PWNED)", "`touch PWNED`", "..", "../metrics", "a b"],
)
def test_unknown_and_hostile_pipeline_names_run_nothing(project, name):
    run = project.inv("repro", "--pipeline", name)

    assert_one_line_error(run, "pipelines here: metrics, training")
    assert not list(project.sandbox.base.rglob("PWNED"))
    assert project.stages_run() == []


def test_missing_pipeline_option_lists_the_pipelines(project):
    run = project.inv("repro")
    assert_one_line_error(run, "--pipeline", "metrics, training")


def test_dry_run_prints_every_command_and_runs_none(fresh):
    head = fresh.git("rev-parse", "HEAD")

    run = fresh.inv("--dry", "metrics")

    assert run.returncode == 0, run.output
    # Exactly what the real run runs, in order, and nothing that only reads.
    assert [line for line in run.stdout.splitlines() if line.startswith(("git", "dvc"))] == [
        "git fetch -q origin",
        "git push --dry-run -q origin HEAD:refs/heads/main",
        "dvc pull training/dvc.yaml:train dataset/testset.dvc",
        "dvc repro --single-item --force metrics/dvc.yaml",
        "git add -f -- metrics/dvc.lock metrics/.gitignore metrics/scores.json",
        "git commit -q -m '[DVC] Update model metrics' --"
        " metrics/dvc.lock metrics/.gitignore metrics/scores.json",
        "dvc push metrics/predictions.csv model/model.json dataset/testset",
        "dvc status --cloud --json metrics/predictions.csv model/model.json dataset/testset",
        "git push origin HEAD:refs/heads/main",
    ]
    # It says that nothing was done, and leaves no trace: no record, no success.
    assert run.stdout.rstrip().endswith("dry run of metrics: nothing was done")
    assert "succeeded" not in run.output and "\x1b" not in run.output
    assert not (fresh.path / ".dvc" / "tmp" / "dvc-invoke").exists()
    assert fresh.stages_run() == []
    assert not (fresh.path / "model" / "model.json").exists()
    assert fresh.git("rev-parse", "HEAD") == head
    assert fresh.git("status", "--porcelain") == ""


def test_failing_stage_stops_before_publishing(project):
    (project.path / "metrics" / "evaluate.py").write_text("raise SystemExit('broken')\n")
    project.git("commit", "-qam", "Break the evaluation")
    origin = project.origin_log()

    run = project.inv("metrics")

    line = assert_one_line_error(run, "repro failed", "then run: inv metrics")
    assert "failed to reproduce 'metrics/dvc.yaml:evaluate'" in line
    assert "metrics failed" in run.stdout
    assert project.origin_log() == origin
    assert project.git("log", "-1", "--format=%s") == "Break the evaluation"


def test_publish_finishes_a_run_whose_dvc_push_failed(project):
    remote = project.sandbox.remote
    remote.rename(remote.with_name("remote-away"))
    remote.write_text("not a folder: the DVC remote is broken\n")
    origin = project.origin_log()

    # Past the preflight, on purpose: as if the remote broke during the run.
    run = project.inv("metrics", "--skip", "dvc-remote")

    line = assert_one_line_error(run, "dvc push failed", "inv publish --pipeline metrics")
    assert "Not a directory" in line
    # Nothing reached git: no teammate can fetch a lock whose data is missing.
    assert project.origin_log() == origin
    assert project.git("log", "-1", "--format=%s") == "[DVC] Update model metrics"
    assert project.git("status", "--porcelain") == ""

    remote.unlink()
    remote.with_name("remote-away").rename(remote)
    done = project.inv("publish", "--pipeline", "metrics")

    assert done.returncode == 0, done.output
    assert project.origin_log() == ["[DVC] Update model metrics", *origin]
    other = project.clone("other")
    other.sh("dvc pull metrics/predictions.csv")
    assert (other.path / "metrics" / "predictions.csv").is_file()

    again = project.inv("publish", "--pipeline", "metrics")
    assert again.returncode == 0, again.output
    assert project.origin_log() == ["[DVC] Update model metrics", *origin]


def test_publish_commits_a_run_whose_commit_never_happened(project):
    stages = project.inv("repro.stages", "--pipeline", "metrics", "--force")
    assert project.git("status", "--porcelain")  # the lock file changed
    # Our advice, not DVC's `git add`: publishing also pushes the data first.
    assert "to commit and push what changed: inv publish --pipeline metrics" in stages.stdout
    assert "git add" not in stages.stdout

    run = project.inv("publish", "--pipeline", "metrics")

    assert run.returncode == 0, run.output
    assert project.origin_log()[0] == "[DVC] Update model metrics"
    assert project.git("status", "--porcelain") == ""


def test_committing_what_a_run_used_then_publishing_finishes_that_run(project):
    import threading

    from helpers import wait_for

    script = project.path / "metrics" / "evaluate.py"

    def edit_while_predicting():  # a teammate's fix, saved while the run goes on
        wait_for(lambda: "predict" in project.stages_run(), 60, "predict to start")
        script.write_text(script.read_text() + "# rounding noted\n")

    editor = threading.Thread(target=edit_while_predicting)
    editor.start()
    run = project.inv("metrics", env={"SANDBOX_SLOW": "predict:4"})
    editor.join()

    assert_one_line_error(run, "commit failed", "changed during the run: metrics/evaluate.py")
    assert latest(project)["status"] == "failed"
    project.git("commit", "-qm", "Note the rounding", "--", "metrics/evaluate.py")

    done = project.inv("publish", "--pipeline", "metrics")

    assert done.returncode == 0, done.output
    assert project.origin_log()[:2] == ["[DVC] Update model metrics", "Note the rounding"]
    finished = latest(project)
    assert finished["status"] == "succeeded", finished
    assert finished["published_by"] == "inv publish --pipeline metrics"
    assert_fresh_clone_up_to_date(project)


def test_branch_without_upstream_is_refused_before_running(project):
    project.git("checkout", "-q", "-b", "experiment")

    run = project.inv("metrics")

    assert_one_line_error(run, "no upstream", "git push -u origin experiment")
    assert project.stages_run() == []


def test_a_hostile_branch_name_is_only_ever_a_word(project):
    branch = "exp;touch${IFS}PWNED$(touch${IFS}PWNED2)"
    project.git("checkout", "-q", "-b", branch)
    project.git("push", "-q", "-u", "origin", branch)

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    assert not list(project.sandbox.base.rglob("PWNED*"))
    log = subprocess.run(
        ["git", "--git-dir", str(project.sandbox.origin), "log", "-1", "--format=%s", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert log == "[DVC] Update model metrics"


def test_a_hostile_dvc_setting_is_one_quoted_word(project):
    (project.path / "invoke.yaml").write_text("dvc_invoke:\n  dvc: 'dvc; touch PWNED'\n")
    run = project.inv("metrics")
    assert_one_line_error(run, "command not found")
    assert not list(project.sandbox.base.rglob("PWNED*"))
