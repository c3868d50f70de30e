"""The pytest plugin (entry point ``pytest11``): fixtures to test a project's own tasks.

- ``dvc_project``: a function that builds a throw-away project from your files
  (see `dvc_invoke.testing.build`) and returns a `Project` to run ``inv`` in;
- ``fake_slack``: a stand-in Slack on 127.0.0.1 (`dvc_invoke.testing.SlackServer`).

Every test that uses ``dvc_project`` runs with git and DVC kept away from the
machine's own configuration and caches, and is marked ``dvc_project`` (it
builds a real project and runs ``inv`` in it: ``pytest -m "not dvc_project"``
leaves those out of a quick run).

pytest loads this plugin in every run of a project that installs
dvc-invoke: importing it imports nothing of dvc-invoke's, invoke's, DVC's or
Slack's (each fixture does, on first use), and costs well under 10 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

MARKER = "dvc_project"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: uses dvc-invoke's dvc_project fixture (a real git and DVC project,"
        f" inv run in it; slow): -m 'not {MARKER}' leaves it out",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "dvc_project" in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)


def isolated(home: Path) -> dict[str, str]:
    """The environment that keeps git and DVC away from the machine's own
    configuration and caches, in ``home`` (its git config written there)."""
    (home / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    return {
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_TERMINAL_PROMPT": "0",
    }


@pytest.fixture
def dvc_isolation(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """git and DVC configuration and caches of their own, for one test."""
    home = tmp_path_factory.mktemp("dvc-invoke-home")
    for key, value in isolated(home).items():
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture
def dvc_project(tmp_path: Path, dvc_isolation: Path) -> Callable[..., Any]:
    """``dvc_project(files, extra={...}, data=[...])``: a project built from ``files``
    (a mapping of path to content, or a folder whose git-tracked files are
    copied), ``extra`` files over them, ``data`` ``dvc add``-ed; pushed to a
    bare origin and a local DVC remote (`dvc_invoke.testing.build`)."""
    from dvc_invoke.testing.project import build

    made = 0

    def make(
        files: Mapping[str, str | bytes] | Path | str,
        *,
        extra: Mapping[str, str | bytes] | None = None,
        data: list[str] | None = None,
    ) -> Any:
        from pathlib import Path

        nonlocal made
        made += 1
        source = Path(files) if isinstance(files, str) else files
        return build(tmp_path / f"dvc-project-{made}", source, extra=extra, data=data or ())

    return make


@pytest.fixture
def fake_slack() -> Iterator[Any]:
    """A stand-in Slack (Web API and webhook) on 127.0.0.1, recording what was posted."""
    from dvc_invoke.testing.slack import SlackServer

    with SlackServer() as server:
        yield server
