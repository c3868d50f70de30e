"""The package's layers, read from its imports: every arrow points down, none goes round.

task collections (the top-level modules a ``tasks.py`` imports, the ``cli``,
the ``testing`` plugin) -> ``flow`` (one run) -> ``engines`` (where it
runs) -> ``adapters`` (git, DVC, Slack, ssh, the shell) -> ``runs`` (the
records) -> ``config`` -> ``errors``, ``console``, ``tasknames``, ``posix``.

Every import counts: at the top of a module, inside a function, under
``TYPE_CHECKING``. A module may import its own layer and the layers below it,
never one above, and no chain of imports may come back to where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dvc_invoke

PACKAGE = Path(dvc_invoke.__path__[0])
BOTTOM = {"errors", "console", "tasknames", "posix"}
# From the bottom up; a module's layer is the first part of its path in the package.
LAYERS = ["bottom", "config", "runs", "adapters", "engines", "flow", "tasks"]


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "tasks"  # the package itself: what a tasks.py imports
    if parts[0] in BOTTOM:
        return "bottom"
    return parts[0] if parts[0] in LAYERS else "tasks"


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """The package's modules ``name`` imports, with the line of each import."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [m for m in submodules if m in known] or [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # an attribute's module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno))
    return found


def graph(package: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    known = modules(package)
    return {name: imports(name, path, known) for name, path in known.items()}


def upward(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    return [
        f"{name} ({layer(name)}) imports {target} ({layer(target)}), line {line}"
        for name, targets in sorted(edges.items())
        for target, line in targets
        if LAYERS.index(layer(target)) > LAYERS.index(layer(name))
    ]


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target, _ in edges.get(name, []):
            if state.get(target) == 1:
                found.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)
    return found


def test_every_module_is_in_a_layer():
    for name in modules():
        assert layer(name) in LAYERS, name


def test_no_import_points_up_a_layer():
    assert upward(graph()) == []


def test_no_imports_go_round():
    # The package's __init__ imports the collections lazily (module __getattr__),
    # not by an import statement, so it takes part in no cycle.
    assert [" -> ".join(cycle) for cycle in cycles(graph())] == []


@pytest.fixture
def package(tmp_path):
    """A small package laid out like dvc_invoke, to see the checks fail."""
    root = tmp_path / "dvc_invoke"
    for folder in ("", "flow", "adapters", "config"):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "__init__.py").write_text("")
    (root / "errors.py").write_text("")
    (root / "flow" / "run.py").write_text("from dvc_invoke.adapters import git\n")
    (root / "adapters" / "git.py").write_text("from ..errors import DvcInvokeError\n")
    (root / "config" / "settings.py").write_text("")
    return root


def test_an_upward_import_inside_a_function_is_found(package):
    assert upward(graph(package)) == []
    (package / "adapters" / "git.py").write_text(
        "def push():\n    from dvc_invoke.flow import run\n"
    )
    assert upward(graph(package)) == [
        "dvc_invoke.adapters.git (adapters) imports dvc_invoke.flow.run (flow), line 2"
    ]


def test_an_upward_import_for_type_checking_is_found(package):
    (package / "config" / "settings.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..adapters.git import Git\n"
    )
    assert upward(graph(package)) == [
        "dvc_invoke.config.settings (config) imports dvc_invoke.adapters.git (adapters), line 3"
    ]


def test_a_cycle_within_a_layer_is_found(package):
    (package / "adapters" / "ssh.py").write_text("from dvc_invoke.adapters.git import x\n")
    (package / "adapters" / "git.py").write_text("from . import ssh\n")
    assert cycles(graph(package)) == [
        ["dvc_invoke.adapters.git", "dvc_invoke.adapters.ssh", "dvc_invoke.adapters.git"]
    ]
