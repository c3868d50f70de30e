"""Hints name the tasks as the project's tasks.py mounts them (dvc_invoke.commands)."""

from __future__ import annotations

import sys

from helpers import as_tasks_module, assert_one_line_error, wait_ended
from invoke import Collection

from dvc_invoke import data, guards, notify, pipeline_task, publish, repro, tasknames

RENAMED_TASKS_PY = """\
from invoke import Collection
from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

metrics = pipeline_task("metrics", dvcfile="metrics/dvc.yaml", force=True)

ns = Collection(guards, data, notify)
ns.add_task(metrics, name="evaluate")
ns.add_collection(Collection.from_module(repro), name="pipe")
ns.add_collection(Collection.from_module(publish), name="ship")
"""


def test_the_default_layout_keeps_the_default_names(monkeypatch):
    metrics = pipeline_task("names-metrics", dvcfile="metrics/dvc.yaml")
    as_tasks_module(monkeypatch, Collection(metrics, guards, data, repro, publish, notify))
    monkeypatch.setattr(sys, "argv", ["inv"])

    assert tasknames.command("repro") == "inv repro"
    assert tasknames.command("repro.cancel") == "inv repro.cancel"
    assert tasknames.command("publish") == "inv publish"
    assert tasknames.task_command(metrics, "names-metrics") == "inv names-metrics"


def test_collections_mounted_under_other_names_are_named_so(monkeypatch):
    metrics = pipeline_task("names-other", dvcfile="metrics/dvc.yaml")
    ns = Collection(guards)
    ns.add_task(metrics, name="evaluate")
    ns.add_collection(Collection.from_module(repro), name="pipe")
    inner = Collection("ml")
    inner.add_collection(Collection.from_module(publish), name="ship")
    ns.add_collection(inner)
    as_tasks_module(monkeypatch, ns)
    monkeypatch.setattr(sys, "argv", ["/usr/bin/invoke"])

    assert tasknames.command("repro") == "invoke pipe"
    assert tasknames.command("repro.logs") == "invoke pipe.logs"
    assert tasknames.command("publish") == "invoke ml.ship"
    assert tasknames.task_command(metrics, "names-other") == "invoke evaluate"


def test_without_a_tasks_module_the_default_names_stand(monkeypatch):
    monkeypatch.delitem(sys.modules, "tasks", raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest"])

    assert tasknames.command("repro.discard") == "inv repro.discard"


def test_a_run_of_a_renamed_layout_says_the_commands_that_work_there(project):
    (project.path / "tasks.py").write_text(RENAMED_TASKS_PY)
    project.git("commit", "-qam", "Mount the tasks under the team's names")

    started = project.inv("pipe", "--pipeline", "metrics", "--detach")
    assert started.returncode == 0, started.output
    assert "follow:  inv pipe.logs --run" in started.stdout
    assert "cancel:  inv pipe.cancel --run" in started.stdout
    wait_ended(project)

    with (project.path / "tasks.py").open("a") as f:
        f.write("# an edit not yet committed\n")
    refused = project.inv("evaluate")
    assert_one_line_error(refused, "guards failed", "then run: inv evaluate")
    # The hint runs: it is the task as this tasks.py names it.
    project.git("checkout", "--", "tasks.py")
    again = project.inv("evaluate")
    assert again.returncode == 0, again.output


def test_a_tasks_module_of_another_name_keeps_its_pipeline_tasks(project):
    project.git("mv", "tasks.py", "mltasks.py")
    project.git("commit", "-qm", "Our tasks live in mltasks.py")
    project.git("push", "-q")

    run = project.inv("-c", "mltasks", "repro", "--pipeline", "metrics")

    assert run.returncode == 0, run.output
    # The pipeline_task's own message: `--pipeline metrics` meant it, not metrics/dvc.yaml.
    assert project.origin_log()[0] == "[DVC] Update model metrics"
