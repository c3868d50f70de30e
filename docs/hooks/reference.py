"""The reference pages, written at build time from the installed package.

mkdocs runs this file as a hook (``hooks:`` in ``mkdocs.yml``). A page holds a
marker such as ``<!-- reference:tasks -->``; the hook puts in its place what
the code says today: every task of the collections ``dvc_invoke`` exports, as
``inv --help TASK`` prints it, every setting of ``settings.DEFAULTS`` with its
type and default, every pipeline option, the ``dvc-invoke`` command's usage.
A task, option or setting added to the code is on the page at the next build;
nothing here lists them by hand. ``tests/test_docs.py`` checks that none is
missing.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import io
import json
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The example pipeline task the reference shows, as `dvc-invoke init` writes one.
EXAMPLE_PIPELINE = "train"

# The meaning of each pipeline option; an option missing here is still listed,
# with the comment its field has in `dvc_invoke.config.pipelines.Pipeline`.
PIPELINE_OPTIONS = {
    "dvcfile": (
        "`NAME/dvc.yaml`",
        "the pipeline, relative to the DVC root (`dvc.yaml:evaluate` also names its stages)",
    ),
    "stages": (
        "all",
        "the stages of `dvcfile` that are the pipeline's own; the file's others are upstream:"
        " pulled, never rebuilt",
    ),
    "force": ("`false`", "re-run its own stages even when nothing changed"),
    "upstream": (
        "`false`",
        "first run each stale pipeline it reads from, whole (gates, commit, push)",
    ),
    "pull": ("its inputs", "paths to pull; `[]` for none"),
    "push": (
        "its outputs",
        "paths to `dvc push`; `[]` for none (a warning lists outputs left out)",
    ),
    "commit": ("`true`", "commit the lock file; `false` also skips `git push`"),
    "git_push": ("`true`", "push the commit to the branch's upstream"),
    "message": ("`[DVC] Update NAME`", "the commit message, verbatim"),
    "slack": (
        "none",
        "`channel`, and a text per status (`started`, `succeeded`, `failed`, `cancelled`),"
        " for this pipeline's Slack messages",
    ),
    "slurm": (
        "none",
        'sbatch long options for `--slurm`: `{partition: gpu, gres: "gpu:1", time: "04:00:00"}`;'
        " `true` for a flag (`no_requeue: true`); dvc-invoke sets the job's name, output,"
        " directory and environment",
    ),
    "gates": (
        "none",
        'metrics that must not get worse: `{"FILE:KEY": "max"}` or'
        ' `{"KEY": {"direction": "min", "tolerance": 0.01}}`',
    ),
}


# -- the tasks ---------------------------------------------------------------


def collections() -> list[tuple[str, Any]]:
    """The collections ``dvc_invoke`` exports, by the name ``Collection(...)`` mounts them."""
    from invoke.collection import Collection

    import dvc_invoke

    found = []
    for name in dvc_invoke.__all__:
        module = getattr(dvc_invoke, name, None)
        held = getattr(module, "ns", None)
        if isinstance(module, types.ModuleType) and isinstance(held, Collection):
            found.append((name, Collection.from_module(module)))
    return found


def namespace() -> Any:
    """A project's namespace as ``dvc-invoke init`` writes it: a pipeline task, the collections."""
    from invoke.collection import Collection

    from dvc_invoke import pipeline_task

    ns = Collection(pipeline_task(EXAMPLE_PIPELINE, dvcfile="dvc.yaml"))
    for name, collection in collections():
        ns.add_collection(collection, name=name)
    return ns


@contextlib.contextmanager
def _help_kept(tasks: list[Any]) -> Iterator[None]:
    # NOTE: invoke's Task.arg_opts pops each option's help text as it makes the
    # option: a second parser (a second page, `mkdocs serve`'s next build) would
    # print the options bare. Each task gets its texts back.
    saved = [(t, dict(t.help)) for t in tasks]
    try:
        yield
    finally:
        for t, texts in saved:
            t.help = texts


def arguments(task: Any) -> list[Any]:
    """``task.get_arguments()``, leaving the task's help texts in place."""
    with _help_kept([task]):
        return list(task.get_arguments())


def task_help(ns: Any, name: str) -> str:
    """What ``inv --help NAME`` prints, for the tasks of ``ns``."""
    from invoke import Program

    out = io.StringIO()
    program = Program(namespace=ns, name="inv", binary="inv")
    with _help_kept([ns[full] for full in ns.task_names]):
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            program.run(["inv", "--help", name], exit=False)
    return out.getvalue().rstrip() + "\n"


def tasks() -> Iterator[tuple[str, str, Any]]:
    """(full name, what to type, task) for every task of the namespace, collections in order."""
    ns = namespace()
    for full, aliases in ns.task_names.items():
        shortest = min([full, *aliases], key=len)
        yield full, shortest, ns[full]


def _summary(task: Any) -> str:
    doc = inspect.getdoc(task.body) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def tasks_markdown() -> str:
    ns = namespace()
    rows = ["| command | what it does |", "| --- | --- |"]
    sections = []
    for full, typed, task in tasks():
        anchor = full.replace(".", "-")
        label = f"inv {typed}" if typed == full else f"inv {typed} ({full})"
        rows.append(f"| [`inv {typed}`](#{anchor}) | {_summary(task)} |")
        sections.append(
            f"### `{label}` {{ #{anchor} }}\n\n```text\n$ inv --help {typed}\n"
            f"{task_help(ns, typed)}```\n"
        )
    intro = (
        f"`{EXAMPLE_PIPELINE}` stands for any pipeline task of your `tasks.py`"
        f' (here `pipeline_task("{EXAMPLE_PIPELINE}", dvcfile="dvc.yaml")`): each one has'
        " the same options.\n"
    )
    return "\n".join([intro, *rows, "", *sections])


# -- the settings ------------------------------------------------------------


def _comments(source: str, names: list[tuple[str, int, int]]) -> dict[str, str]:
    """Each name's comment: the ``#`` lines right above it, or at the end of its line.

    ``names`` holds (name, first line, last line), 1-based, in source order. A
    name with no comment of its own right after another one (no blank line
    between) shares that one's: ``retries`` and ``retry_delay`` under one.
    """
    lines = source.splitlines()
    found: dict[str, str] = {}
    previous: tuple[str, int] | None = None
    for name, first, last in names:
        above = []
        index = first - 2
        while index >= 0 and lines[index].strip().startswith("#"):
            above.insert(0, lines[index].strip().lstrip("#").strip())
            index -= 1
        trailing = ""
        code = lines[last - 1]
        if "  # " in code:
            trailing = code.split("  # ", 1)[1].strip()
        text = " ".join(part for part in [*above, trailing] if part)
        if not text and previous is not None and previous[1] == first - 1:
            text = found[previous[0]]
        found[name] = text
        previous = (name, last)
    return found


def _defaults_comments(module: types.ModuleType, variable: str) -> dict[str, str]:
    source = inspect.getsource(module)
    for node in ast.walk(ast.parse(source)):
        target = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign):
            target = node.target
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id == variable and isinstance(value, ast.Dict):
            names = [
                (key.value, key.lineno, item.end_lineno or key.lineno)
                for key, item in zip(value.keys, value.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ]
            return _comments(source, names)
    return {}


def _class_comments(module: types.ModuleType, name: str) -> dict[str, str]:
    source = inspect.getsource(module)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == name:
            names = [
                (stmt.target.id, stmt.lineno, stmt.end_lineno or stmt.lineno)
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            ]
            return _comments(source, names)
    return {}


def _annotation(module: types.ModuleType, owner: str, field: str) -> tuple[str, Any]:
    """The type ``owner.field`` is declared with, as written, and the class it names if any."""
    cls = getattr(module, owner, None)
    written = getattr(cls, "__annotations__", {}).get(field) if cls is not None else None
    if written is None:
        return "", None
    text = written if isinstance(written, str) else getattr(written, "__name__", str(written))
    return text, getattr(module, text, None) if text.isidentifier() else None


def _kind(value: Any, annotation: str) -> str:
    """The kind of value a setting takes, as it is written in ``invoke.yaml``."""
    if isinstance(value, bool):
        kind = "true or false"
    elif "float" in annotation or isinstance(value, float):
        kind = "number"
    elif isinstance(value, int):
        kind = "integer"
    elif isinstance(value, str):
        kind = "string"
    elif isinstance(value, dict):
        kind = "mapping"
    elif isinstance(value, (list, tuple)):
        kind = "list"
    else:
        kind = annotation or type(value).__name__
    return kind + (" or null" if "None" in annotation and "null" not in kind else "")


def _text(comment: str) -> str:
    """A comment as a table cell: no HTML tags by mistake, no cell breaks."""
    return comment.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _yaml(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, str) and not value:
        return '`""`'
    return f"`{json.dumps(value)}`"


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    type: str
    default: Any
    meaning: str


def settings() -> list[Setting]:
    """Every setting of ``settings.DEFAULTS``, nested ones by their dotted key."""
    from dvc_invoke.config import settings as module

    meanings = _defaults_comments(module, "DEFAULTS")
    # The validated object's class: its fields are typed as the settings are.
    typed = next(
        (
            cls.__name__
            for cls in vars(module).values()
            if dataclasses.is_dataclass(cls) and hasattr(cls, "from_mapping")
        ),
        "Settings",
    )
    found = []
    for key, default in module.DEFAULTS.items():
        written, cls = _annotation(module, typed, key)
        if isinstance(default, dict) and default and cls is not None:
            for inner, value in default.items():
                inner_type, _ = _annotation(module, cls.__name__, inner)
                found.append(
                    Setting(
                        f"dvc_invoke.{key}.{inner}",
                        _kind(value, inner_type),
                        value,
                        meanings.get(key, ""),
                    )
                )
        elif isinstance(default, dict) and default:
            for inner, value in default.items():
                found.append(
                    Setting(
                        f"dvc_invoke.{key}.{inner}", _kind(value, ""), value, meanings.get(key, "")
                    )
                )
        else:
            found.append(
                Setting(
                    f"dvc_invoke.{key}", _kind(default, written), default, meanings.get(key, "")
                )
            )
    return found


def settings_markdown() -> str:
    rows = ["| setting | type | default | what it does |", "| --- | --- | --- | --- |"]
    for s in settings():
        rows.append(f"| `{s.key}` | {s.type} | {_yaml(s.default)} | {_text(s.meaning)} |")
    return "\n".join(rows) + "\n"


# What each option of a GPU host means; one missing here is listed all the same.
HOST_OPTIONS = {
    "ssh": "how ssh reaches it: an alias of your `~/.ssh/config`, or `user@host:port`",
    "path": "the project's checkout there: an absolute path, or one under `~/`",
    "python": "the Python that has dvc-invoke installed there; its folder goes first on `PATH`",
}


def host_options() -> list[tuple[str, str, str, str]]:
    """(option, kind, default, meaning) of each option of ``dvc_invoke.hosts.NAME``."""
    from dvc_invoke.config import settings as module

    host = getattr(module, "Host", None)
    if host is None or not dataclasses.is_dataclass(host):
        return []
    fields = {f.name: f for f in dataclasses.fields(host)}
    found = []
    for option in getattr(module, "HOST_OPTIONS", tuple(fields)):
        given = fields[option].default if option in fields else dataclasses.MISSING
        default = "required" if given is dataclasses.MISSING else _yaml(given)
        written, _ = _annotation(module, host.__name__, option)
        named = {"str": "string", "int": "integer", "float": "number", "bool": "true or false"}
        kind = (
            named.get(written, written) if given is dataclasses.MISSING else _kind(given, written)
        )
        found.append((option, kind, default, HOST_OPTIONS.get(option, "")))
    return found


def host_options_markdown() -> str:
    rows = ["| option | type | default | what it does |", "| --- | --- | --- | --- |"]
    for option, kind, default, meaning in host_options():
        rows.append(f"| `{option}` | {kind} | {default} | {_text(meaning)} |")
    return "\n".join(rows) + "\n"


def pipeline_options() -> list[tuple[str, str, str, str]]:
    """(option, type, default, meaning) of each option a pipeline takes."""
    from dvc_invoke import pipeline_task
    from dvc_invoke.config import pipelines as module

    declared = {
        name: p.annotation if isinstance(p.annotation, str) else str(p.annotation)
        for name, p in inspect.signature(pipeline_task).parameters.items()
        if p.annotation is not inspect.Parameter.empty
    }
    comments = _class_comments(module, "Pipeline")
    fields = {f.name: f for f in dataclasses.fields(module.Pipeline)}
    found = []
    for option in module.OPTIONS:
        written = declared.get(option) or _annotation(module, "Pipeline", option)[0]
        default, meaning = PIPELINE_OPTIONS.get(option, ("", ""))
        if not default:
            given = fields[option].default
            default = "" if given is dataclasses.MISSING else _yaml(given)
        found.append((option, written, default, meaning or comments.get(option, "")))
    return found


def pipeline_options_markdown() -> str:
    rows = ["| option | type | default | what it does |", "| --- | --- | --- | --- |"]
    for option, written, default, meaning in pipeline_options():
        rows.append(f"| `{option}` | `{written}` | {default} | {_text(meaning)} |")
    return "\n".join(rows) + "\n"


# -- the dvc-invoke command --------------------------------------------------


def _printed(call: Callable[[], object]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        with contextlib.suppress(SystemExit):
            call()
    return out.getvalue().rstrip() + "\n"


def cli_markdown() -> str:
    from dvc_invoke.__main__ import main
    from dvc_invoke.cli.demo import main as demo

    parts = [
        ("dvc-invoke --help", lambda: main(["--help"])),
        ("dvc-invoke demo --help", lambda: demo(["--help"])),
    ]
    blocks = [f"```text\n$ {shown}\n{_printed(call)}```\n" for shown, call in parts]
    return "\n".join(blocks)


# -- the changelog -----------------------------------------------------------


def changelog_markdown(root: Path) -> str:
    path = root / "CHANGELOG.md"
    if not path.is_file():
        return "# Changelog\n\nNo release yet: the changes are in the git log.\n"
    return path.read_text()


def bench_results_markdown(root: Path) -> str:
    """``bench/RESULTS.md``, its headings one level down to sit under the page's."""
    path = root / "bench" / "RESULTS.md"
    if not path.is_file():
        return "No results yet: run `inv bench`.\n"
    lines = []
    fenced = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return "\n".join(lines) + "\n"


MARKERS: dict[str, Callable[[Path], str]] = {
    "<!-- reference:tasks -->": lambda root: tasks_markdown(),
    "<!-- reference:settings -->": lambda root: settings_markdown(),
    "<!-- reference:pipeline-options -->": lambda root: pipeline_options_markdown(),
    "<!-- reference:host-options -->": lambda root: host_options_markdown(),
    "<!-- reference:cli -->": lambda root: cli_markdown(),
    "<!-- reference:changelog -->": changelog_markdown,
    "<!-- reference:bench-results -->": bench_results_markdown,
}


def render(markdown: str, root: Path) -> str:
    """``markdown`` with each marker, on a line of its own, replaced by what the
    code says today (a marker quoted in a sentence stays as it is)."""
    lines = markdown.split("\n")
    for index, line in enumerate(lines):
        make = MARKERS.get(line.strip())
        if make is not None:
            lines[index] = make(root).rstrip("\n")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """mkdocs' hook: a page's Markdown, before it is converted."""
    return render(markdown, Path(config["config_file_path"]).parent)
