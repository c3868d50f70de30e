"""Broken set-ups and bad input: one line, a non-zero exit, nothing run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import Run, assert_one_line_error, latest

from dvc_invoke.cli import sandbox


def inv(cwd, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_guards_pass_on_a_clean_workspace(project):
    run = project.inv("guards", "--pipeline", "metrics")
    assert run.returncode == 0, run.output
    assert "guards passed for metrics" in run.stdout


def test_outside_a_dvc_repository(tmp_path):
    (tmp_path / "tasks.py").write_text(sandbox.TASKS_PY)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    run = inv(tmp_path, "guards")

    assert_one_line_error(run, "not a DVC repository", "dvc init")


def test_above_a_subdir_dvc_project_the_line_names_the_project_below(tmp_path):
    """A monorepo: `dvc init --subdir` in ml/, inv started at the git root."""
    (tmp_path / "tasks.py").write_text(sandbox.TASKS_PY)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "ml").mkdir()
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q", "--subdir"], cwd=tmp_path / "ml", check=True
    )

    run = inv(tmp_path, "guards")

    assert_one_line_error(run, "not a DVC repository", "DVC projects below it: ml/", "cd ml")


def test_outside_a_git_repository(tmp_path):
    (tmp_path / "tasks.py").write_text(sandbox.TASKS_PY)
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q", "--no-scm"], cwd=tmp_path, check=True
    )

    run = inv(tmp_path, "metrics")

    assert_one_line_error(run, "guards failed", "not in a git repository")


# Its own file, or that of the pipeline whose model it reads: DVC's line, naming it.
@pytest.mark.parametrize("dvcfile", ["metrics/dvc.yaml", "training/dvc.yaml"])
def test_malformed_dvc_yaml_is_one_line(project, dvcfile):
    (project.path / dvcfile).write_text("stages:\n  predict: [unclosed\n")
    project.git("commit", "-qam", "Break dvc.yaml")

    run = project.inv("metrics")

    line = assert_one_line_error(run, "DVC cannot read the project", dvcfile)
    # Where the parser stopped, as `dvc status` would show it.
    assert "at line 3, column 1" in line, line
    assert project.stages_run() == []


def test_stages_depending_on_each_other_are_one_line(project):
    (project.path / "loop").mkdir()
    (project.path / "loop" / "dvc.yaml").write_text(
        "stages:\n"
        "  a:\n    cmd: echo\n    deps: [b.txt]\n    outs: [a.txt]\n"
        "  b:\n    cmd: echo\n    deps: [a.txt]\n    outs: [b.txt]\n"
    )
    project.git("add", "loop")
    project.git("commit", "-qm", "A loop")

    run = project.inv("repro", "--pipeline", "loop")

    assert_one_line_error(run, "guards failed", "cycle: loop/dvc.yaml:")
    assert project.stages_run() == []


def test_a_file_is_not_a_pipeline(project):
    (project.path / "notes").write_text("not a pipeline\n")
    run = project.inv("repro", "--pipeline", "notes")
    assert_one_line_error(run, "unknown pipeline 'notes'", "metrics, training")


def test_missing_dvc_executable(project):
    (project.path / "invoke.yaml").write_text("dvc_invoke:\n  dvc: /nowhere/dvc\n")
    run = project.inv("metrics")
    assert_one_line_error(run, "guards failed", "/nowhere/dvc: command not found")
    assert project.stages_run() == []


@pytest.mark.parametrize("args", [(), ("--dry",)], ids=["run", "dry-run"])
def test_a_remote_whose_dvc_plugin_is_missing_is_refused_naming_the_package(project, args):
    # dvc-gs is not among what is installed here (dvc-s3 and dvc-ssh are): the same refusal
    # as an s3:// remote gets without dvc-s3.
    assert subprocess.run([sys.executable, "-c", "import dvc_gs"], capture_output=True).returncode
    project.sh("dvc remote add --local -d cloud gs://team-bucket/dvc-store")

    run = project.inv(*args, "metrics")

    line = assert_one_line_error(run, "guards failed", "`pip install dvc-gs`", "inv metrics")
    assert "DVC remote 'cloud' is a gs:// remote" in line
    assert "dvc pull" not in run.stdout and project.stages_run() == []
    assert latest(project) is None  # refused before a run was recorded


def test_a_publish_to_a_remote_whose_plugin_is_missing_says_what_to_install(project):
    project.sh("dvc remote add --local -d cloud gs://team-bucket/dvc-store")

    run = project.inv("publish", "--pipeline", "metrics")

    assert_one_line_error(run, "`pip install dvc-gs`")


@pytest.mark.parametrize(
    "targets, error",
    [
        ('["nothing/here"]', "pull target 'nothing/here' matches nothing DVC tracks"),
        ('["../elsewhere"]', "pull target '../elsewhere' is not a path inside the project"),
        ('"/etc"', "pull target '/etc' is not a path inside the project"),
    ],
)
def test_bad_pull_targets_fail_before_the_run_starts(project, targets, error):
    (project.path / "invoke.yaml").write_text(
        f"dvc_invoke:\n  pipelines:\n    metrics:\n      pull: {targets}\n"
    )
    run = project.inv("metrics")

    assert_one_line_error(run, error)
    assert "started" not in run.stdout
    assert project.stages_run() == []


def test_unknown_pipeline_option_in_config(project):
    (project.path / "invoke.yaml").write_text(
        "dvc_invoke:\n  pipelines:\n    metrics:\n      forced: true\n"
    )
    run = project.inv("metrics")
    assert_one_line_error(run, "unknown option forced", "options: dvcfile, stages, force")


def test_data_pull_of_a_folder_holding_another_pipelines_outputs(fresh):
    # `dvc pull -R model` would pull nothing here and exit 0.
    run = fresh.inv("data.pull", "--target", "model")

    assert run.returncode == 0, run.output
    assert (fresh.path / "model" / "model.json").is_file()
    assert not (fresh.path / "dataset" / "testset").exists()


def test_data_pull_of_a_pipelines_inputs(fresh):
    run = fresh.inv("data.pull", "--pipeline", "metrics")

    assert run.returncode == 0, run.output
    assert (fresh.path / "model" / "model.json").is_file()
    assert sorted(p.name for p in (fresh.path / "dataset" / "testset").iterdir()) == [
        "part-0.csv",
        "part-1.csv",
    ]
    assert not (fresh.path / "dataset" / "train.csv").exists()


def test_data_pull_needs_a_pipeline_or_a_target(project):
    run = project.inv("data.pull")
    assert_one_line_error(run, "name a --pipeline or a --target")


def test_a_users_own_task_can_catch_the_error_and_go_on(project):
    (project.path / "tasks.py").write_text(
        project.path.joinpath("tasks.py").read_text()
        + "\n\nfrom invoke import task\nfrom dvc_invoke import DvcInvokeError\n\n\n"
        "@task\ndef careful(c):\n"
        "    try:\n        guards.check(c)\n"
        "    except DvcInvokeError as exc:\n"
        "        print(f'caught at {exc.step}: {exc.reason}')\n\n\n"
        "ns.add_task(careful)\n"
    )
    (project.path / "training" / "train.py").write_text("# edited\n")

    run = project.inv("careful")

    assert run.returncode == 0, run.output
    assert "caught at guards: uncommitted changes" in run.stdout


def test_a_hand_edit_of_dvcs_gitignore_is_refused_before_any_stage_runs(canonical):
    gitignore = canonical.path / ".gitignore"
    committed = gitignore.read_text()
    gitignore.write_text(committed + "notes.txt\n")
    (canonical.path / "params.yaml").write_text(
        (canonical.path / "params.yaml").read_text().replace("bias: 0.0", "bias: 0.001")
    )
    canonical.git("commit", "-qm", "A new param", "--", "params.yaml")
    head = canonical.git("rev-parse", "HEAD")

    run = canonical.inv("train", "--skip", "fetch")

    assert_one_line_error(
        run, "guards failed", ".gitignore (lines DVC did not write: notes.txt)", "commit or stash"
    )
    assert canonical.stages_run() == []
    assert canonical.git("rev-parse", "HEAD") == head
    assert gitignore.read_text() == committed + "notes.txt\n"  # the edit is the user's, kept


def test_a_refused_run_that_blocks_another_pipeline_names_both_ways_out(project):
    tasks = project.path / "tasks.py"
    tasks.write_text(
        tasks.read_text().replace(
            'message="[DVC] Update model metrics",',
            'message="[DVC] Update model metrics",\n    gates={"scores.json:mae": "min"},',
        )
    )
    project.git("commit", "-qam", "A gate on the metrics")
    project.git("push", "-q")
    assert project.inv("metrics").returncode == 0  # published: the gate's baseline
    predict = project.path / "metrics" / "predict.py"
    predict.write_text(predict.read_text().replace("{slope * x}", "{slope * x + 1}"))
    project.git("commit", "-qam", "A worse prediction")
    project.git("push", "-q")
    refused = project.inv("metrics")
    assert_one_line_error(refused, "gate failed")
    run_id = latest(project)["id"]

    blocked = project.inv("repro", "--pipeline", "training")

    line = assert_one_line_error(
        blocked,
        "guards failed",
        "metrics/dvc.lock",
        f"left by run {run_id} of metrics (failed at gate)",
        "`inv repro.discard --pipeline metrics`",
        "`inv publish --pipeline metrics --accept`",
    )
    assert "inv repro --pipeline training" in line  # what to run after
    assert project.inv("repro.discard", "--pipeline", "metrics").returncode == 0
    assert project.inv("repro", "--pipeline", "training").returncode == 0


# -- what would stop the commit or the push after the run ------------------------


@pytest.mark.parametrize("lock", [".git/index.lock", ".git/refs/heads/main.lock"])
def test_a_lock_file_a_crashed_git_left_is_refused_before_any_stage_runs(project, lock):
    (project.path / lock).write_text("")

    run = project.inv("metrics")

    assert_one_line_error(
        run, "guards failed", f"git's lock file {lock}", "ps aux | grep git", f"rm {lock}"
    )
    assert project.stages_run() == []
    assert (project.path / lock).exists()  # never removed for the user: a git may run


def a_signer(project, tmp_path, body):
    signer = tmp_path / "signer"
    signer.write_text("#!/bin/sh\n" + body)
    signer.chmod(0o755)
    project.git("config", "commit.gpgsign", "true")
    project.git("config", "gpg.program", str(signer))


@pytest.mark.parametrize("signer", ["false", "a script that exits 1"])
def test_a_signer_that_cannot_sign_is_refused_before_any_stage_runs(project, tmp_path, signer):
    if signer == "false":
        project.git("config", "commit.gpgsign", "true")
        project.git("config", "gpg.program", "false")
    else:
        a_signer(project, tmp_path, "cat > /dev/null; echo 'no secret key' >&2; exit 1\n")
    refs = project.git("for-each-ref")

    run = project.inv("metrics")

    assert_one_line_error(run, "guards failed", "commit.gpgsign", "gpg failed to sign the data")
    assert project.stages_run() == []
    assert project.git("for-each-ref") == refs  # the probe's commit is on no ref
    assert "signing probe" not in project.sh("git log --all --format=%s")


# git checks that the signer said it made a signature ("[GNUPG:] SIG_CREATED").
SIGNS_UNTIL_A_STAGE_RAN = """\
cat > /dev/null
if [ -s "$SANDBOX_TRACE" ]; then exit 1; fi
printf -- '-----BEGIN PGP SIGNATURE-----\\n\\nZmFrZQ==\\n-----END PGP SIGNATURE-----\\n'
printf '\\n[GNUPG:] SIG_CREATED D 1 8 00 0 0 FAKE\\n' >&2
"""


def test_a_signer_that_fails_at_the_commit_is_told_in_gits_words(project, tmp_path):
    a_signer(project, tmp_path, SIGNS_UNTIL_A_STAGE_RAN)
    head, origin = project.git("rev-parse", "HEAD"), project.origin_log()

    run = project.inv("metrics")

    line = assert_one_line_error(run, "commit failed", "gpg failed to sign the data")
    assert "inv publish --pipeline metrics" in line
    assert project.stages_run() == ["predict", "evaluate"]
    assert project.git("rev-parse", "HEAD") == head
    assert project.git("diff", "--cached", "--name-only") == ""  # nothing left staged
    assert project.origin_log() == origin


def test_a_hooks_path_that_is_not_a_folder_is_refused_and_a_skipped_hook_is_a_warning(project):
    project.git("config", "core.hooksPath", "team-hooks")

    refused = project.inv("metrics")

    assert_one_line_error(refused, "guards failed", "core.hooksPath is 'team-hooks'")
    assert project.stages_run() == []
    project.git("config", "--unset", "core.hooksPath")
    (project.path / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    assert "the pre-commit hook .git/hooks/pre-commit is not executable" in run.output
