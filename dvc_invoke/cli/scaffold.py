"""``dvc-invoke init``: a ``tasks.py`` for an existing DVC project, its pipelines found.

Writes, at the DVC project's root: ``tasks.py`` with one `pipeline_task` per
``dvc.yaml`` (named as ``--pipeline`` names it, its stages listed in a
comment to make a subset from), ``.env.example`` for the Slack settings, and
``.env`` added to ``.gitignore``. A file that exists is never overwritten:
what would have been written is printed instead.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path
from typing import Any

from invoke.collection import Collection

ENV_EXAMPLE = """\
# dvc-invoke reads these from the environment, or from a `.env` file at the
# project root (real environment variables win). Never commit your `.env`.

# Slack through the Web API (a bot token with the chat:write scope), and the
# channel runs are reported to (a name like #ml-runs, or a channel id).
SLACK_BOT_TOKEN=
SLACK_CHANNEL=

# Or Slack through an incoming webhook (one message at the end of each run).
SLACK_WEBHOOK_URL=

# The Web API's base URL; GovSlack and proxies need another one.
SLACK_API_URL=https://slack.com/api/
"""

HEADER = '''\
"""This project's pipelines as invoke tasks (written by `dvc-invoke init`; edit freely).

`inv --list` shows them; `inv NAME` runs one: guards, pull, repro, commit,
dvc push, git push, notify. `inv NAME --detach` runs it in the background;
`inv exp.run --pipeline NAME -S 'KEY=A,B'` sweeps its params.
"""

from dvc_invoke import data, exp, guards, notify, pipeline_task, publish, repro
from invoke import Collection
'''


def task_name(folder: str, taken: set[str]) -> str:
    """A task name for the pipeline in ``folder`` (``.``: the root's): its last
    part, the whole path where that is taken; ``pipeline`` for the root's."""
    if folder == ".":
        base = "pipeline"
    else:
        base = folder.rsplit("/", 1)[-1]
        if base in taken:
            base = folder.replace("/", "-")
    name = re.sub(r"[^A-Za-z0-9_-]", "-", base).strip("-") or "pipeline"
    if name in taken:
        name = f"{name}-pipeline"
    while name in taken:
        name += "-2"
    return name


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    if ident[0].isdigit() or keyword.iskeyword(ident) or ident in _TAKEN_IDENTIFIERS:
        ident += "_pipeline"
    return ident


# Names tasks.py imports (HEADER's import lines): a pipeline's variable must not shadow them.
_TAKEN_IDENTIFIERS = {
    name.strip()
    for line in re.findall(r"^from \S+ import (.+)$", HEADER, re.MULTILINE)
    for name in line.split(",")
}


def _stages(root: Path, dvcfile: str) -> list[str]:
    import yaml

    try:
        loaded = yaml.safe_load((root / dvcfile).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    stages = loaded.get("stages") if isinstance(loaded, dict) else None
    return [str(s) for s in stages] if isinstance(stages, dict) else []


# The collections tasks.py mounts: a pipeline task of the same name would clash.
_COLLECTIONS = {"data", "exp", "guards", "notify", "publish", "repro"}


def named(pipelines: dict[str, str]) -> list[tuple[str, str]]:
    """Each pipeline's task name and its dvc.yaml, the root's first."""
    taken: set[str] = set(_COLLECTIONS)
    found = []
    for folder, dvcfile in sorted(pipelines.items(), key=lambda kv: (kv[0] != ".", kv[0])):
        name = task_name(folder, taken)
        taken.add(name)
        found.append((name, dvcfile))
    return found


def tasks_py(root: Path, pipelines: dict[str, str]) -> str:
    """The ``tasks.py`` text for ``pipelines`` (folder -> its dvc.yaml, relative to ``root``)."""
    blocks, idents = [], []
    for name, dvcfile in named(pipelines):
        ident = _identifier(name)
        idents.append(ident)
        stages = _stages(root, dvcfile)
        lines = [f"{ident} = pipeline_task(", f"    {json.dumps(name)},"]
        lines.append(f"    dvcfile={json.dumps(dvcfile)},")
        if stages:
            lines.append("    # Some of its stages only, the others read as upstream:")
            lines.append(f"    # stages={json.dumps(stages)},")
        lines.append(")")
        blocks.append("\n".join(lines))
    members = ", ".join([*idents, "guards", "data", "repro", "publish", "notify", "exp"])
    body = "\n\n".join(blocks)
    return f"{HEADER}\n{body}\n\nns = Collection({members})\n"


def init(root: Path, c: Any, out: Any = None) -> int:
    """Write the files into the DVC project at ``root``; 0 when all is in place."""
    from dvc_invoke.config.pipelines import discover

    out = out or sys.stdout
    if not (root / ".dvc").is_dir():
        print(f"dvc-invoke: {_not_a_root(root)}", file=sys.stderr)
        return 1
    here = _shown(root)
    found = discover(c, root)
    if not found:
        print(f"dvc-invoke: no dvc.yaml in {root}: nothing to make tasks of", file=sys.stderr)
        return 1
    for name, text in (("tasks.py", tasks_py(root, found)), (".env.example", ENV_EXAMPLE)):
        path = root / name
        if path.exists():
            print(
                f"{name} exists, so it is left as it is; this is what init would write:", file=out
            )
            print(text, file=out)
            continue
        path.write_text(text)
        print(f"wrote {here}{name}", file=out)
    ignored = c.run(
        f"git -C {_q(root)} check-ignore -q .env", hide=True, warn=True, in_stream=False
    )
    if ignored is not None and ignored.exited == 1:  # not ignored (128: not a git repository)
        gitignore = root / ".gitignore"
        before = gitignore.read_text() if gitignore.exists() else ""
        gitignore.write_text(
            before + ("" if before.endswith("\n") or not before else "\n") + ".env\n"
        )
        print(f"added .env to {here}.gitignore", file=out)
    # As `inv --list` shows them: invoke turns a task name's "_" into "-".
    names = ", ".join(Collection().transform(name) for name, _ in named(found))
    there = f"from {here}: " if here else ""  # inv finds tasks.py from where it is typed
    print(f"pipelines: {names}; {there}`inv --list` shows the tasks, `inv NAME` runs one", file=out)
    files = " ".join(f"{here}{f}" for f in ("tasks.py", ".env.example", ".gitignore"))
    print(
        f"next: commit them for the team (a run refuses uncommitted changes): git add {files}"
        " && git commit -m 'Run the pipelines with dvc-invoke'",
        file=out,
    )
    return 0


def _shown(root: Path) -> str:
    """``root`` as a prefix of the paths init names: empty when it is the cwd."""
    try:
        rel = root.relative_to(Path.cwd().resolve())
    except ValueError:
        return f"{root}/"
    return "" if rel == Path(".") else f"{rel.as_posix()}/"


def _not_a_root(root: Path) -> str:
    """Why init does nothing at ``root``, and where to run it instead."""
    from dvc_invoke.config.project import dvc_projects_below

    above = next((f for f in root.parents if (f / ".dvc").is_dir()), None)
    if above is not None:
        return (
            f"{root} is inside the DVC project at {above}, not at its root:"
            f" run `dvc-invoke init --dir {_q(above)}`"
        )
    below = dvc_projects_below(root)
    if below:
        target = _shown(root / below[0]).rstrip("/")
        return (
            f"{root} is not a DVC project's root (no .dvc folder); DVC projects below it:"
            f" {', '.join(p + '/' for p in below[:3])}: run `dvc-invoke init --dir {target}`"
            " (tasks.py goes beside its .dvc folder, and inv runs from there)"
        )
    return (
        f"{root} is not a DVC project's root (no .dvc folder): run `dvc init`"
        " there first, or give its root with --dir"
    )


def _q(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def main(args: list[str]) -> int:
    """``dvc-invoke init [--dir DIR]``."""
    from invoke.context import Context

    root = Path.cwd()
    if args[:1] == ["--dir"] and len(args) == 2:
        root = Path(args[1])
    elif args:
        print("usage: dvc-invoke init [--dir DIR]", file=sys.stderr)
        return 2
    return init(root.resolve(), Context())
