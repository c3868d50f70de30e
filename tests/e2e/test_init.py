"""`dvc-invoke init`: tasks.py for an existing DVC project (dvc_invoke.scaffold).

End to end: real projects, `inv` run as a user runs it."""

from __future__ import annotations


def test_a_run_whose_env_git_does_not_ignore_warns_once(project):
    (project.path / ".gitignore").write_text("__pycache__/\n")
    project.git("commit", "-qam", "Forget to ignore .env")
    (project.path / ".env").write_text("SOMETHING=1\n")  # untracked: the run goes on

    run = project.inv("metrics")

    assert run.returncode == 0, run.output
    warnings = [ln for ln in run.stdout.splitlines() if ".env is not ignored by git" in ln]
    assert len(warnings) == 1, run.stdout
