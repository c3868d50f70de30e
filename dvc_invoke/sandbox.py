"""A throw-away DVC project with a git origin and a DVC remote, for the demo and tests.

Layout under ``base``::

    origin.git/      bare git repository, the team's origin
    dvc-remote/      local folder used as the DVC remote
    project/         a clone with DVC initialised, tracked input data and two
                     pipelines: ``training/`` (trains ``model/model.json``) and
                     ``metrics/`` (evaluates that model on ``dataset/testset``)

The stage scripts append ``<stage>`` to the file named by ``$SANDBOX_TRACE``
(when set), so a caller can tell exactly which stages ran, and in what order;
``$SANDBOX_SLOW=<stage>:<seconds>`` makes one stage take that long.
"""

from __future__ import annotations

import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from invoke import Context

# The tasks.py a user writes; the README shows exactly this.
TASKS_PY = """\
from invoke import Collection
from dvc_invoke import data, guards, notify, pipeline_task, publish, repro

metrics = pipeline_task(
    "metrics",
    dvcfile="metrics/dvc.yaml",
    force=True,
    pull=["model", "dataset/testset"],  # omitted: the pipeline's inputs
    push=["metrics"],  # omitted: the pipeline's outputs
    message="[DVC] Update model metrics",
)

ns = Collection(metrics, guards, data, repro, publish, notify)
"""

_TRACE = """\
import os
import time


def trace(stage):
    path = os.environ.get("SANDBOX_TRACE")
    if path:
        with open(path, "a") as f:
            f.write(stage + "\\n")
    # SANDBOX_SLOW=train:30 makes the train stage take 30 seconds.
    name, _, seconds = os.environ.get("SANDBOX_SLOW", "").partition(":")
    if name == stage:
        print(f"{stage}: working for {seconds}s", flush=True)
        time.sleep(float(seconds))
"""

FILES = {
    "dataset/train.csv": "x,y\n1,2.1\n2,3.9\n3,6.2\n4,8.1\n5,9.8\n",
    "dataset/testset/part-0.csv": "x,y\n6,12.1\n7,13.8\n",
    "dataset/testset/part-1.csv": "x,y\n8,16.2\n9,18.1\n",
    "training/stagetrace.py": _TRACE,
    "training/train.py": textwrap.dedent(
        """\
        import csv
        import json
        import os

        from stagetrace import trace

        trace("train")
        with open("../dataset/train.csv") as f:
            rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
        slope = sum(x * y for x, y in rows) / sum(x * x for x, _ in rows)
        os.makedirs("../model", exist_ok=True)
        with open("../model/model.json", "w") as f:
            json.dump({"slope": round(slope, 6)}, f)
        """
    ),
    "training/dvc.yaml": textwrap.dedent(
        """\
        stages:
          train:
            cmd: python train.py
            deps:
            - train.py
            - ../dataset/train.csv
            outs:
            - ../model/model.json
        """
    ),
    "metrics/stagetrace.py": _TRACE,
    "metrics/predict.py": textwrap.dedent(
        """\
        import csv
        import json
        import os

        from stagetrace import trace

        trace("predict")
        slope = json.load(open("../model/model.json"))["slope"]
        rows = []
        for name in sorted(os.listdir("../dataset/testset")):
            with open(os.path.join("../dataset/testset", name)) as f:
                rows += [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
        with open("predictions.csv", "w") as f:
            f.write("y,prediction\\n")
            for x, y in rows:
                f.write(f"{y},{slope * x}\\n")
        """
    ),
    "metrics/evaluate.py": textwrap.dedent(
        """\
        import csv
        import json

        from stagetrace import trace

        trace("evaluate")
        with open("predictions.csv") as f:
            errs = [abs(float(r["y"]) - float(r["prediction"])) for r in csv.DictReader(f)]
        with open("scores.json", "w") as f:
            json.dump({"mae": round(sum(errs) / len(errs), 6)}, f)
        """
    ),
    "metrics/dvc.yaml": textwrap.dedent(
        """\
        stages:
          predict:
            cmd: python predict.py
            deps:
            - predict.py
            - ../model/model.json
            - ../dataset/testset
            outs:
            - predictions.csv
          evaluate:
            cmd: python evaluate.py
            deps:
            - evaluate.py
            - predictions.csv
            metrics:
            - scores.json:
                cache: false
        """
    ),
    "tasks.py": TASKS_PY,
    ".gitignore": "__pycache__/\n.env\n",
}


@dataclass
class Sandbox:
    base: Path
    origin: Path
    remote: Path
    project: Path


def _run(c: Context, cmd: str, **kwargs):
    return c.run(cmd, in_stream=False, hide=True, **kwargs)


def identify(c: Context, repo: Path) -> None:
    """Give a sandbox repository a committer identity of its own."""
    with c.cd(str(repo)):
        _run(c, "git config user.name 'dvc-invoke sandbox'")
        _run(c, "git config user.email sandbox@dvc-invoke.invalid")


def clone(c: Context, sandbox: Sandbox, dest: Path) -> Path:
    """A teammate's fresh clone of the sandbox's origin: code only, no data."""
    _run(c, f"git clone -q {shlex.quote(str(sandbox.origin))} {shlex.quote(str(dest))}")
    identify(c, dest)
    return dest


def create(c: Context, base: Path, *, trained: bool = False) -> Sandbox:
    """Build the sandbox under ``base`` and publish it to its origin and DVC remote.

    With ``trained``, the training pipeline has also been run and published
    by hand, so the metrics pipeline's model is in the DVC remote.
    """
    base = Path(base).resolve()
    sb = Sandbox(base, base / "origin.git", base / "dvc-remote", base / "project")
    q = lambda p: shlex.quote(str(p))  # noqa: E731
    sb.remote.mkdir(parents=True)
    _run(c, f"git init -q --bare -b main {q(sb.origin)}")
    _run(c, f"git init -q -b main {q(sb.project)}")
    identify(c, sb.project)
    for rel, text in FILES.items():
        path = sb.project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    dvc = f"{q(sys.executable)} -m dvc"
    with c.cd(str(sb.project)):
        _run(c, f"git remote add origin {q(sb.origin)}")
        _run(c, f"{dvc} init -q")
        _run(c, f"{dvc} config core.analytics false")
        # Relative, so that every clone beside project/ (a teammate's) finds it.
        _run(c, f"{dvc} remote add -d storage ../dvc-remote")
        _run(c, f"{dvc} add -q dataset/train.csv dataset/testset")
        _run(c, "git add -A")
        _run(c, "git commit -q -m 'Sandbox project: data and two pipelines'")
        _run(c, f"{dvc} push -q")
        _run(c, "git push -q -u origin main")
        if trained:
            _run(c, f"{dvc} repro -q training/dvc.yaml")
            _run(c, "git add training/dvc.lock model/.gitignore")
            _run(c, "git commit -q -m '[DVC] Update training'")
            _run(c, f"{dvc} push -q")
            _run(c, "git push -q")
    return sb
