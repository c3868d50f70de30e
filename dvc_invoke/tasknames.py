"""The commands a user types, named as the project's ``tasks.py`` mounts the tasks.

Resume and follow hints ("resume with: inv publish --pipeline training") must
be what the user can type: a ``tasks.py`` may mount the collections under
other names (``ns.add_collection(repro, name="pipe")``) or a pipeline task
under another name. invoke does not tell a task the name it was called by,
but it loads the ``tasks`` module into ``sys.modules``: the task is looked up
in that module's collection. Outside an ``inv`` program (a test, ``python -m
dvc_invoke``) the default names stand.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from invoke.collection import Collection

# The dvc-invoke tasks a hint may name, by their name in the default layout
# (`Collection(guards, data, repro, publish, notify)`): module, task attribute.
_OURS = {
    "repro": ("repro", "run"),
    "repro.status": ("repro", "status"),
    "repro.logs": ("repro", "logs"),
    "repro.cancel": ("repro", "cancel"),
    "repro.discard": ("repro", "discard"),
    "publish": ("publish", "run"),
    "data.pull": ("data", "pull"),
    "exp.run": ("exp", "run"),
    "exp.show": ("exp", "show"),
    "exp.publish": ("exp", "publish"),
}


def collection_name(configured: str | None = None) -> str:
    """The name of the tasks module ``inv`` loads: ``-c``/``--collection`` as
    typed (invoke keeps it to itself), else ``tasks.collection_name`` as
    configured, else ``tasks``."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg in ("-c", "--collection") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--collection="):
            return arg.split("=", 1)[1]
        if not arg.startswith("-"):
            break  # a task's name: what follows is its own
    return configured or "tasks"


def loaded_collection(name: str | None = None) -> Collection | None:
    """The collection of the tasks module invoke loaded, if one was."""
    module = sys.modules.get(name or collection_name())
    if module is None:
        return None
    for attr in ("ns", "namespace"):  # what invoke's Collection.from_module looks for
        found = getattr(module, attr, None)
        if isinstance(found, Collection):
            return found
    try:
        return Collection.from_module(module)
    except Exception:  # noqa: BLE001 - not a tasks module after all: default names
        return None


def _names(coll: Collection, prefix: str = "") -> Iterator[tuple[Any, str]]:
    """Each task of the tree with the name that runs it (a default task: its collection's)."""
    for name, t in coll.tasks.items():
        full = prefix + coll.transform(name)
        if prefix and coll.default == name:
            yield t, prefix.rstrip(".")
        yield t, full
    for name, sub in coll.collections.items():
        yield from _names(sub, prefix + coll.transform(name) + ".")


def tasks_of(coll: Collection) -> list[Any]:
    """Every task of the tree, once."""
    seen: dict[int, Any] = {}
    for t, _ in _names(coll):
        seen.setdefault(id(t), t)
    return list(seen.values())


def name_of(task: Any, default: str) -> str:
    """The shortest name under which ``task`` runs in the loaded tasks module, else ``default``."""
    root = loaded_collection()
    if root is None:
        return default
    # invoke deep-copies the tasks of a module's `ns` (Collection.from_module);
    # the copies keep the function.
    body = getattr(task, "body", task)
    found = [name for t, name in _names(root) if getattr(t, "body", None) is body]
    return min(found, key=lambda n: (len(n), n)) if found else default


def program() -> str:
    """``invoke`` when the user typed that, else ``inv``."""
    typed = sys.argv[0].rsplit("/", 1)[-1] if sys.argv else ""
    return "invoke" if typed == "invoke" else "inv"


def command(path: str) -> str:
    """The command line that runs the dvc-invoke task ``path`` (a key of `_OURS`)."""
    module, attr = _OURS[path]
    ours = getattr(__import__(f"dvc_invoke.{module}", fromlist=[attr]), attr)
    return f"{program()} {name_of(ours, path)}"


def task_command(task: Any, default: str) -> str:
    """The command line that runs ``task`` (a pipeline task), ``default`` if not found."""
    return f"{program()} {name_of(task, default)}"


def follow(run_id: str, *, host: str | None = None) -> str:
    """The command that follows run ``run_id``'s log (on GPU host ``host``)."""
    return f"{command('repro.logs')} --run {run_id} --follow" + (f" --host {host}" if host else "")


def cancel(run_id: str, *, host: str | None = None, gone: bool = False) -> str:
    """The command that stops run ``run_id`` (on GPU host ``host``; marks it lost
    from here when its host is ``gone``)."""
    where = f" --host {host}" if host else ""
    return f"{command('repro.cancel')} --run {run_id}{where}" + (" --host-gone" if gone else "")
