"""Hints name the tasks as the project's tasks.py mounts them (dvc_invoke.commands).

End to end: real projects, `inv` run as a user runs it."""

from __future__ import annotations

from helpers import assert_one_line_error, wait_ended

RENAMED_TASKS_PY = """\
from invoke import Collection
from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

metrics = pipeline_task("metrics", dvcfile="metrics/dvc.yaml", force=True)

ns = Collection(guards, data, notify)
ns.add_task(metrics, name="evaluate")
ns.add_collection(Collection.from_module(repro), name="pipe")
ns.add_collection(Collection.from_module(publish), name="ship")
"""


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
