"""The transport to a GPU host: the system OpenSSH client, through ``c.run``.

Every ssh command line is built here: the client the project configured
(``dvc_invoke.ssh``; ``~/.ssh/config``, ProxyJump and the agent work as the
user set them up), ``BatchMode``, the host's port and alias, and the remote
shell line, built from validated names and quoted values. It runs through
``c.run``, so ``inv --dry`` prints it. What ssh's own failures mean (the host
unreachable, the connection refused, the key refused) is decided here too.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from invoke.exceptions import Exit

from dvc_invoke import console
from dvc_invoke.adapters.shell import quote_all
from dvc_invoke.config.settings import Host, settings
from dvc_invoke.errors import DvcInvokeError

# What ssh says when it never reached the host's shell: its own exit code.
SSH_FAILED = 255
# A host whose Python lacks dvc-invoke (or invoke): the line to look for.
_NO_MODULE = re.compile(r"No module named '?(dvc_invoke|invoke|dvc)\b")


class Unreachable(DvcInvokeError):
    """ssh never reached the host's shell (exit `SSH_FAILED`), for the reason ``kind`` names:
    ``refused`` (nothing listens), ``auth`` (the key was refused), or ``unreachable``."""

    def __init__(self, reason: str, *, kind: str, step: str | None = "host"):
        super().__init__(reason, step=step)
        self.kind = kind


def failure_kind(said: str) -> str:
    """The class of ssh's own failure, from the line it ended with."""
    if "Permission denied" in said or "Too many authentication failures" in said:
        return "auth"
    if "Connection refused" in said:
        return "refused"
    return "unreachable"


def remote_path(path: str) -> str:
    """``path`` as a shell word on the host: ``~/x`` is the remote user's home."""
    if path == "~" or path.startswith("~/"):
        rest = path[2:]
        return '"$HOME"' + (f"/{shlex.quote(rest)}" if rest else "")
    return shlex.quote(path)


def python_line(host: Host, *args: str) -> str:
    """The host's Python with ``args``, as a shell line (``~/`` is the remote user's home)."""
    py = remote_path(host.python) if "/" in host.python else shlex.quote(host.python)
    return " ".join([py, quote_all(list(args))]) if args else py


def in_checkout(host: Host, prefix: str, line: str) -> str:
    """``line`` run in the host's project folder, its Python's folder first on PATH
    (a virtualenv's ``dvc`` and ``python``, for the stages too).

    bash reads ``~/.bashrc`` when it thinks sshd started it (``SSH_CLIENT`` is
    set and it is a top-level shell): every ``bash -c`` of the run would, and
    a ``pyenv init`` or ``conda init`` there puts its own ``python`` first
    again. The run's commands are not ssh's: the variables go."""
    where = remote_path(host.path + ("/" + prefix.rstrip("/") if prefix else ""))
    path = ""
    if "/" in host.python:
        folder = host.python.rsplit("/", 1)[0] or "/"
        path = f'PATH={remote_path(folder)}:"$PATH" '
    return f"cd {where} && unset SSH_CLIENT SSH2_CLIENT && {path}{line}"


def missing_module(host: Host, module: str) -> str:
    """The line for a host whose Python lacks ``module``."""
    return (
        f"host {host.name}: {host.python} has no {module}:"
        f" install dvc-invoke there (pip install from a clone of it, or its wheel), or set"
        f" dvc_invoke.hosts.{host.name}.python to the Python that has it"
    )


class Remote:
    """One host, through the ssh client the project configured."""

    def __init__(self, c: Any, host: Host):
        self.c = c
        self.host = host

    def argv(self, *, tty: bool = False) -> list[str]:
        """The ssh command's words up to the remote line: never a prompt (``BatchMode``)."""
        words = list(settings(self.c).ssh) + ["-o", "BatchMode=yes"]
        words += ["-t"] if tty else []
        words += ["-p", self.host.port] if self.host.port else []
        return words + ["--", self.host.target]

    def command(self, line: str, *, tty: bool = False) -> str:
        """The local shell line that runs the shell line ``line`` on the host."""
        return f"{quote_all(self.argv(tty=tty))} {shlex.quote(line)}"

    def run(
        self,
        line: str,
        *,
        capture: bool = True,
        tty: bool = False,
        echo: bool = True,
        read_only: bool = False,
    ) -> Any:
        """Run ``line`` (a shell line) on the host; ssh's own failure is one line.
        A ``read_only`` line runs under ``inv --dry`` too, as local probes do."""
        options: dict[str, Any] = {"dry": False} if read_only else {}
        res = self.c.run(
            self.command(line, tty=tty),
            warn=True,
            hide="both" if capture else None,  # "both", not True, which turns echo off
            echo=echo and settings(self.c).echo,
            echo_format=console.echo_format(self.c.config.run.echo_format),
            in_stream=False if not tty else None,
            **options,
        )
        if res.exited == SSH_FAILED:
            raise self._unreachable(res.stderr or "")
        missing = _NO_MODULE.search(res.stderr or "")
        if res.failed and missing:
            raise DvcInvokeError(missing_module(self.host, missing.group(1)), step="host")
        return res

    def _unreachable(self, stderr: str) -> Exception:
        said = [ln for ln in stderr.splitlines() if ln.strip()]
        if not said:  # ssh says why it failed; silent, it was interrupted (Ctrl-C)
            return Exit(code=130)
        port = f"-p {self.host.port} " if self.host.port else ""
        return Unreachable(
            f"cannot reach host {self.host.name} ({self.host.ssh}) over ssh:"
            f" {said[-1]}; check that `ssh {port}{self.host.target} true` works from"
            f" here (keys, ~/.ssh/config)",
            kind=failure_kind(said[-1]),
        )
