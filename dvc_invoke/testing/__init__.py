"""Test a project's own pipeline tasks: a throw-away DVC project and a stand-in Slack.

Installed with dvc-invoke, the pytest plugin (``dvc_invoke.testing.plugin``)
gives every test suite the fixtures ``dvc_project`` and ``fake_slack``::

    def test_training_publishes_and_tells_the_team(dvc_project, fake_slack):
        # This repository's files, with a small data file of the right format.
        project = dvc_project(".", extra={"data/train.csv": "x,y\n1,2\n"}, data=["data/train.csv"])
        run = project.inv("train", env=fake_slack.web_api_env())
        assert run.returncode == 0, run.output
        assert project.origin_log()[0] == "[DVC] Update train"
        assert fake_slack.calls("chat.update")[-1].text.startswith("train succeeded")
        assert project.fresh_clone_problems() == []
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dvc_invoke.testing.project import Project, Run, build
    from dvc_invoke.testing.slack import TOKEN, WEBHOOK_PATH, SlackServer

# Imported on first use: every pytest run loads the plugin beside them.
_EXPORTS = {
    "Project": "project",
    "Run": "project",
    "build": "project",
    "TOKEN": "slack",
    "WEBHOOK_PATH": "slack",
    "SlackServer": "slack",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


__all__ = ["TOKEN", "WEBHOOK_PATH", "Project", "Run", "SlackServer", "build"]
