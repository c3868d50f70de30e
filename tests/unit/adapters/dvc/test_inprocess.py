"""DVC commands run by DVC's own CLI entry point in this process (`inprocess`):
invoke's echo, --dry, hide and Result as for a subprocess, DVC's output where
c.run sends it, the streams put back after, and Ctrl-C stopping DVC."""

from __future__ import annotations

import errno
import io
import logging
import os
import sys

import pytest
from invoke import Context

from dvc_invoke import console
from dvc_invoke.adapters.dvc import inprocess


def test_what_dvc_logs_of_each_file_it_could_not_transfer_is_kept_and_its_debug_unshown():
    import dvc  # noqa: F401 - DVC's loggers and their handlers, as its import makes them

    caught = inprocess._Caught()
    per_file = logging.getLogger("dvc_data.index.push")
    level = per_file.level
    assert logging.getLogger("dvc_data").getEffectiveLevel() > logging.DEBUG
    reset, refused = ConnectionResetError(errno.ECONNRESET, "reset"), PermissionError(13, "no")
    shown_out: list[str] = []
    shown_err: list[str] = []
    out = inprocess._Output(None, shown_out, None, hidden=True)  # type: ignore[arg-type]
    err = inprocess._Output(None, shown_err, None, hidden=True)  # type: ignore[arg-type]

    with inprocess._dvc_output(out, err), inprocess._catching(caught):
        # as DVC logs a file a push could not create on the remote, then the command's error
        per_file.debug("failed to create '%s' from '%s'", "a", "b", exc_info=reset)
        logging.getLogger("dvc.commands.data_sync").error("failed to push", exc_info=refused)

    assert caught.exceptions == [reset, refused]
    assert "failed to push" in "".join(shown_err)  # DVC's handlers at work
    assert "failed to create" not in "".join(shown_out + shown_err)  # its debug line: unshown
    assert per_file.level == level and not per_file.filters
    assert caught not in logging.getLogger("dvc").handlers


@pytest.mark.parametrize(
    "cmd",
    [
        "dvc status; touch x",
        "dvc status | cat",
        "dvc status && rm -rf x",
        "dvc 'unclosed",
        "dvc pull $HOME/data",
        "dvc pull data/*.csv",
        "dvc status 2>&1",
        "dvc pull `id`",
    ],
)
def test_only_plain_dvc_command_lines_run_here(cmd):
    assert inprocess.argv(cmd, "dvc") is None
    assert inprocess.argv("dvc pull 'a b' c", "dvc") == ["pull", "a b", "c"]
    assert inprocess.argv("dvc pull 'data/$x;*'", "dvc") == ["pull", "data/$x;*"]  # quoted


def test_a_closed_terminal_loses_dvcs_output_not_the_result(monkeypatch):
    # stdout is a pipe whose reader is gone (`inv ... | head -1`, `less` quit).
    read, write = os.pipe()
    os.close(read)
    closed = os.fdopen(write, "w")
    monkeypatch.setattr(sys, "stdout", closed)
    log = io.StringIO()

    kept: list[str] = []
    with console.log_to(log):
        runner = inprocess.DvcRunner(Context(), ["status"])
        out = inprocess._Output(runner, kept, console.terminal("stdout"), hidden=False)
        out.write("12 files fetched\n")
        out.write("and 9 files added\n")

    assert kept == ["12 files fetched\n", "and 9 files added\n"]
    # The pipe's descriptor now writes nowhere; the log says the console went away.
    closed.write("more\n")
    closed.flush()
    assert log.getvalue() == (
        "! the console's stdout went away (Broken pipe): the run goes on, written here\n"
    )
