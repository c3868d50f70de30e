"""What a run prints never decides how it ends: a terminal's encoding, a closed
pipe (`inv ... | head -1`), a terminal that hung up. Real runs, real pipes, a
real pseudo-terminal."""

from __future__ import annotations

import io

from dvc_invoke import console


def test_a_console_that_cannot_encode_a_character_gets_a_stand_in():
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")

    console.write(out, "branch main at 1a2b3c4 → 5d6e7f8 ✔\n")
    out.flush()

    assert out.buffer.getvalue() == b"branch main at 1a2b3c4 -> 5d6e7f8 OK\n"
