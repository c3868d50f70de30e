"""The stream that leaves DVC's `git add` / `dvc push` advice out of a repro's output.

End to end: real projects, `inv` run as a user runs it."""

from __future__ import annotations

import yaml
from helpers import assert_one_line_error


def test_a_pull_of_an_object_nobody_has_names_its_target_in_one_line(project):
    # The model's object is gone from the DVC remote and the cache, and from
    # the workspace: what an interrupted pull's rerun, or an upstream that
    # never ran, meets.
    lock = yaml.safe_load((project.path / "training" / "dvc.lock").read_text())
    (out,) = [o for o in lock["stages"]["train"]["outs"] if o["path"].endswith("model.json")]
    md5 = out["md5"]
    for store in (
        project.remote / "files" / "md5",
        project.path / ".dvc" / "cache" / "files" / "md5",
    ):
        (store / md5[:2] / md5[2:]).unlink()
    (project.path / "model" / "model.json").unlink()

    run = project.inv("metrics")

    line = assert_one_line_error(run, "pull failed", "then run: inv metrics")
    assert "Checkout failed for following targets: model/model.json" in line
    assert "(Is your cache up to date?)" in line
