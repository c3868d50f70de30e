"""The shell of one DVC project: every command of a run, from the project's root.

Every command goes through ``c.run``: probes hidden and allowed to fail,
actions echoed and turned into a `DvcInvokeError` naming their step when they
fail. Under ``inv --dry`` actions print and run nothing, while probes (which
only read) still run, so a dry run knows the workspace it describes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from dvc_invoke import console
from dvc_invoke.adapters.dvc import failures
from dvc_invoke.adapters.dvc.hints import WithoutHints
from dvc_invoke.adapters.git import Git
from dvc_invoke.adapters.reasons import error_line, passing
from dvc_invoke.adapters.streams import Tee
from dvc_invoke.config import project
from dvc_invoke.config.project import find_root
from dvc_invoke.config.settings import dvc_command, is_dry, settings
from dvc_invoke.errors import Cancelled, DvcInvokeError


def quote_all(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def _dvc_is_ours(word: str) -> bool:
    """Whether the ``dvc`` a shell would run is the one this Python imports (the
    script of this environment): else a run would mix two DVCs on one cache."""
    found = shutil.which(shlex.split(word)[0])
    if found is None:
        return False
    here = os.path.realpath(os.path.dirname(sys.executable))
    return os.path.realpath(os.path.dirname(found)) == here


@functools.cache
def _dvc_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("dvc") is not None


class Stops(Protocol):
    """What stops a run between its commands: the signal it received, if any."""

    def stopped(self, step: str, resume: str | None) -> Cancelled | None: ...


# Projects whose .env was checked for being git-ignored, in this process.
_ENV_CHECKED: set[Path] = set()


class Workspace:
    """Runs git and dvc commands for one DVC project, from its root."""

    def __init__(self, c: Any, root: Path | None = None):
        self.c = c
        self.root = Path(root) if root else find_root()
        self.dry = is_dry(c)
        self._stops: Stops | None = None  # while a run handles signals (`running`)
        self._log: IO[str] | None = None  # while a foreground run keeps a log
        project.load(self.root)  # before the settings: the environment may set them
        self.settings = settings(c)  # validated once, here
        self.git = Git(self)  # every git command, through this shell
        self._warn_if_env_is_not_ignored()

    def _warn_if_env_is_not_ignored(self) -> None:
        """A ``.env`` that git does not ignore is one `git add -A` from the
        team's history, secrets and all: said once per project and process."""
        if self.root in _ENV_CHECKED or not (self.root / ".env").is_file():
            return
        _ENV_CHECKED.add(self.root)
        if self.git.ignores(".env") is False:  # (None: not a git repository, said elsewhere)
            console.warn(".env is not ignored by git: add it to .gitignore, lest it is committed")

    # -- running ---------------------------------------------------------
    def _cmd(self, cmd: str) -> str:
        if Path(os.getcwd()).resolve() == self.root.resolve():
            return cmd
        return f"cd {shlex.quote(str(self.root))} && {cmd}"

    def probe(self, cmd: str, *, in_process: bool = True, timeout: float | None = None) -> Any:
        """Run a read-only command quietly; never raises on failure.

        Probes run under ``inv --dry`` too: they change nothing, and a dry run
        that knows the branch and its upstream shows the commands the real run
        would run, exactly.
        """
        limit = {"timeout": timeout} if timeout else {}
        return self._run(
            cmd, in_process=in_process, hide=True, warn=True, in_stream=False, dry=False, **limit
        )

    def _run(self, cmd: str, *, in_process: bool = True, **kwargs: Any) -> Any:
        """``c.run`` of ``cmd``; a ``dvc`` command line by DVC's CLI entry point in
        this process (`dvc_invoke.adapters.dvc.inprocess.DvcRunner`: the same echo,
        ``--dry`` and result)."""
        args = self._dvc_args(cmd) if in_process else None
        if args is None:
            from invoke.context import MockContext

            if isinstance(self.c, MockContext):
                return self.c.run(self._cmd(cmd), **kwargs)
            # invoke's configured runner, passing on what it prints as it comes
            # and keeping its end (`dvc_invoke.adapters.streams.Streaming`); invoke's own injection
            # point for a runner (`Context._run`, as Fabric uses it).
            from dvc_invoke.adapters.streams import streaming

            runner = streaming(self.c.config.runners.local)(self.c)
            return self.c._run(runner, self._cmd(cmd), **kwargs)
        from dvc_invoke.adapters.dvc.inprocess import DvcRunner

        return DvcRunner(self.c, args, cwd=str(self.root)).run(self._cmd(cmd), **kwargs)

    def _dvc_args(self, cmd: str) -> list[str] | None:
        """The arguments of a ``dvc`` command line that can run in this process:
        when no ``dvc_invoke.dvc`` executable is configured, the ``dvc`` a shell
        would run is the DVC this Python imports, and ``c`` runs commands for
        real (not a ``MockContext``) with nothing a process alone could have."""
        if self.settings.dvc or not cmd.startswith(self.dvc + " "):
            return None
        from invoke.context import MockContext

        c = self.c
        if isinstance(c, MockContext) or not _dvc_importable() or not _dvc_is_ours(self.dvc):
            return None
        # What a process would get and this one cannot give: its own environment,
        # a prefix or folder of invoke's, a timeout; and one command at a time.
        if c.config.run.env or c.config.run.replace_env or c.config.timeouts.command:
            return None
        if c.command_prefixes or c.command_cwds:
            return None
        if threading.current_thread() is not threading.main_thread():
            return None
        from dvc_invoke.adapters.dvc.inprocess import argv

        return argv(cmd, shlex.split(self.dvc)[0])

    def act(
        self,
        cmd: str,
        *,
        step: str,
        resume: str | None = None,
        network: bool = False,
        hints: bool = True,
        capture: bool = False,
        in_process: bool = True,
        touches: bool = True,
    ) -> Any:
        """Run a command that does work; its failure stops the run at ``step``.

        A ``network`` command (one that reaches a git or DVC remote) is tried
        again, a bounded number of times with a growing delay, when it failed
        the way networks fail for a moment; never when it was refused.
        Without ``hints``, DVC's advice to `git add` and `dvc push` is left
        out of what the command prints (the flow does both). With
        ``capture``, what it prints on stdout is kept for the caller, not shown.
        Without ``touches`` (a ``git fetch``), what DVC read of the project
        still holds after it.
        """
        conf = self.settings
        attempts = 1 + (conf.retries if network else 0)
        delay = conf.retry_delay
        for attempt in range(1, attempts + 1):
            try:
                return self._act_once(
                    cmd,
                    step=step,
                    resume=resume,
                    hints=hints,
                    capture=capture,
                    in_process=in_process,
                    touches=touches,
                )
            except DvcInvokeError as exc:
                if attempt == attempts or isinstance(exc, Cancelled) or not passing(exc):
                    raise
                console.warn(
                    f"{step}: {exc.reason}; trying again in {delay:g}s ({attempt}/{attempts - 1})"
                )
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _act_once(
        self,
        cmd: str,
        *,
        step: str,
        resume: str | None,
        hints: bool,
        capture: bool = False,
        in_process: bool = True,
        touches: bool = True,
    ) -> Any:
        self._stop_if_interrupted(step, resume)
        if touches:  # what DVC read of the project may not hold after this
            from dvc_invoke.adapters.dvc.session import touched

            touched()
        echo = self.settings.echo or bool(self.c.config.run.echo)
        out: Any = console.terminal("stdout")
        err: Any = console.terminal("stderr")
        if self._log is not None:
            # A foreground run: what the terminal shows goes to the run's log too.
            if echo:
                self._log.write(cmd + "\n")
            out, err = Tee(out, self._log), Tee(err, self._log)
        if capture:
            out = None  # kept in the result for the caller (and in its log, if it fails)
        elif not hints:
            out = WithoutHints(out)
        try:
            background = threading.current_thread() is not threading.main_thread()
            result = self._run(
                cmd,
                in_process=in_process,
                echo=echo,
                warn=True,
                out_stream=out,
                err_stream=err,
                hide="out" if capture else None,
                # A check begun in the background reads no keyboard.
                **({"in_stream": False} if background else {}),
            )
        finally:
            if isinstance(out, WithoutHints):
                out.finish()
        self._stop_if_interrupted(step, resume)
        if result.failed:
            if result.exited == 127:
                reason = f"{shlex.split(cmd)[0]}: command not found"
            else:
                reason = error_line(result.stderr) or f"`{cmd}` exited with {result.exited}"
            log = "\n".join(part for part in (result.stdout, result.stderr) if part)
            failed = DvcInvokeError(reason, step=step, resume=resume, log=log[-20000:])
            failed.transient = failures.classify(getattr(result, "exceptions", ()))
            raise failed
        return result

    def _stop_if_interrupted(self, step: str, resume: str | None) -> None:
        stopped = self._stops.stopped(step, resume) if self._stops is not None else None
        if stopped is not None:
            raise stopped

    @contextlib.contextmanager
    def running(self, *, stops: Stops, log: IO[str] | None = None) -> Iterator[None]:
        """While a run executes here: a signal it received stops it between
        commands (``stops`` says how), and what the terminal shows goes to its
        ``log`` too."""
        self._stops, self._log = stops, log
        try:
            yield
        finally:
            self._stops, self._log = None, None

    @property
    def dvc(self) -> str:
        return dvc_command(self.c)
