"""Assertions shared by the end-to-end tests."""

from __future__ import annotations

import json
import time

from dvc_invoke.testing import Run  # noqa: F401 - for the tests that build one


def assert_one_line_error(run, *fragments):
    """A failed run ends with one line of ours (after whatever git or dvc said)."""
    assert run.returncode != 0, run.output
    assert "Traceback" not in run.output
    ours = [ln for ln in run.stderr.splitlines() if ln.startswith("dvc-invoke")]
    assert len(ours) == 1, run.stderr
    assert run.stderr.rstrip().endswith(ours[0])
    for fragment in fragments:
        assert fragment in ours[0]
    return ours[0]


def echoed(run) -> list[str]:
    """The git and dvc commands the run echoed, in order."""
    return [ln for ln in run.stdout.splitlines() if ln.startswith(("git ", "dvc "))]


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def records(project):
    folder = project.path / ".dvc" / "tmp" / "dvc-invoke"
    found = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            found.append(json.loads(path.read_text()))
        except ValueError:
            continue  # a record a test damaged on purpose
    return sorted(found, key=lambda r: r["started_at"], reverse=True)


def latest(project):
    found = records(project)
    return found[0] if found else None


def wait_ended(project, timeout=60.0):
    return wait_for(
        lambda: (r := latest(project)) and r["status"] != "started" and r, timeout, "the run to end"
    )


def assert_fresh_clone_up_to_date(project, name="check-clone"):
    """The invariant after anything publishes: a fresh clone of origin can
    `dvc pull` everything and finds every pipeline up to date."""
    assert project.fresh_clone_problems(name) == []


def as_tasks_module(monkeypatch, ns):
    """Make ``ns`` the collection of the loaded ``tasks`` module, as ``inv`` loads it."""
    import sys
    import types

    module = types.ModuleType("tasks")
    module.ns = ns
    monkeypatch.setitem(sys.modules, "tasks", module)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
