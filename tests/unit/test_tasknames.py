"""Hints name the tasks as the project's tasks.py mounts them (dvc_invoke.tasknames)."""

from __future__ import annotations

import sys

from helpers import as_tasks_module
from invoke import Collection

from dvc_invoke import data, guards, notify, pipeline_task, publish, repro, tasknames


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


def test_follow_and_cancel_hints_name_the_run_and_its_host(monkeypatch):
    ns = Collection(guards)
    ns.add_collection(Collection.from_module(repro), name="pipe")
    as_tasks_module(monkeypatch, ns)
    monkeypatch.setattr(sys, "argv", ["inv"])

    assert tasknames.follow("r1") == "inv pipe.logs --run r1 --follow"
    assert tasknames.follow("r1", host="gpu-1") == "inv pipe.logs --run r1 --follow --host gpu-1"
    assert tasknames.cancel("r1") == "inv pipe.cancel --run r1"
    assert tasknames.cancel("r1", host="gpu-1") == "inv pipe.cancel --run r1 --host gpu-1"
    assert tasknames.cancel("r1", gone=True) == "inv pipe.cancel --run r1 --host-gone"
