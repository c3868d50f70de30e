"""The collections as invoke sees them: names, defaults, options, import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest
from invoke import Collection, Task

import dvc_invoke
from dvc_invoke import data, guards, notify, pipeline_task, publish, repro
from dvc_invoke.cli import sandbox


@pytest.mark.parametrize(
    "module, default, tasks",
    [
        (guards, "check", {"check"}),
        (data, "pull", {"pull", "push"}),
        (
            repro,
            "run",
            {"run", "stages", "status", "logs", "cancel", "discard", "prune", "pipelines"},
        ),
        (publish, "run", {"run"}),
        (notify, "send", {"send", "test"}),
    ],
)
def test_each_module_is_a_collection_with_a_default_task(module, default, tasks):
    ns = Collection.from_module(module)
    assert ns.name == module.__name__.split(".")[-1]
    assert ns.default == default
    assert set(ns.tasks) == tasks
    for name in tasks:
        assert ns.tasks[name].__doc__, f"{name} has no help text"


def test_the_readme_tasks_py_builds_the_documented_namespace():
    metrics = pipeline_task("metrics", dvcfile="metrics/dvc.yaml", force=True)
    ns = Collection(metrics, guards, data, repro, publish, notify)
    assert set(ns.collections) == {"guards", "data", "repro", "publish", "notify"}
    assert "metrics" in ns.tasks
    assert ns.collections["repro"].default == "run"


def test_pipeline_task_options_default_to_the_pipelines_own():
    forced = pipeline_task("forced-one", dvcfile="a/dvc.yaml", force=True)
    plain = pipeline_task("plain-one")
    assert isinstance(forced, Task) and forced.name == "forced-one"
    args = {a.name: a for a in forced.get_arguments()}
    assert args["force"].default is True and args["upstream"].default is False
    assert {a.name: a.default for a in plain.get_arguments()}["force"] is False
    assert "a/dvc.yaml" in forced.__doc__


@pytest.mark.parametrize("name", ["x; touch PWNED", "", "a/b", "..", "$(id)"])
def test_pipeline_task_refuses_names_that_are_not_names(name):
    with pytest.raises(ValueError, match="invalid name"):
        pipeline_task(name)


def test_pipeline_task_refuses_malformed_options():
    with pytest.raises(ValueError, match="pull must be a list of paths"):
        pipeline_task("bad-pull", pull=[1, 2])
    with pytest.raises(ValueError, match="not a path inside the project"):
        pipeline_task("bad-file", dvcfile="../elsewhere/dvc.yaml")


def test_repro_options_have_help():
    for name in ("pipeline", "force", "upstream"):
        assert repro.run.help[name]


def test_importing_the_package_stays_free_of_dvc_and_slack():
    code = (
        "import sys, dvc_invoke; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dvc', 'dvc_data', 'slack_sdk', 'rich', 'networkx'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert dvc_invoke.__version__


def test_listing_tasks_imports_no_run_machinery(tmp_path):
    # `inv --list` (and tab completion) load tasks.py on every keystroke: the
    # collections import their machinery when a task runs, not before.
    (tmp_path / "tasks.py").write_text(sandbox.TASKS_PY)
    code = (
        "import sys; from invoke.main import program; "
        "program.run(['inv', '--list'], exit=False); "
        "print(sorted(m for m in sys.modules if m.startswith('dvc_invoke.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "metrics" in out.stdout  # the listing did load tasks.py
    loaded = set(out.stdout.strip().splitlines()[-1].strip("[]").replace("'", "").split(", "))
    assert "dvc_invoke.config.pipelines" in loaded
    # None of the machinery below the collections: the flow, the engines, the
    # adapters (git, DVC, Slack), the run records, the console.
    machinery = ("dvc_invoke.flow", "dvc_invoke.engines", "dvc_invoke.adapters", "dvc_invoke.runs")
    assert {m for m in loaded if m.startswith(machinery) or m == "dvc_invoke.console"} == set()


def test_a_tasks_py_imports_the_notifier_interface_as_the_docs_show():
    # The documented ways, in a fresh interpreter: the module path of the protocol,
    # and the module as an attribute of the package.
    code = (
        "from dvc_invoke.notifiers import ConsoleNotifier, Notifier, register\n"
        "from dvc_invoke import notifiers\n"
        "import dvc_invoke.notifiers\n"
        "assert notifiers.register is register is dvc_invoke.notifiers.register\n"
        "assert ConsoleNotifier().name and Notifier.__name__ == 'Notifier'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
