"""This repository's own tasks: the demo, and the developer loop."""

import shlex
import sys

from invoke import Collection, task

from dvc_invoke import demo as _demo

# The tools of the Python running inv: a virtualenv works without being activated.
PY = shlex.quote(sys.executable)


@task(help={"dir": "Build the sandbox here (default: a new temporary folder)."})
def demo(c, dir=None):
    """Build a sandbox DVC project and run the whole flow there, for real."""
    _demo.run(c, dir)


@task(
    help={
        "k": "Only tests matching this expression.",
        "jobs": "Parallel workers.",
        "quick": "Leave out the end-to-end scenarios (real projects): seconds, not minutes.",
    }
)
def test(c, k=None, jobs=2, quick=False):
    """Run the test suite (real git, real DVC, in temporary folders)."""
    select = f" -k {shlex.quote(k)}" if k else ""
    select += " -m 'not e2e'" if quick else ""
    c.run(f"{PY} -m pytest -n {int(jobs)}{select}", pty=False)


@task(
    help={
        "quick": "Small projects and data: checks the script, not the numbers.",
        "cases": "Which cases, e.g. 1,2,3 (default: all eight).",
    }
)
def bench(c, quick=False, cases="1,2,3,4,5,6,7,8,9"):
    """Time dvc-invoke against the seed's script and bare dvc; write bench/out/results.json."""
    flags = " --quick" if quick else ""
    cmd = f"{PY} bench/bench.py{flags} --cases {shlex.quote(cases)} --json bench/out/results.json"
    c.run(cmd, pty=False)


@task
def lint(c):
    """Check style and formatting with ruff, and types with mypy --strict."""
    c.run(f"{PY} -m ruff check .")
    c.run(f"{PY} -m ruff format --check .")
    c.run(f"{PY} -m mypy")


ns = Collection(demo, test, lint, bench)
