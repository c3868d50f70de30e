"""The whole flow, for real, in a throw-away sandbox: ``dvc-invoke demo``.

Builds a project in a temporary folder (a bare git origin, a local DVC
remote, tracked data, a ``training`` and a ``metrics`` pipeline, and the
README's ``tasks.py``), then runs what a team would:

1. ``inv repro --pipeline training`` in the project: train, commit the lock
   file, ``dvc push`` the model, ``git push``;
2. ``inv metrics`` in a teammate's fresh clone (no data at all): pull the
   model and the test set, compute the metrics, publish them.

It ends by showing what landed on the origin and in the DVC remote. No
network is used.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit

from dvc_invoke import console
from dvc_invoke.cli import sandbox


def _inv(c: Context, where: Path, args: str) -> None:
    cmd = f"cd {shlex.quote(str(where))} && {shlex.quote(sys.executable)} -m invoke {args}"
    console.info(f"$ inv {args}    (in {where.name}/)")
    if c.run(cmd, warn=True, in_stream=False).failed:
        raise Exit(f"demo: `inv {args}` failed in {where}", code=1)


def run(c: Context, base: str | os.PathLike[str] | None = None) -> sandbox.Sandbox:
    """Build the sandbox under ``base`` (a new temporary folder) and run the flow there."""
    # Stage commands run `python`, and the flow runs `dvc`: the ones beside this Python.
    bindir = os.path.dirname(sys.executable)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    root = Path(base) if base else Path(tempfile.mkdtemp(prefix="dvc-invoke-demo-"))

    console.step("demo", "sandbox", f"git origin, DVC remote and a project in {root}")
    sb = sandbox.create(c, root / "sandbox")
    console.info("project/tasks.py:")
    for line in sandbox.TASKS_PY.splitlines():
        console.info("    " + line)

    console.step("demo", "1. train the model, in the project")
    _inv(c, sb.project, "repro --pipeline training")

    console.step("demo", "2. compute the metrics on a fresh clone (a GPU box with no data)")
    gpu = sandbox.clone(c, sb, sb.base / "gpu-box")
    _inv(c, gpu, "metrics")

    console.step("demo", "what landed")
    log = c.run(
        f"git --git-dir {shlex.quote(str(sb.origin))} log --format='%h %s' main",
        hide=True,
        in_stream=False,
    ).stdout
    console.info(f"commits on origin ({sb.origin}):")
    for line in log.splitlines():
        console.info("    " + line)
    objects = sorted(p for p in sb.remote.rglob("*") if p.is_file())
    console.info(f"objects in the DVC remote ({sb.remote}): {len(objects)}")
    console.result(True, f"demo done; the sandbox stays in {root}")
    return sb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dvc-invoke demo", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", help="build the sandbox here (default: a new temporary folder)")
    args = parser.parse_args(argv)
    try:
        run(Context(), args.dir)
    except Exit as exc:
        print(exc.message, file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
