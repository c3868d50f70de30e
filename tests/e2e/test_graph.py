"""Target resolution and git state parsing, on plain data.

End to end: real projects, `inv` run as a user runs it."""

from __future__ import annotations


def test_a_run_reads_dvc_through_one_repo(project, monkeypatch):
    """Graph, remote check, metrics and staleness share one DVC Repo per run,
    fresh at each read (git and dvc ran in between), closed at the end. (The
    DVC commands run in this process open their own, as a dvc process would.)"""
    from dvc.repo import Repo
    from invoke import Config, Context

    from dvc_invoke import flow
    from dvc_invoke.adapters.dvc import inprocess

    opened, closed, commands = [], [], []
    init, close = Repo.__init__, Repo.close

    def counting_init(self, *args, **kwargs):
        (commands if inprocess.running() else opened).append(self)
        init(self, *args, **kwargs)

    def counting_close(self):
        closed.append(self)
        close(self)

    monkeypatch.setattr(Repo, "__init__", counting_init)
    monkeypatch.setattr(Repo, "close", counting_close)
    monkeypatch.chdir(project.path)
    monkeypatch.setenv("SANDBOX_TRACE", str(project.trace_file))

    report = flow.run(Context(Config(overrides={"run": {"in_stream": False}})), "metrics")

    assert report is not None and report.status == "succeeded", report
    assert report.metrics, "the metrics were compared, through the same Repo"
    assert len(opened) == 1 and opened[0] in closed
    assert commands and all(repo in closed for repo in commands)
