"""POSIX only, said in one line elsewhere (dvc_invoke.posix), Windows simulated."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dvc_invoke import posix
from dvc_invoke.__main__ import main

ON_WINDOWS = "import os, sys; os.name = 'nt'; "


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_importing_the_package_off_posix_prints_one_line_and_fails():
    done = python(ON_WINDOWS + "import dvc_invoke")
    assert done.returncode == 1
    assert done.stderr == posix.MESSAGE + "\n"
    assert done.stderr.startswith("dvc-invoke runs on POSIX systems (Linux, macOS): ")


def test_the_console_script_off_posix_prints_one_line_and_fails():
    # What pip's `dvc-invoke` script does: import the entry point, then call it.
    done = python(ON_WINDOWS + "from dvc_invoke.__main__ import main; sys.exit(main())")
    assert (done.returncode, done.stderr) == (1, posix.MESSAGE + "\n")
    assert "Traceback" not in done.stderr and "fcntl" not in done.stdout


def test_code_probing_for_the_package_catches_an_import_error():
    done = python(
        ON_WINDOWS
        + "\ntry:\n    import dvc_invoke\nexcept ImportError as e:\n    print(type(e).__name__, e)"
    )
    assert done.returncode == 0
    assert done.stdout == f"NotPosix {posix.MESSAGE}\n"


def test_other_errors_keep_their_traceback_after_the_refusal():
    done = python(
        ON_WINDOWS
        + "\ntry:\n    import dvc_invoke\nexcept ImportError:\n    pass\nraise KeyError('x')"
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KeyError: 'x'" in done.stderr


def test_require_raises_off_posix_and_passes_on_it(monkeypatch):
    posix.require()  # this machine
    hook = sys.excepthook
    monkeypatch.setattr(sys, "excepthook", hook)  # restored after the test
    monkeypatch.setattr(os, "name", "nt")
    assert not posix.supported()
    with pytest.raises(ImportError, match=r"^dvc-invoke runs on POSIX systems \(Linux, macOS\): "):
        posix.require()


def test_main_refuses_off_posix_before_reading_its_arguments(monkeypatch, capsys):
    monkeypatch.setattr(os, "name", "nt")
    assert main(["init", "--dir", "nowhere"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", posix.MESSAGE + "\n")


def test_main_runs_on_posix(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("dvc-invoke ")
