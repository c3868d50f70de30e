"""The stream that leaves DVC's `git add` / `dvc push` advice out of a repro's output."""

from __future__ import annotations

import io

import pytest

from dvc_invoke.adapters.dvc.hints import WithoutHints
from dvc_invoke.adapters.reasons import error_line

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


# What `dvc pull` said (DVC 3.67) when an object of a target was in neither the
# cache nor the remote (the e2e test below makes it for real).
CHECKOUT_FAILED = (
    "WARNING: Some of the cache files do not exist neither locally nor on remote."
    " Missing cache files:\n"
    "md5: ed147af02242eef4d019432956ac3ebb\n"
    "ERROR: failed to pull data from the cloud - Checkout failed for following targets:\n"
    "model/model.json\n"
    "Is your cache up to date?\n"
    "<\x1b[36mhttps://error.dvc.org/missing-files\x1b[39m>\n"
)


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


def test_an_error_listing_targets_on_the_next_lines_keeps_them_and_dvcs_question():
    assert error_line(CHECKOUT_FAILED) == (
        "failed to pull data from the cloud - Checkout failed for following targets:"
        " model/model.json (Is your cache up to date?)"
    )


def test_many_targets_are_shortened_after_the_first_three():
    targets = "\n".join(f"data/part-{i}.csv" for i in range(40))
    text = CHECKOUT_FAILED.replace("model/model.json", targets)

    assert error_line(text) == (
        "failed to pull data from the cloud - Checkout failed for following targets:"
        " data/part-0.csv, data/part-1.csv, data/part-2.csv, +37 more"
        " (Is your cache up to date?)"
    )


def test_an_error_with_a_colon_and_nothing_listed_is_kept_as_said():
    assert error_line("ERROR: unexpected error - no such thing:\n") == (
        "unexpected error - no such thing:"
    )
    assert error_line("fatal: the remote end hung up:\nerror: failed to push\n") == (
        "failed to push"
    )


def test_gits_list_of_files_is_kept_without_its_advice():
    said = (
        "error: Your local changes to the following files would be overwritten by checkout:\n"
        "\tparams.yaml\n"
        "Please commit your changes or stash them before you switch branches.\n"
        "Aborting\n"
    )
    assert error_line(said) == (
        "Your local changes to the following files would be overwritten by checkout: params.yaml"
    )


def test_a_probe_that_does_not_answer_in_its_limit_is_stopped(tmp_path):
    import subprocess
    import time

    from invoke import Context
    from invoke.exceptions import CommandTimedOut

    from dvc_invoke.adapters.shell import Workspace

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".dvc").mkdir()
    ws = Workspace(Context(), tmp_path)
    began = time.monotonic()
    with pytest.raises(CommandTimedOut):
        ws.probe("sleep 30", in_process=False, timeout=0.5)
    assert time.monotonic() - began < 10
    assert ws.probe("echo answered", in_process=False, timeout=5).stdout.strip() == "answered"
