"""DVC's own get-started layout, end to end: one root dvc.yaml of four stages,
params.yaml, a cached and git-ignored eval/ written as dvclive writes it, and
metrics and plots declared at the top level (`sandbox.create_canonical`).

After every publishing path, the invariant: a fresh clone of origin can
`dvc pull` everything and finds the pipeline up to date.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import (
    assert_fresh_clone_up_to_date,
    assert_one_line_error,
    echoed,
    latest,
    records,
    wait_ended,
)

STAGES = ["prepare", "featurize", "train", "evaluate"]


def worse_model(project, bias="0.5"):
    params = project.path / "params.yaml"
    params.write_text(params.read_text().replace("bias: 0.0", f"bias: {bias}"))
    project.git("commit", "-qam", "A worse model")


def no_gates_published(project):
    """Gates off for train, committed and pushed, so the team shares it (not about gates)."""
    (project.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    train:\n      gates: {}\n"
    )
    project.git("add", "invoke.yaml")
    project.git("commit", "-qm", "No gate on this host")
    project.sh("git push -q")


def test_a_fresh_clone_with_nothing_changed_runs_nothing_and_publishes_nothing(canonical_fresh):
    origin = canonical_fresh.origin_log()

    run = canonical_fresh.inv("train")

    assert run.returncode == 0, run.output
    assert canonical_fresh.stages_run() == []
    # The outputs of the up-to-date stages came from the remote, so DVC found them fresh.
    # One pull: the input, and the outputs of the up-to-date stages (missing
    # from the remote is allowed for those only: checked after).
    assert (
        "dvc pull --allow-missing data/data.csv.dvc dvc.yaml:prepare dvc.yaml:featurize"
        " dvc.yaml:train dvc.yaml:evaluate"
    ) in run.stdout
    # DVC's own check of each stage finds them up to date: no `dvc repro` to start.
    assert "up to date, as DVC checks: prepare, featurize, train, evaluate" in run.stdout
    assert "dvc repro" not in run.stdout
    assert "no commit" in run.stdout and "git push origin" not in run.stdout
    assert canonical_fresh.origin_log() == origin
    assert latest(canonical_fresh)["status"] == "succeeded"
    assert_fresh_clone_up_to_date(canonical_fresh)


def test_a_changed_param_reruns_what_depends_on_it_and_publishes_a_state_clones_find_fresh(
    canonical_fresh,
):
    # Not about gates (any change to the bias costs accuracy here): none on this host.
    (canonical_fresh.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    train:\n      gates: {}\n"
    )
    worse_model(canonical_fresh, bias="0.0001")
    canonical_fresh.sh("git push -q")

    run = canonical_fresh.inv("train", "--skip", "fetch")

    assert run.returncode == 0, run.output
    assert canonical_fresh.stages_run() == ["train", "evaluate"]
    assert canonical_fresh.origin_log()[0] == "[DVC] Update train"
    assert_fresh_clone_up_to_date(canonical_fresh)


def test_a_stage_subset_forces_the_metrics_without_retraining(canonical_fresh):
    run = canonical_fresh.inv("metrics")

    assert run.returncode == 0, run.output
    assert canonical_fresh.stages_run() == ["evaluate"]
    assert "dvc repro --single-item --force evaluate" in run.stdout
    # The other stages of the same dvc.yaml are upstream: pulled, never rebuilt.
    assert "dvc pull --allow-missing dvc.yaml:featurize dvc.yaml:train dvc.yaml:evaluate" in (
        run.stdout
    )
    assert canonical_fresh.origin_log()[0] == "[DVC] Update metrics"
    assert_fresh_clone_up_to_date(canonical_fresh)


@pytest.mark.parametrize(
    "name, repro",
    [
        (".", "dvc repro --single-item --force dvc.yaml"),
        ("dvc.yaml", "dvc repro --single-item --force dvc.yaml"),
        # tasks.py makes that stage the metrics pipeline (forced): the address means it.
        ("dvc.yaml:evaluate", "dvc repro --single-item --force evaluate"),
    ],
)
def test_pipelines_are_named_as_dvc_users_name_them(canonical, name, repro):
    # Forced: up to date, the dry run would say so and name no repro command.
    run = canonical.inv("--dry", "repro", "--pipeline", name, "--force")

    assert run.returncode == 0, run.output
    assert repro in run.stdout


def test_a_stage_that_is_not_there_is_one_line_naming_the_stages(canonical):
    run = canonical.inv("repro", "--pipeline", "dvc.yaml:evaluat")

    assert_one_line_error(
        run, "dvc.yaml has no stage evaluat", "prepare, featurize, train, evaluate"
    )


def test_the_pipelines_listing_shows_every_name(canonical):
    run = canonical.inv("repro.pipelines")

    assert run.returncode == 0, run.output
    rows = [line.split() for line in run.stdout.splitlines()[1:] if line.strip()]
    # The root dvc.yaml is the train task's pipeline: the listing says so.
    assert rows == [
        ["dvc.yaml", "dvc.yaml", "all", "=", "train"],
        ["metrics", "dvc.yaml", "evaluate"],
        ["train", "dvc.yaml", "all"],
    ]


def test_top_level_metrics_are_gated_and_a_worse_model_is_not_published(canonical):
    worse_model(canonical)
    origin = canonical.origin_log()

    run = canonical.inv("train")

    line = assert_one_line_error(run, "gate failed", "eval/metrics.json:acc")
    assert "inv publish --pipeline train --accept" in line
    # Said once: the last line has the reason and the resume, the report the numbers.
    assert run.output.count("metrics got worse") == 1
    assert run.output.count("inv publish --pipeline train --accept") == 1
    assert "✘ train failed after" in run.stdout and "at gate" in run.stdout
    assert canonical.origin_log() == origin
    assert canonical.stages_run() == ["train", "evaluate"]

    # Accepted on purpose, it publishes, and the numbers go with it.
    accepted = canonical.inv("publish", "--pipeline", "train", "--accept")

    assert accepted.returncode == 0, accepted.output
    assert canonical.origin_log()[0] == "[DVC] Update train"
    assert "eval/metrics.json:acc" in accepted.stdout
    assert_fresh_clone_up_to_date(canonical)


def test_a_worse_experiment_applied_and_committed_by_hand_is_refused_at_the_gate(canonical):
    # The most natural way to publish an experiment by hand: the pipeline is up to
    # date when `inv train` starts, and HEAD's own metrics are the worse ones.
    canonical.sh("python -m dvc exp run -q -S train.bias=0.5 -n worse")
    canonical.sh("python -m dvc exp apply worse")
    canonical.sh("git commit -qam 'Apply experiment worse'")
    published = canonical.git("rev-parse", "origin/main")

    run = canonical.inv("train")

    assert_one_line_error(run, "gate failed", "eval/metrics.json:acc", "--accept")
    assert canonical.stages_run() == []  # nothing to run: the gate read what it applied
    assert canonical.git("rev-parse", "origin/main") == published
    assert canonical.sh(f"git --git-dir={canonical.origin} rev-parse main").strip() == published
    # `inv publish` compares with what origin published too, not with HEAD.
    again = canonical.inv("publish", "--pipeline", "train")
    assert_one_line_error(again, "gate failed", "eval/metrics.json:acc")
    assert canonical.sh(f"git --git-dir={canonical.origin} rev-parse main").strip() == published


def test_upstream_runs_the_upstream_pipeline_whole_with_its_gate(canonical):
    # metrics is the evaluate stage alone; train, the whole file, is upstream of it.
    worse_model(canonical)
    origin = canonical.origin_log()

    run = canonical.inv("metrics", "--upstream")

    line = assert_one_line_error(run, "upstream failed: upstream pipeline train failed at gate")
    assert line.endswith("then run: inv publish --pipeline train --accept")
    assert "eval/metrics.json:acc" in run.stdout  # train's own run said why, once
    assert canonical.origin_log() == origin  # never a new lock beside old metrics
    # train ran whole (its evaluate too, for its gate); metrics never started.
    assert canonical.stages_run() == ["train", "evaluate"]
    assert [r["pipeline"] for r in records(canonical)[:2]] == ["train", "metrics"]
    assert [r["status"] for r in records(canonical)[:2]] == ["failed", "failed"]


def test_a_gate_compares_with_metrics_a_teammate_published_from_another_machine(canonical):
    # A teammate's run published new metrics: the lock now records an eval/
    # this machine's cache never had, while its workspace keeps its own eval/.
    teammate = canonical.clone("teammate")
    teammate.sh("dvc pull -q")
    assert teammate.inv("metrics").returncode == 0
    canonical.git("pull", "-q")
    worse_model(canonical)
    origin = canonical.origin_log()

    run = canonical.inv("train")

    line = assert_one_line_error(run, "gate failed", "eval/metrics.json:acc")
    assert "(new)" not in line  # compared with the published value, not waved through
    assert "dvc fetch eval" in run.stdout
    assert canonical.origin_log() == origin


def test_a_gate_refuses_when_the_old_metrics_cannot_be_read_anywhere(canonical):
    teammate = canonical.clone("teammate")
    teammate.sh("dvc pull -q")
    assert teammate.inv("metrics").returncode == 0
    canonical.git("pull", "-q")
    eval_dir = canonical.sandbox.remote  # the published eval/ lost from the remote too
    for obj in (canonical.sandbox.remote / "files" / "md5").rglob("*.dir"):
        obj.unlink()
    worse_model(canonical)
    origin = canonical.origin_log()

    run = canonical.inv("train")

    assert_one_line_error(run, "gate failed", "could not be compared")
    assert eval_dir.exists() and canonical.origin_log() == origin


SPLIT_TASKS_PY = """\
from invoke import Collection
from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

train = pipeline_task("train", dvcfile="dvc.yaml", stages=["prepare", "featurize", "train"])
metrics = pipeline_task(
    "metrics", dvcfile="dvc.yaml", stages=["evaluate"], gates={"eval/metrics.json:acc": "max"}
)
ns = Collection(train, metrics, guards, data, repro, publish, notify)
"""


def test_upstream_stages_sharing_the_lock_file_run_only_with_the_pipelines_own(canonical):
    # train holds prepare..train, metrics holds evaluate: train alone would commit
    # a dvc.lock recording evaluate stale. Refused, before anything runs.
    (canonical.path / "tasks.py").write_text(SPLIT_TASKS_PY)
    worse_model(canonical)
    origin = canonical.origin_log()

    run = canonical.inv("metrics", "--upstream")

    assert_one_line_error(run, "--upstream: stages", "share its lock file")
    assert canonical.stages_run() == []
    assert canonical.origin_log() == origin


def test_upstream_stages_that_no_pipeline_declares_are_refused_before_anything_runs(canonical):
    (canonical.path / "tasks.py").write_text(
        SPLIT_TASKS_PY.replace(
            'train = pipeline_task("train", dvcfile="dvc.yaml", stages=["prepare", "featurize", "train"])\n',
            "",
        ).replace("Collection(train, metrics", "Collection(metrics")
    )
    worse_model(canonical)
    origin = canonical.origin_log()

    run = canonical.inv("metrics", "--upstream")

    assert_one_line_error(run, "--upstream: stages", "but no pipeline holds them all")
    assert canonical.stages_run() == []
    assert canonical.origin_log() == origin


def test_naming_the_file_of_a_gated_pipeline_keeps_its_gate(canonical):
    worse_model(canonical)

    run = canonical.inv("repro", "--pipeline", "dvc.yaml")

    assert_one_line_error(
        run, "gate failed", "eval/metrics.json:acc", "inv publish --pipeline train"
    )


def test_a_gate_that_matches_no_metric_fails_the_run(canonical):
    (canonical.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    train:\n      gates:\n        eval/metrics.json:accuracy: max\n"
    )
    origin = canonical.origin_log()

    run = canonical.inv("train")

    line = assert_one_line_error(
        run, "gate failed", "gate eval/metrics.json:accuracy matches no metric", "acc"
    )
    assert "--accept" not in line  # nothing got worse: the gate is to mend
    assert canonical.origin_log() == origin


def test_a_publish_of_params_git_does_not_hold_names_the_commit_that_finishes_it(canonical):
    (canonical.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    train:\n      gates: {}\n"  # not about gates
    )
    canonical.git("add", "invoke.yaml")
    canonical.git("commit", "-qm", "No gate")
    canonical.sh("python -m dvc exp run -q -S train.bias=0.1")  # params.yaml and the lock

    refused = canonical.inv("publish", "--pipeline", "train")

    line = assert_one_line_error(refused, "commit failed", "git does not hold as they are")
    advice = line.split("then run: ", 1)[1]
    commit, _, then = advice.partition(", then ")
    assert commit == "git commit -m 'Inputs of train' -- params.yaml"
    canonical.sh(commit)  # as printed
    done = canonical.inv(*then.split()[1:])
    assert done.returncode == 0, done.output
    assert_fresh_clone_up_to_date(canonical)


def test_a_gate_on_a_file_not_declared_as_metrics_says_so_and_how(canonical):
    (canonical.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    train:\n      gates:\n        eval/report.json:acc: max\n"
    )

    run = canonical.inv("train")

    line = assert_one_line_error(
        run, "gate failed", "names eval/report.json, which no dvc.yaml declares under metrics"
    )
    assert "metrics: [eval/report.json]" in line and "got worse" not in line
    assert "--accept" not in line


def test_a_run_that_failed_halfway_is_not_published_and_its_rerun_works(canonical):
    (canonical.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    train:\n      gates: {}\n"  # this test is not about gates
    )
    worse_model(canonical)
    origin = canonical.origin_log()

    failed = canonical.inv("train", env={"SANDBOX_FAIL": "evaluate"})

    assert_one_line_error(failed, "repro failed", "then run: inv train")
    assert "dvc.lock" in canonical.git("status", "--porcelain")  # train's entry was rewritten

    publish = canonical.inv("publish", "--pipeline", "train")

    assert_one_line_error(publish, "commit failed", "not up to date", "evaluate")
    assert canonical.origin_log() == origin

    # The command the failure advised works as printed: its own lock does not block it.
    rerun = canonical.inv("train")

    assert rerun.returncode == 0, rerun.output
    assert canonical.stages_run()[-1] == "evaluate"
    assert canonical.origin_log()[0] == "[DVC] Update train"
    assert_fresh_clone_up_to_date(canonical)


def test_discard_puts_the_pipelines_own_files_back_to_head(canonical):
    model = (canonical.path / "model.pkl").read_text()
    worse_model(canonical)
    canonical.inv("train")  # refused by its gate: lock, model and metrics changed
    assert canonical.git("status", "--porcelain") != ""
    assert (canonical.path / "model.pkl").read_text() != model
    (canonical.path / "notes.txt").write_text("mine\n")  # not the pipeline's: untouched

    run = canonical.inv("repro.discard", "--pipeline", "train")

    assert run.returncode == 0, run.output
    assert canonical.git("status", "--porcelain") == "?? notes.txt"
    assert (canonical.path / "model.pkl").read_text() == model


def test_an_input_never_pushed_reaches_the_remote_before_the_lock(canonical):
    data = canonical.path / "data" / "data.csv"
    data.write_text(data.read_text() + "41,82.2\n42,84.0\n")
    canonical.sh("dvc add -q data/data.csv")
    canonical.git("commit", "-qam", "More data (not dvc pushed)")

    run = canonical.inv("train", "--skip", "fetch")

    if run.returncode != 0:  # more data may move the accuracy either way
        assert_one_line_error(run, "gate failed")
        run = canonical.inv("publish", "--pipeline", "train", "--accept")
    assert run.returncode == 0, run.output
    assert "dvc push" in run.stdout and "data/data.csv" in run.stdout
    assert_fresh_clone_up_to_date(canonical)


def test_no_force_overrides_a_pipeline_defined_forced(canonical):
    dry = canonical.inv("--dry", "metrics", "--no-force")
    run = canonical.inv("metrics", "--no-force")

    assert dry.returncode == 0, dry.output
    assert "up to date, as DVC checks: evaluate; nothing to run" in dry.stdout
    assert "dvc repro" not in dry.stdout
    assert run.returncode == 0, run.output
    assert canonical.stages_run() == []

    forced = canonical.inv("metrics")  # positive control: forced by default
    assert forced.returncode == 0, forced.output
    assert canonical.stages_run() == ["evaluate"]


def test_a_dry_run_leaves_no_record_and_tells_nobody(canonical, slack):
    run = canonical.inv("--dry", "train", env={**slack.web_api_env(), **slack.webhook_env()})

    assert run.returncode == 0, run.output
    assert "dry run of train: nothing was done" in run.stdout
    assert "succeeded" not in run.output
    assert records(canonical) == [] and slack.requests == []


def test_a_dry_run_with_nothing_to_run_shows_no_commit_and_no_push(canonical):
    run = canonical.inv("--dry", "train")

    assert run.returncode == 0, run.output
    assert "nothing to run" in run.stdout
    shown = [c for c in echoed(run) if not c.startswith("git push --dry-run")]  # the check
    assert not [c for c in shown if c.startswith(("git commit", "git add", "dvc push", "git push"))]
    assert "no git push" in run.stdout

    # With a stage to run, what the run may commit and push is shown.
    params = canonical.path / "params.yaml"
    params.write_text(params.read_text().replace("split: 0.25", "split: 0.3"))
    canonical.git("commit", "-qam", "A new split")
    ran = canonical.inv("--dry", "train")
    assert [c for c in echoed(ran) if c.startswith(("git commit", "dvc push", "git push"))]


def test_a_detach_whose_terminal_is_a_closed_pipe_runs_all_the_same_and_leaves_no_ghost(canonical):
    read, write = os.pipe()
    os.close(read)  # whatever the command prints now fails: a closed pipe
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "invoke", "train", "--detach", "--skip", "fetch"],
            cwd=canonical.path,
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    finally:
        os.close(write)

    # A closed terminal never ends a run: the detached run started, and it ends.
    assert proc.returncode == 0
    (record,) = records(canonical)
    assert wait_ended(canonical, timeout=120)["status"] == "succeeded"
    run = canonical.inv("train")  # nothing claims the workspace
    assert run.returncode == 0, run.output


# Ignored: tracked all the same, as under `reports/` with `!reports/train` (evidently-dvc).
@pytest.mark.parametrize("ignored", [False, True])
def test_a_git_tracked_file_the_pipeline_declares_is_committed_with_the_lock(canonical, ignored):
    evaluate = canonical.path / "src" / "evaluate.py"
    evaluate.write_text(
        evaluate.read_text()
        + "with open('summary.json', 'w') as f:\n    json.dump({'rows': len(rows)}, f)\n"
    )
    (canonical.path / "summary.json").write_text('{"rows": 0}\n')
    dvcyaml = canonical.path / "dvc.yaml"
    dvcyaml.write_text(
        dvcyaml.read_text().replace("- eval/metrics.json", "- eval/metrics.json\n- summary.json")
    )
    if ignored:
        gitignore = canonical.path / ".gitignore"
        gitignore.write_text(gitignore.read_text() + "summary.json\n")
    canonical.sh("git add -A && git add -f summary.json && git commit -qm 'A summary in git'")

    run = canonical.inv("train", "--skip", "fetch")

    assert run.returncode == 0, run.output
    committed = canonical.git("show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == ["dvc.lock", "summary.json"]
    assert_fresh_clone_up_to_date(canonical)


def test_data_pull_of_a_pipeline_brings_what_makes_it_up_to_date(canonical_fresh):
    run = canonical_fresh.inv("data.pull", "--pipeline", "train")

    assert run.returncode == 0, run.output
    assert (
        "dvc pull --allow-missing data/data.csv.dvc dvc.yaml:prepare dvc.yaml:featurize"
        " dvc.yaml:train dvc.yaml:evaluate"
    ) in run.stdout
    assert "Data and pipelines are up to date" in canonical_fresh.sh("dvc status")


def test_data_a_teammate_replaced_is_pulled_though_the_old_is_in_the_workspace(canonical):
    """The pull is left out only when DVC finds the inputs as recorded; a .dvc
    file that moved on (git pull) makes the old data in the workspace stale."""
    no_gates_published(canonical)
    teammate = canonical.clone("teammate")
    teammate.sh("dvc pull -q data/data.csv")
    data = teammate.path / "data" / "data.csv"
    data.write_text(data.read_text() + "41,82.1\n42,84.0\n")
    teammate.sh("dvc add -q data/data.csv && dvc push -q data/data.csv")
    teammate.git("commit", "-qam", "More data")
    teammate.sh("git push -q")
    canonical.sh("git pull -q")

    run = canonical.inv("train")

    assert run.returncode == 0, run.output
    assert "dvc pull data/data.csv.dvc\n" in run.stdout and "nothing to pull" not in run.stdout
    assert (canonical.path / "data" / "data.csv").read_text().endswith("42,84.0\n")
    assert canonical.stages_run()[0] == "prepare"
    assert_fresh_clone_up_to_date(canonical)


def test_an_input_missing_from_the_remote_stops_the_run_at_pull(canonical_fresh):
    """Inputs are pulled with the outputs to restore, in one `--allow-missing`
    pull; an input the remote lacks is still a failure at pull, before any stage."""
    import yaml

    lock = yaml.safe_load((canonical_fresh.path / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "model.pkl")
    (canonical_fresh.remote / "files" / "md5" / md5[:2] / md5[2:]).unlink()

    run = canonical_fresh.inv("metrics")

    assert_one_line_error(
        run, "pull failed", "neither on the DVC remote nor in the cache: model.pkl"
    )
    assert canonical_fresh.stages_run() == []


def test_a_dry_run_leaves_out_what_the_run_would_leave_out(canonical):
    """DVC's checks are reads: --dry makes them too, and shows the run it would be."""
    run = canonical.inv("--dry", "train")

    assert run.returncode == 0, run.output
    assert "inputs in the workspace as recorded: data/data.csv; nothing to pull" in run.stdout
    assert "up to date, as DVC checks: prepare, featurize, train, evaluate" in run.stdout
    assert "dvc pull" not in run.stdout and "dvc repro" not in run.stdout
    assert canonical.stages_run() == []


def teammate_changes_the_bias(teammate):
    worse_model(teammate, bias="0.0001")


def teammate_changes_the_split(teammate):
    params = teammate.path / "params.yaml"
    params.write_text(params.read_text().replace("split: 0.25", "split: 0.3"))
    teammate.git("commit", "-qam", "Another split")


def teammate_adds_data(teammate):
    teammate.sh("dvc pull -q data/data.csv")
    data = teammate.path / "data" / "data.csv"
    data.write_text(data.read_text() + "41,82.1\n42,84.0\n")
    teammate.sh("dvc add -q data/data.csv")
    teammate.git("commit", "-qam", "More data")


@pytest.mark.parametrize(
    "change",
    [teammate_changes_the_bias, teammate_changes_the_split, teammate_adds_data],
    ids=["train-param", "first-stage-param", "new-data"],
)
def test_a_teammates_published_run_pulled_with_git_is_restored_not_retrained(canonical, change):
    """After `git pull` of a teammate's run, the workspace still holds this
    machine's older outputs and inputs. DVC put them in the cache, so nothing
    is lost by checking out the teammate's: the run restores every stage's
    outputs, those below the first changed stage too, and trains nothing."""
    no_gates_published(canonical)
    teammate = canonical.clone("teammate")
    change(teammate)
    teammate.sh("git push -q")
    assert teammate.inv("train").returncode == 0
    canonical.sh("git pull -q")
    canonical.trace_file.unlink()
    origin = canonical.origin_log()

    run = canonical.inv("train")

    assert run.returncode == 0, run.output
    assert canonical.stages_run() == []
    assert "dvc pull --allow-missing" in run.stdout and "dvc.yaml:train" in run.stdout
    assert "up to date, as DVC checks" in run.stdout and "dvc repro" not in run.stdout
    assert canonical.origin_log() == origin
    assert "Data and pipelines are up to date" in canonical.sh("dvc status")
    assert_fresh_clone_up_to_date(canonical)


def test_an_output_changed_by_hand_is_left_to_dvc_repro_not_restored_by_the_pull(canonical):
    """An output whose workspace copy DVC never saw (not in the cache) is the
    user's: the pull does not replace it; `dvc repro` decides, as DVC would."""
    model = canonical.path / "model.pkl"
    model.write_bytes(model.read_bytes() + b"edited by hand")

    run = canonical.inv("train")

    assert run.returncode == 0, run.output
    assert "nothing to pull" in run.stdout and "dvc pull" not in run.stdout
    assert "dvc repro --single-item dvc.yaml" in run.stdout


def test_an_input_changed_by_hand_stops_the_pull_saying_both_ways_on(canonical):
    """DVC will not overwrite data it never saved; running again would stop the
    same way, so the line names the file and both ways on."""
    data = canonical.path / "data" / "data.csv"
    data.write_text(data.read_text() + "41,82.1\n")

    run = canonical.inv("train")

    line = assert_one_line_error(
        run, "pull failed", "changed and never saved by DVC: data/data.csv"
    )
    assert "keep it: dvc add data/data.csv and commit the .dvc file" in line
    assert "or drop it: dvc checkout --force data/data.csv; then inv train" in line
    assert data.read_text().endswith("41,82.1\n")  # nothing lost
    assert canonical.stages_run() == []

    canonical.sh("dvc checkout -q --force data/data.csv")  # the advice, as printed
    assert canonical.inv("train").returncode == 0


def test_a_data_pull_stopped_by_an_input_changed_by_hand_says_to_pull_again(canonical):
    data = canonical.path / "data" / "data.csv"
    data.write_text(data.read_text() + "41,82.1\n")

    run = canonical.inv("data.pull", "--pipeline", "train")

    line = assert_one_line_error(run, "changed and never saved by DVC: data/data.csv")
    assert line.endswith("dvc checkout --force data/data.csv; then inv data --pipeline train"), line
    assert "None" not in line
