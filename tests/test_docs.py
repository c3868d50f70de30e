"""The docs: the reference pages hold every task, option and setting the code has,
the README stays the short front door it is meant to be, and its links lead somewhere."""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import re
import sys
from pathlib import Path

import pytest
import yaml
from invoke import Collection, task

import dvc_invoke
from dvc_invoke import pipeline_task
from dvc_invoke import repro as repro_module
from dvc_invoke.config import settings as settings_module
from dvc_invoke.config.pipelines import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def hook():
    """The mkdocs hook that writes the reference pages, loaded as mkdocs loads it."""
    spec = importlib.util.spec_from_file_location("reference_hook", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def page(hook, name):
    """A reference page as the site shows it: its markers replaced by the hook."""
    return hook.render((DOCS / "reference" / name).read_text(), ROOT)


def collections_in_the_package():
    """Every module of dvc_invoke that holds a collection (`ns`), found on its own,
    not through what the hook lists."""
    found = {}
    for info in pkgutil.iter_modules(dvc_invoke.__path__):
        module = importlib.import_module(f"dvc_invoke.{info.name}")
        if isinstance(getattr(module, "ns", None), Collection):
            found[info.name] = Collection.from_module(module)
    return found


def long_flags(hook, t):
    return {f"--{name}" for arg in hook.arguments(t) for name in arg.names if len(name) > 1}


def test_the_package_has_the_five_collections_this_test_relies_on():
    assert {"guards", "data", "repro", "publish", "notify"} <= set(collections_in_the_package())


def test_every_task_of_every_collection_is_in_the_reference_with_each_option(hook):
    text = page(hook, "tasks.md")
    for name, collection in collections_in_the_package().items():
        for task_name in collection.task_names:
            full = f"{name}.{task_name}"
            assert full in text, f"task {full} is missing from the reference"
            t = collection[task_name]
            for flag in long_flags(hook, t):
                # The option as `inv --help` prints it, in that task's section.
                section = text.split(f"{{ #{full.replace('.', '-')} }}", 1)[1].split("\n### ", 1)[0]
                assert flag in section, f"{flag} of {full} is missing from the reference"


def test_a_pipeline_tasks_options_are_in_the_reference(hook):
    text = page(hook, "tasks.md")
    section = text.split("$ inv --help train\n", 1)[1].split("```", 1)[0]
    flags = long_flags(hook, pipeline_task("anything", dvcfile="dvc.yaml"))
    assert {"--force", "--detach", "--slurm", "--host", "--skip", "--upstream"} <= flags
    for flag in flags:
        assert flag in section


def test_the_reference_shows_what_inv_help_prints(hook):
    page(hook, "tasks.md")  # invoke's parser takes help texts away: a second build keeps them
    text = page(hook, "tasks.md")
    assert "--host-gone               The run's host (sharing this workspace) is gone" in text
    assert "$ inv --help repro.status\nUsage: inv [--core-opts] repro.status [--options]" in text
    assert "-p STRING, --pipeline=STRING" in text
    assert "<!-- reference:" not in text


def test_a_task_added_to_a_collection_is_in_the_reference_without_editing_the_docs(
    hook, monkeypatch
):
    @task(help={"keep-days": "Keep the records of this many days."})
    def prune(c, keep_days=30):
        """Remove old run records."""

    grown = Collection(*repro_module.ns.tasks.values(), prune)
    grown.default = repro_module.ns.default
    monkeypatch.setattr(repro_module, "ns", grown)

    text = page(hook, "tasks.md")

    assert "$ inv --help repro.prune" in text
    assert "--keep-days=INT" in text
    assert "Keep the records of this many days." in text


def setting_keys(defaults, prefix="dvc_invoke"):
    """Every setting's dotted key: a mapping with defaults of its own is a group."""
    for key, default in defaults.items():
        if isinstance(default, dict) and default:
            yield from setting_keys(default, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", default


def row(text, key):
    rows = [line for line in text.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"{key} is not in the reference once: {rows}"
    return rows[0]


def test_every_setting_is_in_the_reference_with_its_default(hook):
    text = page(hook, "settings.md")
    keys = list(setting_keys(settings_module.DEFAULTS))
    assert ("dvc_invoke.timeouts.commit", 600) in keys  # nested settings count one by one
    for key, default in keys:
        cells = [cell.strip() for cell in row(text, key).split(" | ")]
        assert cells[2] == ('`""`' if default == "" else f"`{json.dumps(default)}`"), key
        assert cells[1], f"{key} has no type"


def test_every_setting_says_what_it_does(hook):
    text = page(hook, "settings.md")
    for key, _ in setting_keys(settings_module.DEFAULTS):
        meaning = row(text, key).rstrip(" |").rsplit(" | ", 1)[1]
        assert len(meaning) > 10, f"{key}: write a comment above it in settings.DEFAULTS"


def test_a_setting_added_to_the_defaults_is_in_the_reference(hook, monkeypatch):
    grown = {**settings_module.DEFAULTS, "prune": {"days": 30, "keep": 100}}
    monkeypatch.setattr(settings_module, "DEFAULTS", grown)

    text = page(hook, "settings.md")

    assert "`30`" in row(text, "dvc_invoke.prune.days")
    assert "| integer |" in row(text, "dvc_invoke.prune.keep")


def test_the_types_are_the_ones_the_settings_are_validated_as(hook):
    text = page(hook, "settings.md")
    assert "| true or false |" in row(text, "dvc_invoke.echo")
    assert "| integer |" in row(text, "dvc_invoke.retries")
    assert "| number or null |" in row(text, "dvc_invoke.timeouts.dvc_push")
    assert "| string |" in row(text, "dvc_invoke.ssh")


def test_every_pipeline_option_is_in_the_reference(hook):
    text = page(hook, "settings.md")
    assert OPTIONS  # what pipeline_task and dvc_invoke.pipelines.NAME take
    for option in OPTIONS:
        meaning = row(text, option).rstrip(" |").rsplit(" | ", 1)[1]
        assert meaning, f"pipeline option {option} says nothing"


def test_the_dvc_invoke_command_page_shows_its_usage(hook):
    text = page(hook, "cli.md")
    assert "$ dvc-invoke --help\nusage: dvc-invoke demo [--dir DIR] | init [--dir DIR]" in text
    assert "--dir DIR" in text


def readme():
    return (ROOT / "README.md").read_text()


def test_the_readme_is_a_short_front_door():
    assert len(readme().splitlines()) < 200


def test_the_readme_quick_start_test_command_is_the_one_ci_runs():
    command = (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest -n 2"
    )
    assert f"```sh\n{command}\n```" in readme()
    ci = ROOT / ".ci" / "run"
    if ci.exists():  # a checkout's (the sdist carries no CI)
        assert f"\n{command}\n" in ci.read_text()
    demo = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/inv demo"
    assert f"```sh\n{demo}\n```" in readme()


def test_the_readme_says_how_to_adopt_in_numbered_steps():
    text = readme()
    adopt = text.split("## Adopt in an existing project", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^(\d)\. ", adopt, re.M)
    assert steps == ["1", "2", "3", "4", "5", "6"]
    for command in (
        "pip install ./dvc-invoke",
        "dvc-invoke init",
        "git add tasks.py",
        "@{upstream}",
    ):
        assert command in adopt
    assert "dvc remote default" in adopt and "inv --dry NAME" in adopt and "inv NAME" in adopt


def test_every_link_of_the_readme_to_a_file_leads_to_one():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme())
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert "docs/reference/settings.md" in local
    for target in local:
        assert (ROOT / target).is_file(), f"the README links to {target}, which is not there"


def nav_pages(entries):
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            if isinstance(value, list):
                yield from nav_pages(value)
            else:
                yield value


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = set(nav_pages(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert nav == pages


def test_the_docs_build_fetches_nothing():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["font"] is False  # no Google Fonts
    assert config.get("plugins", ["search"]) == ["search"]


def test_a_marker_quoted_in_a_sentence_is_left_as_it_is(hook):
    text = "The marker `<!-- reference:settings -->` writes the table:\n\n<!-- reference:settings -->\n"
    rendered = hook.render(text, ROOT)
    assert rendered.startswith(
        "The marker `<!-- reference:settings -->` writes the table:\n\n| setting |"
    )
    assert rendered.count("| `dvc_invoke.echo` |") == 1


def test_the_changelog_page_is_the_changelog_when_there_is_one(hook, tmp_path):
    marker = (DOCS / "changelog.md").read_text()
    assert "No release yet" in hook.render(marker, tmp_path)
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n## [0.1.0]\n\n- First release.\n")
    assert hook.render(marker, tmp_path).startswith("# Changelog\n\n## [0.1.0]\n\n- First release.")


def test_the_benchmark_page_shows_the_last_results_under_its_own_headings(hook):
    text = hook.render((DOCS / "explanation" / "benchmark.md").read_text(), ROOT)
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    first = results.splitlines()[0]
    assert first.startswith("# ") and f"\n#{first}\n" in text  # one level down
    assert results.splitlines()[-1] in text


def section(text, heading):
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("heading", ["Prerequisites", "Install"])
def test_the_docs_home_says_what_the_readme_says_of_prerequisites_and_install(heading):
    home = (DOCS / "index.md").read_text()
    assert section(home, heading).strip() == section(readme(), heading).strip()


def test_every_option_of_a_gpu_host_is_in_the_reference(hook):
    text = page(hook, "settings.md").split("## GPU host options", 1)[1]
    assert settings_module.HOST_OPTIONS
    for option in settings_module.HOST_OPTIONS:
        meaning = row(text, option).rstrip(" |").rsplit(" | ", 1)[1]
        assert meaning, f"host option {option} says nothing"
    assert "| required |" in row(text, "ssh")
    assert '`"python3"`' in row(text, "python")
