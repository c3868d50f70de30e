"""Short flags chosen, not left to chance.

invoke gives each option the first free letter of its name as a short flag:
``--host`` took ``-h`` (so ``inv train -h`` asked for a host instead of help),
``--slurm`` took ``-l`` and ``--skip`` ``-s``, depending on which options a
task happened to have. Every dvc-invoke task is a `Task` of this module: the
same few options have the same short flags everywhere, the others have none,
and ``-h`` is invoke's help on every task.
"""

from __future__ import annotations

from typing import Any

from invoke.tasks import Task as InvokeTask

SHORT = {
    "pipeline": "p",
    "force": "f",
    "upstream": "u",
    "detach": "d",
    "run": "r",
    "follow": "f",
    "target": "t",
    "set_": "S",  # --set, DVC's own -S (dvc exp run -S)
}


class Task(InvokeTask):  # type: ignore[type-arg]
    """An invoke task whose short flags are `SHORT`'s, never invoke's guesses."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        short = SHORT.get(name)
        if short and short not in taken_names and name not in self.positional:
            opts["names"].append(short)
        return opts
