"""`dvc-invoke init`: tasks.py for an existing DVC project (dvc_invoke.scaffold)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dvc_invoke.cli import scaffold

DVC_INVOKE = str(Path(sys.executable).parent / "dvc-invoke")


STAGE = "stages:\n  {name}:\n    cmd: echo {name}\n"


def sh(cwd, *args):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def nested(tmp_path):
    """A DVC project of evidently-dvc's shape, plus a root dvc.yaml, with nothing of ours."""
    root = tmp_path / "ml"
    root.mkdir()
    sh(root, "git", "init", "-q")
    sh(root, sys.executable, "-m", "dvc", "init", "-q")
    (root / "dvc.yaml").write_text(STAGE.format(name="prepare"))
    for folder in ("pipelines/train", "pipelines/predict", "other/train"):
        (root / folder).mkdir(parents=True)
        (root / folder / "dvc.yaml").write_text(STAGE.format(name=folder.split("/")[-1]))
    return root


def init(cwd):
    return subprocess.run([DVC_INVOKE, "init"], cwd=cwd, capture_output=True, text=True)


def test_init_writes_a_tasks_py_that_lists_every_pipeline_at_once(nested):
    run = init(nested)

    assert run.returncode == 0, run.stderr
    assert "wrote tasks.py" in run.stdout and "wrote .env.example" in run.stdout
    assert "added .env to .gitignore" in run.stdout
    assert sh(nested, "git", "check-ignore", ".env").strip() == ".env"
    listed = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"], cwd=nested, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    flat = " ".join(listed.stdout.split())
    for task, dvcfile in [
        ("pipeline", "dvc.yaml"),
        ("predict", "pipelines/predict/dvc.yaml"),
        ("train", "other/train/dvc.yaml"),  # the first of two "train" folders
        ("pipelines-train", "pipelines/train/dvc.yaml"),
    ]:
        what = "the pipeline" if task == "pipeline" else f"the {task} pipeline"
        assert f" {task} Run {what} ({dvcfile})" in flat, listed.stdout
    text = (nested / "tasks.py").read_text()
    assert '# stages=["predict"],' in text
    # Each task is the pipeline `--pipeline` names: the same dvc.yaml.
    dry = subprocess.run(
        [sys.executable, "-m", "invoke", "repro.pipelines"],
        cwd=nested,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr
    assert "pipelines-train" in dry.stdout and "pipelines/train/dvc.yaml" in dry.stdout


def test_init_never_overwrites_and_shows_what_it_would_write(nested):
    (nested / "tasks.py").write_text("# the team's own\n")
    (nested / ".gitignore").write_text("*.log\n.env\n")

    run = init(nested)

    assert run.returncode == 0, run.stderr
    assert (nested / "tasks.py").read_text() == "# the team's own\n"
    assert "tasks.py exists, so it is left as it is" in run.stdout
    assert 'dvcfile="pipelines/predict/dvc.yaml"' in run.stdout
    assert (nested / ".gitignore").read_text() == "*.log\n.env\n"  # already ignored


def test_init_outside_a_dvc_project_is_one_line(tmp_path):
    run = init(tmp_path)

    assert run.returncode == 1
    assert run.stderr.startswith("dvc-invoke:") and "dvc init" in run.stderr
    assert run.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_init_above_a_subdir_dvc_project_names_it_and_the_command(tmp_path):
    """A monorepo: `dvc init --subdir` in ml/, init typed at the git root."""
    sh(tmp_path, "git", "init", "-q")
    (tmp_path / "ml").mkdir()
    sh(tmp_path / "ml", sys.executable, "-m", "dvc", "init", "-q", "--subdir")

    run = init(tmp_path)

    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert "DVC projects below it: ml/" in run.stderr
    assert "run `dvc-invoke init --dir ml`" in run.stderr
    assert not (tmp_path / "tasks.py").exists()


def test_init_in_a_folder_of_a_dvc_project_names_its_root(nested):
    run = init(nested / "pipelines")

    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert f"inside the DVC project at {nested}" in run.stderr and "--dir" in run.stderr


def test_init_with_dir_names_what_it_wrote_there_and_how_to_commit_it(nested):
    (nested / "tasks.py").unlink(missing_ok=True)
    run = subprocess.run(
        [DVC_INVOKE, "init", "--dir", nested.name],
        cwd=nested.parent,
        capture_output=True,
        text=True,
    )

    assert run.returncode == 0, run.stderr
    assert f"wrote {nested.name}/tasks.py" in run.stdout
    assert f"added .env to {nested.name}/.gitignore" in run.stdout
    assert f"git add {nested.name}/tasks.py {nested.name}/.env.example" in run.stdout
    assert f"from {nested.name}/: `inv --list` shows the tasks" in run.stdout


def test_task_names_are_unique_and_never_those_of_the_collections():
    found = {".": "dvc.yaml", "data": "data/dvc.yaml", "a/repro": "a/repro/dvc.yaml"}
    found |= {"a/train": "a/train/dvc.yaml", "b/train": "b/train/dvc.yaml", "exp": "exp/dvc.yaml"}
    assert scaffold.named(found) == [
        ("pipeline", "dvc.yaml"),
        ("a-repro", "a/repro/dvc.yaml"),
        ("train", "a/train/dvc.yaml"),
        ("b-train", "b/train/dvc.yaml"),
        ("data-pipeline", "data/dvc.yaml"),
        ("exp-pipeline", "exp/dvc.yaml"),
    ]
    # The namespace it writes builds, as `inv` builds it.
    scope: dict = {}
    exec(scaffold.tasks_py(Path("/nonexistent"), found), scope)
    names = {"pipeline", "a-repro", "train", "b-train", "data-pipeline", "exp-pipeline"}
    assert names <= set(scope["ns"].tasks)
    assert set(scope["ns"].collections) == {"data", "exp", "guards", "notify", "publish", "repro"}


def test_the_console_script_says_what_it_does(capsys):
    from dvc_invoke.__main__ import main

    for asked in (["--help"], ["-h"]):
        assert main(asked) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: dvc-invoke demo") and "init  a tasks.py" in out
    assert main(["nonsense"]) == 2
    assert capsys.readouterr().err.startswith("usage: dvc-invoke")


def test_the_console_script_says_its_version():
    from importlib.metadata import version

    run = subprocess.run([DVC_INVOKE, "--version"], capture_output=True, text=True)

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"dvc-invoke {version('dvc-invoke')}"


def test_init_names_each_task_as_inv_list_shows_it(nested):
    (nested / "bigfoot_sightings").mkdir()
    (nested / "bigfoot_sightings" / "dvc.yaml").write_text(STAGE.format(name="count"))

    run = init(nested)

    assert run.returncode == 0, run.stderr
    said = next(ln for ln in run.stdout.splitlines() if ln.startswith("pipelines: "))
    named = said.removeprefix("pipelines: ").split(";")[0].split(", ")
    listed = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"], cwd=nested, capture_output=True, text=True
    ).stdout
    tasks = {line.split()[0] for line in listed.splitlines()[1:] if line.strip()}
    assert "bigfoot-sightings" in named
    assert set(named) <= tasks, (named, tasks)


@pytest.mark.parametrize("task", ["train", "repro", "repro.logs", "publish", "guards", "data.pull"])
def test_dash_h_is_help_on_every_task(nested, task):
    assert init(nested).returncode == 0

    run = subprocess.run(
        [sys.executable, "-m", "invoke", task, "-h"], cwd=nested, capture_output=True, text=True
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"Usage: inv[oke] [--core-opts] {task}")
    assert "-h," not in run.stdout and "-l," not in run.stdout and "-s," not in run.stdout
