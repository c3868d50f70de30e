"""The process group a run may kill: its own, never its launcher's."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = (
    "import sys; from dvc_invoke.engines.local import own_group; "
    "print(own_group(detached=sys.argv[1] == 'detached'))"
)


def group_of(mode: str, **popen: object) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True, **popen
    )
    return out.stdout.strip()


def test_a_foreground_run_that_leads_its_group_may_kill_it():
    # A shell's job leads a process group of its own.
    assert group_of("foreground", preexec_fn=os.setpgrp) not in ("None", "")


def test_a_foreground_run_started_by_a_script_leaves_the_scripts_group_alone():
    assert group_of("foreground") == "None"


def test_a_detached_run_may_kill_the_session_setsid_made_and_nothing_else():
    assert group_of("detached", start_new_session=True) not in ("None", "")
    # A group of its own inside another's session: that is not what setsid made.
    assert group_of("detached", preexec_fn=os.setpgrp) == "None"
