"""The pytest plugin, as a team uses it: its own repository, its own test, plain `pytest`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TEAM_FILES = {
    "tasks.py": textwrap.dedent(
        """\
        from invoke import Collection
        from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

        train = pipeline_task("train", dvcfile="dvc.yaml")
        ns = Collection(train, guards, data, repro, publish, notify)
        """
    ),
    "dvc.yaml": textwrap.dedent(
        """\
        stages:
          train:
            cmd: python train.py
            deps: [train.py, data/train.csv]
            outs: [model.txt]
            metrics: [{metrics.json: {cache: false}}]
        """
    ),
    "train.py": textwrap.dedent(
        """\
        import json
        rows = open("data/train.csv").read().split()[1:]
        open("model.txt", "w").write(str(len(rows)))
        json.dump({"rows": len(rows)}, open("metrics.json", "w"))
        """
    ),
    # The real data is in the team's DVC remote; its .dvc file is in git.
    "data/train.csv.dvc": "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: train.csv\n",
    ".gitignore": "/model.txt\n.env\n",
    # The team's test, written as the README shows it.
    "tests/test_pipelines.py": textwrap.dedent(
        """\
        from pathlib import Path

        REPO = Path(__file__).parents[1]


        def test_train_publishes_and_tells_the_team(dvc_project, fake_slack):
            project = dvc_project(REPO, extra={"data/train.csv": "x,y\\n1,2\\n3,4\\n"}, data=["data/train.csv"])
            run = project.inv("train", env=fake_slack.web_api_env())
            assert run.returncode == 0, run.output
            assert project.origin_log()[0] == "[DVC] Update train"
            assert fake_slack.calls("chat.update")[-1].text.startswith("train succeeded")
            assert len(project.remote_objects()) == 2  # the data and the model
            assert project.fresh_clone_problems() == []


        def test_a_slack_outage_never_fails_the_run(dvc_project, fake_slack):
            project = dvc_project(REPO, extra={"data/train.csv": "x,y\\n1,2\\n"}, data=["data/train.csv"])
            fake_slack.fail("chat.update", times=3, status=503)
            run = project.inv("train", env=fake_slack.web_api_env())
            assert run.returncode == 0, run.output
            assert "Slack" in run.stdout
        """
    ),
}


def team_repo(tmp_path, edit=lambda text: text):
    repo = tmp_path / "team-repo"
    for rel, text in TEAM_FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(edit(text))
    me = ["-c", "user.name=Team", "-c", "user.email=team@example.invalid"]
    for cmd in (["init", "-q"], ["add", "-A"], [*me, "commit", "-qm", "Ours"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True)
    return repo


def pytest_in(repo):
    """Plain pytest in the team's repository: the fixtures come with dvc-invoke."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_team_tests_its_tasks_with_the_plugins_fixtures(tmp_path):
    run = pytest_in(team_repo(tmp_path))

    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_a_failing_team_test_fails(tmp_path):
    """The fixtures check for real: a wrong expectation fails the team's suite."""
    wrong = lambda text: text.replace('"[DVC] Update train"', '"[DVC] something else"')  # noqa: E731

    run = pytest_in(team_repo(tmp_path, wrong))

    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout


def test_importing_the_plugin_imports_nothing_heavy():
    """pytest loads the plugin in every run of a project that installs
    dvc-invoke: the package, invoke, DVC and Slack wait for a fixture's first use."""
    code = (
        "import sys, pytest; before = set(sys.modules); "
        "import dvc_invoke.testing.plugin; "
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.strip().strip("[]").replace("'", "").split(", "))
    # The package itself, and its check of the platform (a line, off POSIX).
    ours = {"dvc_invoke", "dvc_invoke.posix", "dvc_invoke.testing", "dvc_invoke.testing.plugin"}
    assert loaded == ours
    heavy = ("invoke", "dvc", "dvc_data", "slack_sdk", "yaml", "rich", "psutil", "http")
    assert not {m for m in loaded if m.split(".")[0] in heavy}


def test_the_package_exports_on_first_use():
    code = (
        "import sys, dvc_invoke, dvc_invoke.testing as t; "
        "assert 'invoke' not in sys.modules; "
        "from dvc_invoke import repro, pipeline_task, DvcInvokeError; "
        "assert repro.ns.default == 'run' and callable(pipeline_task); "
        "assert t.SlackServer.__name__ == 'SlackServer' and t.Project.__name__ == 'Project'; "
        "print('invoke' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_the_plugin_registers_its_marker_and_marks_the_tests_that_build_a_project(tmp_path):
    (tmp_path / "test_team.py").write_text(
        "def test_builds(dvc_project):\n    pass\n\n\ndef test_quick():\n    pass\n"
    )
    common = ["-p", "no:cacheprovider", "-p", "no:xdist", "--strict-markers"]

    def pytest(*args):
        return subprocess.run(
            [sys.executable, "-m", "pytest", *common, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    markers = pytest("--markers")
    assert markers.returncode == 0, markers.stderr
    assert "@pytest.mark.dvc_project:" in markers.stdout

    marked = pytest("--collect-only", "-q", "-m", "dvc_project")
    assert "test_team.py::test_builds" in marked.stdout, marked.stdout
    assert "test_quick" not in marked.stdout

    quick = pytest("-q", "-m", "not dvc_project")
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert "1 passed, 1 deselected" in quick.stdout
