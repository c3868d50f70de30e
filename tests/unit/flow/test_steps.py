"""Command construction, against invoke's MockContext: quoting, order, flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from invoke import Config, MockContext, Result

from dvc_invoke import flow
from dvc_invoke.adapters.dvc import staleness
from dvc_invoke.adapters.dvc.model import Output, PipelineGraph, Tracked
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.pipelines import Pipeline
from dvc_invoke.errors import DvcInvokeError


@pytest.fixture(autouse=True)
def in_root(tmp_path, monkeypatch):
    """Run from the project root, as a user usually does: no `cd` prefix."""
    monkeypatch.chdir(tmp_path)


def mock(run=None, **config):
    cfg = Config(overrides={"run": {"in_stream": False}, "dvc_invoke": {"dvc": "dvc", **config}})
    return MockContext(config=cfg, run=run or {}, repeat=True)


def plan_for(pipeline, *, stages=("p/dvc.yaml:a", "p/dvc.yaml:b"), outputs=None, **kw):
    outputs = outputs or [
        Output("p/out dir", True, stages[-1]),
        Output("p/m.json", False, stages[-1]),
    ]
    graph = PipelineGraph("p/dvc.yaml", list(stages), [], outputs, ["p/dvc.lock"], Tracked(outputs))
    pull = kw.pop("pull", ["model", "data set"])
    return flow.Plan(pipeline, graph, pull, graph.push_targets, **kw)


def commands(c):
    return [call.args[0] for call in c.run.call_args_list]


def test_pull_quotes_every_target_in_one_call(tmp_path):
    c = mock({re.compile(r"dvc pull .*"): Result()})
    ws = Workspace(c, tmp_path)
    flow.pull(ws, plan_for(Pipeline("p", "p/dvc.yaml")))
    assert commands(c)[-1].endswith("dvc pull model 'data set'")


def test_forced_repro_names_its_own_stages_in_order(tmp_path):
    c = mock({re.compile(r"dvc repro .*"): Result()})
    flow.reproduce(Workspace(c, tmp_path), plan_for(Pipeline("p", "p/dvc.yaml"), force=True))
    assert commands(c)[-1].endswith("dvc repro --single-item --force p/dvc.yaml:a p/dvc.yaml:b")


@pytest.mark.parametrize(
    "file_stages, own, expected",
    [
        # The whole file, in the file's order: the file says the same, in one target.
        (["a", "b"], ["p/dvc.yaml:a", "p/dvc.yaml:b"], "p/dvc.yaml"),
        # A subset, or a file whose order is not the dependency order: stage by stage.
        (["a", "b", "c"], ["p/dvc.yaml:a", "p/dvc.yaml:b"], "p/dvc.yaml:a p/dvc.yaml:b"),
        (["b", "a"], ["p/dvc.yaml:a", "p/dvc.yaml:b"], "p/dvc.yaml:a p/dvc.yaml:b"),
    ],
)
def test_repro_passes_dvc_the_fewest_targets_that_mean_the_same(
    tmp_path, file_stages, own, expected
):
    c = mock({re.compile(r"dvc repro .*"): Result()})
    plan = plan_for(Pipeline("p", "p/dvc.yaml"), stages=own, force=True)
    plan.graph.file_stages = file_stages
    flow.reproduce(Workspace(c, tmp_path), plan)
    assert commands(c)[-1].endswith(f"dvc repro --single-item --force {expected}")


def test_upstream_never_widens_the_repro_to_other_pipelines(tmp_path):
    # Upstream pipelines run before, as runs of their own: repro stays single-item.
    c = mock({re.compile(r"dvc repro .*"): Result()})
    flow.reproduce(Workspace(c, tmp_path), plan_for(Pipeline("p", "p/dvc.yaml"), upstream=True))
    assert commands(c)[-1].endswith("dvc repro --single-item p/dvc.yaml:a p/dvc.yaml:b")


def test_a_failing_command_names_its_step_and_dvcs_reason(tmp_path):
    c = mock({re.compile(r"dvc pull .*"): Result(exited=1, stderr="ERROR: failed to pull data\n")})
    with pytest.raises(DvcInvokeError) as err:
        flow.pull(Workspace(c, tmp_path), plan_for(Pipeline("p", "p/dvc.yaml")), resume="inv p")
    assert err.value.line() == "dvc-invoke: pull failed: failed to pull data; then run: inv p"


STATUS = "# branch.oid {oid}\0# branch.head main\0# branch.upstream origin/main\0# branch.ab +{ahead} -0\0"


@pytest.fixture(autouse=True)
def consistent(monkeypatch):
    """The DVC side of publishing, which needs a real project, is tested end to end."""
    monkeypatch.setattr(staleness, "stale", lambda root, addresses: [])


def test_publish_commits_only_what_changed_then_pushes_data_before_git(tmp_path):
    message = 'it\'s $(rm -rf ~) "done"'
    c = mock(
        {
            re.compile(r"git --no-optional-locks status --porcelain=v2.*"): Result(
                STATUS.format(oid="a" * 40, ahead=0)
            ),
            re.compile(r"git --no-optional-locks status --porcelain -z.*"): Result(
                " M p/dvc.lock\0?? p/m.json\0"
            ),
            re.compile(r"git for-each-ref.*"): Result("origin refs/heads/main\n"),
            re.compile(r"git rev-parse --show-prefix"): Result("\n"),
            re.compile(r"git rev-parse --verify.*"): Result("b" * 40 + "\n"),
            re.compile(r"(git (add|commit|push)|dvc push) .*"): Result(),
            re.compile(r"dvc status --cloud .*"): Result("{}"),
        }
    )
    done = flow.publish(
        Workspace(c, tmp_path), plan_for(Pipeline("p", "p/dvc.yaml", message=message))
    )

    actions = [cmd for cmd in commands(c) if re.match(r"(git (add|commit|push)|dvc push)", cmd)]
    assert actions == [
        "git add -f -- p/dvc.lock p/m.json",
        "git commit -q -m 'it'\"'\"'s $(rm -rf ~) \"done\"' -- p/dvc.lock p/m.json",
        "dvc push 'p/out dir'",
        "git push origin HEAD:refs/heads/main",
    ]
    assert done.committed and done.git_pushed and done.commit == "b" * 40


def test_publish_with_nothing_changed_and_nothing_ahead_pushes_nothing(tmp_path):
    c = mock(
        {
            re.compile(r"git --no-optional-locks status --porcelain=v2.*"): Result(
                STATUS.format(oid="a" * 40, ahead=0)
            ),
            re.compile(r"git --no-optional-locks status --porcelain -z.*"): Result(""),
            re.compile(r"git rev-parse --verify.*"): Result("a" * 40 + "\n"),
        }
    )
    done = flow.publish(Workspace(c, tmp_path), plan_for(Pipeline("p", "p/dvc.yaml")))
    assert not any(re.match(r"(git (add|commit|push)|dvc push)", cmd) for cmd in commands(c))
    assert not done.committed and not done.git_pushed


def test_publish_resumes_an_unpushed_commit(tmp_path):
    c = mock(
        {
            re.compile(r"git --no-optional-locks status --porcelain=v2.*"): Result(
                STATUS.format(oid="a" * 40, ahead=1)
            ),
            re.compile(r"git --no-optional-locks status --porcelain -z.*"): Result(""),
            re.compile(r"git for-each-ref.*"): Result("origin refs/heads/main\n"),
            re.compile(r"git rev-parse --verify.*"): Result("a" * 40 + "\n"),
            re.compile(r"(git push|dvc push) .*"): Result(),
            re.compile(r"dvc status --cloud .*"): Result("{}"),
        }
    )
    flow.publish(Workspace(c, tmp_path), plan_for(Pipeline("p", "p/dvc.yaml")))
    pushes = [cmd for cmd in commands(c) if "push" in cmd]
    assert pushes == ["dvc push 'p/out dir'", "git push origin HEAD:refs/heads/main"]


def test_commands_run_from_the_dvc_root(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent)  # a folder outside the project
    c = mock({re.compile(r".*dvc pull .*"): Result()})
    flow.pull(Workspace(c, tmp_path / "my project"), plan_for(Pipeline("p", "p/dvc.yaml")))
    assert commands(c)[-1].startswith(f"cd '{tmp_path / 'my project'}' && dvc pull")
