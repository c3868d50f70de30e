"""Throw-away DVC projects with a git origin and a DVC remote, for the demo and tests.

Layout under ``base``::

    origin.git/      bare git repository, the team's origin
    dvc-remote/      local folder used as the DVC remote
    project/         a clone with DVC initialised and tracked input data

Two project layouts, the two that real DVC projects use:

- ``seed`` (`create`): a folder per pipeline, ``training/`` (trains
  ``model/model.json``) and ``metrics/`` (evaluates that model on
  ``dataset/testset``), as in the article the project grew from;
- ``canonical`` (`create_canonical`): DVC's own get-started shape, one root
  ``dvc.yaml`` (prepare → featurize → train → evaluate), ``params.yaml``,
  ``evaluate`` writing a cached, git-ignored ``eval/`` folder as dvclive
  does, with ``metrics:`` and ``plots:`` declared at the top level.

The stage scripts append ``<stage>`` to the file named by ``$SANDBOX_TRACE``
(when set), so a caller can tell exactly which stages ran, and in what order;
``$SANDBOX_SLOW=<stage>:<seconds>`` makes one stage take that long,
``$SANDBOX_WAIT=<stage>:<path>`` makes it wait until ``path`` exists,
``$SANDBOX_PRINT=<stage>:<MiB>`` makes it print that much, a line per step
(as training logs and progress bars do), and
``$SANDBOX_FAIL=<stage>`` makes it fail halfway (its outputs half written).
"""

from __future__ import annotations

import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.runners import Result

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
    # SANDBOX_WAIT=train:/tmp/go makes the train stage wait until /tmp/go exists.
    name, _, path = os.environ.get("SANDBOX_WAIT", "").partition(":")
    if name == stage:
        print(f"{stage}: waiting for {path}", flush=True)
        while not os.path.exists(path):
            time.sleep(0.1)
    # SANDBOX_PRINT=train:200 makes the train stage print 200 MiB, a line of 55 bytes a step.
    name, _, mib = os.environ.get("SANDBOX_PRINT", "").partition(":")
    if name == stage:
        import sys

        line = stage + " step {:08d} loss 0.{:012d} lr 0.001000 ok\\n"
        for step in range(int(float(mib) * 1024 * 1024) // len(line.format(0, 0))):
            sys.stdout.write(line.format(step, step))
        sys.stdout.flush()
    if os.environ.get("SANDBOX_FAIL") == stage:
        raise SystemExit(f"{stage}: failed on purpose (SANDBOX_FAIL)")
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


# DVC's get-started layout (iterative/example-get-started), on small CSV data.
CANONICAL_TASKS_PY = """\
from invoke import Collection
from dvc_invoke import data, exp, guards, notify, pipeline_task, publish, repro

# The whole root dvc.yaml; refuses a model whose accuracy got worse.
train = pipeline_task("train", dvcfile="dvc.yaml", gates={"eval/metrics.json:acc": "max"})
# Only its evaluate stage, forced: the metrics without retraining.
metrics = pipeline_task("metrics", dvcfile="dvc.yaml", stages=["evaluate"], force=True)

ns = Collection(train, metrics, guards, data, repro, publish, notify, exp)
"""

CANONICAL_FILES = {
    "data/data.csv": "x,y\n" + "".join(f"{x},{2 * x + (x % 3) * 0.1:.1f}\n" for x in range(1, 41)),
    "params.yaml": "prepare:\n  split: 0.25\ntrain:\n  bias: 0.0\n",
    "src/stagetrace.py": _TRACE,
    "src/prepare.py": textwrap.dedent(
        """\
        import csv
        import os
        import sys

        import yaml

        from stagetrace import trace

        trace("prepare")
        split = yaml.safe_load(open("params.yaml"))["prepare"]["split"]
        rows = list(csv.reader(open(sys.argv[1])))[1:]
        cut = int(len(rows) * (1 - split))
        os.makedirs("data/prepared", exist_ok=True)
        for name, part in (("train", rows[:cut]), ("test", rows[cut:])):
            with open(f"data/prepared/{name}.csv", "w") as f:
                f.write("x,y\\n" + "".join(f"{x},{y}\\n" for x, y in part))
        """
    ),
    "src/featurize.py": textwrap.dedent(
        """\
        import csv
        import os

        from stagetrace import trace

        trace("featurize")
        os.makedirs("data/features", exist_ok=True)
        for name in ("train", "test"):
            rows = list(csv.DictReader(open(f"data/prepared/{name}.csv")))
            with open(f"data/features/{name}.csv", "w") as f:
                f.write("x,x2,y\\n")
                for r in rows:
                    x = float(r["x"])
                    f.write(f"{x},{x * x},{r['y']}\\n")
        """
    ),
    "src/train.py": textwrap.dedent(
        """\
        import csv
        import json

        import yaml

        from stagetrace import trace

        trace("train")
        bias = yaml.safe_load(open("params.yaml"))["train"]["bias"]
        reader = csv.DictReader(open("data/features/train.csv"))
        rows = [(float(r["x"]), float(r["y"])) for r in reader]
        slope = sum(x * y for x, y in rows) / sum(x * x for x, _ in rows)
        with open("model.pkl", "w") as f:
            json.dump({"slope": round(slope + bias, 6)}, f)
        """
    ),
    "src/evaluate.py": textwrap.dedent(
        """\
        import csv
        import json
        import os
        import time

        from stagetrace import trace

        trace("evaluate")
        slope = json.load(open("model.pkl"))["slope"]
        reader = csv.DictReader(open("data/features/test.csv"))
        rows = [(float(r["x"]), float(r["y"])) for r in reader]
        errors = [abs(y - slope * x) for x, y in rows]
        mae = sum(errors) / len(errors)
        os.makedirs("eval/plots", exist_ok=True)
        with open("eval/metrics.json", "w") as f:
            json.dump({"mae": round(mae, 6), "acc": round(1 / (1 + mae), 6)}, f)
        with open("eval/plots/errors.json", "w") as f:
            json.dump([{"x": x, "error": e} for (x, _), e in zip(rows, errors)], f)
        # Like a rendered plot, never the same twice.
        with open("eval/plots/rendered.txt", "w") as f:
            f.write(f"rendered at {time.time()}\\n")
        """
    ),
    "dvc.yaml": textwrap.dedent(
        """\
        stages:
          prepare:
            cmd: python src/prepare.py data/data.csv
            deps:
            - data/data.csv
            - src/prepare.py
            params:
            - prepare.split
            outs:
            - data/prepared
          featurize:
            cmd: python src/featurize.py
            deps:
            - data/prepared
            - src/featurize.py
            outs:
            - data/features
          train:
            cmd: python src/train.py
            deps:
            - data/features
            - src/train.py
            params:
            - train.bias
            outs:
            - model.pkl
          evaluate:
            cmd: python src/evaluate.py
            deps:
            - data/features
            - model.pkl
            - src/evaluate.py
            outs:
            - eval
        metrics:
        - eval/metrics.json
        plots:
        - eval/plots/errors.json:
            x: x
            y: error
        """
    ),
    "tasks.py": CANONICAL_TASKS_PY,
    ".gitignore": "__pycache__/\n.env\n",
}


@dataclass
class Sandbox:
    base: Path
    origin: Path
    remote: Path
    project: Path


def _run(c: Context, cmd: str, **kwargs: Any) -> Result:
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
    """Build the seed's sandbox under ``base`` and publish it to its origin and DVC remote.

    With ``trained``, the training pipeline has also been run and published
    by hand, so the metrics pipeline's model is in the DVC remote.
    """
    sb = _start(c, base, FILES, ["dataset/train.csv", "dataset/testset"])
    if trained:
        _publish_by_hand(c, sb, "training/dvc.yaml", "training/dvc.lock model/.gitignore")
    return sb


def create_canonical(c: Context, base: Path, *, trained: bool = False) -> Sandbox:
    """Build a project of DVC's get-started shape under ``base`` and publish it.

    With ``trained``, its pipeline has been run and published by hand, the
    way a team has it: everything on origin and in the DVC remote, so that a
    fresh clone with nothing changed finds it up to date after ``dvc pull``.
    """
    sb = _start(c, base, CANONICAL_FILES, ["data/data.csv"])
    if trained:
        _publish_by_hand(c, sb, "dvc.yaml", "dvc.lock .gitignore data/.gitignore")
    return sb


def _publish_by_hand(c: Context, sb: Sandbox, dvcfile: str, paths: str) -> None:
    dvc = f"{shlex.quote(sys.executable)} -m dvc"
    with c.cd(str(sb.project)):
        _run(c, f"{dvc} repro -q {dvcfile}")
        _run(c, f"git add {paths}")
        _run(c, "git commit -q -m '[DVC] Update training'")
        _run(c, f"{dvc} push -q")
        _run(c, "git push -q")


def _start(c: Context, base: Path, files: dict[str, str], data: list[str]) -> Sandbox:
    base = Path(base).resolve()
    sb = Sandbox(base, base / "origin.git", base / "dvc-remote", base / "project")

    def q(p: object) -> str:
        return shlex.quote(str(p))

    sb.remote.mkdir(parents=True)
    _run(c, f"git init -q --bare -b main {q(sb.origin)}")
    _run(c, f"git init -q -b main {q(sb.project)}")
    identify(c, sb.project)
    for rel, text in files.items():
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
        _run(c, f"{dvc} add -q {' '.join(map(q, data))}")
        _run(c, "git add -A")
        _run(c, "git commit -q -m 'Sandbox project: data and pipelines'")
        _run(c, f"{dvc} push -q")
        _run(c, "git push -q -u origin main")
    return sb
