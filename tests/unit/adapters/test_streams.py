"""A stage that prints a lot: its output reaches the console and the run's
log whole, as it comes; the flow keeps only its end (`output`)."""

from __future__ import annotations

import os
import sys

from invoke import Context

from dvc_invoke.adapters.streams import TAIL, Tail, streaming


def test_the_result_of_a_command_shown_keeps_its_last_64_kib_and_a_hidden_one_all(tmp_path):
    c = Context()
    script = tmp_path / "loud.py"
    script.write_text("import sys\nfor i in range(100000):\n    print(f'line {i:06d} ✔')\n")
    runner = streaming(c.config.runners.local)
    sink = open(os.devnull, "w", encoding="utf-8")

    shown = c._run(runner(c), f"{sys.executable} {script}", out_stream=sink, in_stream=False)
    hidden = c._run(runner(c), f"{sys.executable} {script}", hide=True, in_stream=False)

    assert len(shown.stdout) == TAIL
    assert shown.stdout.endswith("line 099999 ✔\n")
    assert "\ufffd" not in shown.stdout  # no character split between two reads
    assert hidden.stdout.count("\n") == 100000 and hidden.stdout.startswith("line 000000")


def test_the_tail_buffer_keeps_the_end_in_order():
    tail = Tail(limit=10)
    for i in range(100):
        tail.append(f"{i:03d}")

    assert tail.text() == "".join(f"{i:03d}" for i in range(100))[-10:]
    assert len("".join(tail)) <= 20 and tail.dropped + len("".join(tail)) == 300
