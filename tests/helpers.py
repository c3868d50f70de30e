"""Assertions shared by the end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Run:
    """A finished `inv` process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def assert_one_line_error(run, *fragments):
    """A failed run ends with one line of ours (after whatever git or dvc said)."""
    assert run.returncode != 0, run.output
    assert "Traceback" not in run.output
    ours = [ln for ln in run.stderr.splitlines() if ln.startswith("dvc-invoke")]
    assert len(ours) == 1, run.stderr
    assert run.stderr.rstrip().endswith(ours[0])
    for fragment in fragments:
        assert fragment in ours[0]
    return ours[0]


def echoed(run) -> list[str]:
    """The git and dvc commands the run echoed, in order."""
    return [ln for ln in run.stdout.splitlines() if ln.startswith(("git ", "dvc "))]
