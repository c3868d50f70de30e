"""The stream that leaves DVC's `git add` / `dvc push` advice out of a repro's output."""

from __future__ import annotations

import io

import pytest

from dvc_invoke.workspace import WithoutHints

# `dvc repro` of a stage printing "1", a blank line and "2", as DVC 3 prints it.
REPRO = (
    "Running stage 'a':\n"
    '> python -c "print(1); print(); print(2)" && echo x > a.txt\n'
    "1\n"
    "\n"
    "2\n"
    "Generating lock file 'dvc.lock'\n"
    "Updating lock file 'dvc.lock'\n"
    "\n"
    "To track the changes with git, run:\n"
    "\n"
    "\tgit add dvc.lock .gitignore\n"
    "\n"
    "To enable auto staging, run:\n"
    "\n"
    "\tdvc config core.autostage true\n"
    "Use `dvc push` to send your updates to remote storage.\n"
)
EXPECTED = REPRO.split("\nTo track")[0].removesuffix("\n") + "\n"


def through(chunks: list[str]) -> str:
    out = io.StringIO()
    stream = WithoutHints(out)
    for chunk in chunks:
        stream.write(chunk)
    stream.finish()
    return out.getvalue()


def test_dvcs_hints_and_their_blank_lines_are_left_out():
    assert through([REPRO]) == EXPECTED
    assert "git add" not in EXPECTED and "1\n\n2\n" in EXPECTED  # the stage's own blank line


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64])
def test_whatever_the_chunks(size):
    assert through([REPRO[i : i + size] for i in range(0, len(REPRO), size)]) == EXPECTED


def test_a_progress_bar_is_written_at_once_and_a_hint_mid_line_is_kept():
    out = io.StringIO()
    stream = WithoutHints(out)
    stream.write("\r 10%|#    |")
    assert out.getvalue() == "\r 10%|#    |"  # not held back for a newline
    stream.write("To track the changes with git, run:\n")  # the end of that line: output
    stream.write("To")  # may become a hint: held
    assert out.getvalue().endswith("run:\n")
    stream.write("tal: 3\n")
    stream.finish()
    assert out.getvalue() == "\r 10%|#    |To track the changes with git, run:\nTotal: 3\n"


def test_what_is_held_is_written_when_the_command_ends():
    assert through(["done\n", "\n", "Use `dvc"]) == "done\n\nUse `dvc"
