"""``python -m dvc_invoke demo``, ``settle ROOT RUN_ID``; on a GPU host ``host probe|checkout``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["demo"]:
        from .demo import main as demo

        return demo(args[1:])
    if args[:1] == ["host"]:
        from .hosts import host_main

        return host_main(args[1:])
    if args[:1] == ["settle"]:
        from .runs import main as settle

        return settle(args)
    print("usage: python -m dvc_invoke demo [--dir DIR] | settle ROOT RUN_ID", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
