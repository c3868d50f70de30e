"""``dvc-invoke demo`` and ``dvc-invoke init`` (also ``python -m dvc_invoke``); inside
runs, ``settle ROOT RUN_ID``, ``sweep-task ROOT RUN_ID`` (a SLURM array task) and, on a
GPU host, ``host probe|checkout``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from dvc_invoke.posix import MESSAGE, supported

    if not supported():
        print(MESSAGE, file=sys.stderr)
        return 1
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["demo"]:
        from dvc_invoke.cli.demo import main as demo

        return demo(args[1:])
    if args[:1] == ["init"]:
        from dvc_invoke.cli.scaffold import main as init

        return init(args[1:])
    if args[:1] == ["host"]:
        from dvc_invoke.engines.ssh_agent import host_main

        return host_main(args[1:])
    if args[:1] == ["sweep-task"]:
        from dvc_invoke.flow.array import task_main

        return task_main(args)
    if args[:1] == ["settle"]:
        from dvc_invoke.flow.lost import main as settle

        return settle(args)
    if args[:1] in (["-V"], ["--version"]):
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"dvc-invoke {version('dvc-invoke')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            print("dvc-invoke (not installed)")
        return 0
    usage = (
        "usage: dvc-invoke demo [--dir DIR] | init [--dir DIR] | --version\n"
        "  demo  a sandbox project (git origin, DVC remote), and the whole flow run in it\n"
        "  init  a tasks.py with a task per pipeline of this DVC project, and .env.example"
    )
    if args[:1] in (["-h"], ["--help"], ["help"]):
        print(usage)
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
