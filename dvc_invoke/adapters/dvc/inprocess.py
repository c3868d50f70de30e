"""DVC's commands run by DVC's own CLI entry point, in this process.

Each ``dvc`` subprocess pays half a second of interpreter and import start-up
before it does anything, and a run has already imported DVC to read its
pipeline. `DvcRunner` is an invoke runner like ``Local``: ``c.run``'s echo,
``--dry``, ``hide``, ``warn``, the output streams (the run's log, the filter
of DVC's hints) and its `Result` are invoke's own; only the command is not a
child process but a call of DVC's command line entry point with its words,
as DVC's own test suite calls it.
What DVC prints is written as it comes, through the same streams.

It takes ``dvc ...`` command lines, the words quoted as the flow quotes them:
nothing that needs a shell. Ctrl-C (and the SIGTERM of ``repro.cancel``)
stops DVC as it stops the ``dvc`` command: DVC catches the interrupt, cleans
up and exits 252. A stage's own command still runs as a child process whose
output goes straight to the terminal's file descriptors: ``dvc repro`` of
stages that will run stays a subprocess (`dvcsteps.reproduce`).

The exceptions behind a failure are kept (`DvcResult.exceptions`): DVC logs
them as it fails (a command's error, and each file a push or pull could not
transfer), and their types tell a network that failed for a moment from a
refusal (`failures.classify`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from typing import Any

from invoke.runners import Result

from dvc_invoke.adapters.dvc.session import run_cli
from dvc_invoke.adapters.streams import Streaming, Tail

# Set while DVC runs here: an interrupt is raised into it (`interrupts`).
_running = False


def running() -> bool:
    return _running


def argv(command: str, dvc: str) -> list[str] | None:
    """The arguments of ``command`` when it is ``dvc`` with plain words, quoted as
    `shlex.quote` quotes them (as the flow builds every command), else None:
    anything a shell would expand, redirect or chain runs in a shell."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or words[0] != dvc or " ".join(map(shlex.quote, words)) != command:
        return None
    return words[1:]


class _Output(io.TextIOBase):
    """DVC's stdout or stderr while it runs here: kept for the result (the end
    of it, `output.Tail`, when shown), and written at once to the stream
    ``c.run`` was given (unless hidden; a terminal that went away or cannot
    encode a character is `console.write`'s to handle)."""

    def __init__(self, runner: DvcRunner, kept: list[str], stream: Any, hidden: bool):
        self.runner, self.kept, self.stream, self.hidden = runner, kept, stream, hidden

    def write(self, text: str) -> int:
        self.kept.append(text)
        if not self.hidden:
            self.runner.write_our_output(self.stream, text)
        return len(text)

    def isatty(self) -> bool:
        return False  # as for a dvc whose output invoke reads through a pipe

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True


class DvcResult(Result):
    """invoke's `Result`, with the exceptions DVC logged as it failed."""

    exceptions: tuple[BaseException, ...] = ()


class DvcRunner(Streaming):
    """An invoke runner for ``dvc`` command lines: DVC's entry point in this process."""

    def __init__(self, context: Any, args: list[str], cwd: str | None = None):
        super().__init__(context)
        self.args, self.cwd = args, cwd
        self._exited: int | None = None
        self._out: list[str] = []
        self._err: list[str] = []
        self._caught = _Caught()

    def generate_result(self, **kwargs: Any) -> DvcResult:
        result = DvcResult(**kwargs)
        result.exceptions = tuple(self._caught.exceptions)
        return result

    def start(self, command: str, shell: str, env: dict[str, Any]) -> None:
        global _running
        hide = self.opts["hide"] or ()
        # What is shown is kept as its end; what is hidden, whole, for the caller.
        self._out = self._out if "stdout" in hide else Tail()
        self._err = self._err if "stderr" in hide else Tail()
        out = _Output(self, self._out, self.streams["out"], "stdout" in hide)
        err = _Output(self, self._err, self.streams["err"], "stderr" in hide)
        here = os.getcwd()
        # DVC's usage report forks a daemon: not from this process, which has threads.
        analytics = os.environ.get("DVC_NO_ANALYTICS")
        with _dvc_output(out, err), _catching(self._caught):
            _running = True
            try:
                os.environ["DVC_NO_ANALYTICS"] = "1"
                if self.cwd:
                    os.chdir(self.cwd)
                self._exited = run_cli(self.args)
            except SystemExit as exc:  # argparse, for a command line DVC does not take
                code = exc.code
                self._exited = code if isinstance(code, int) else (0 if code is None else 255)
            except KeyboardInterrupt:  # an interrupt past DVC's own handling of one
                self._exited = 252
            except Exception as exc:  # noqa: BLE001 - a failed command, as a dvc process fails
                self._caught.exceptions.append(exc)
                err.write(f"ERROR: unexpected error - {exc}\n")
                self._exited = 255
            finally:
                _running = False
                os.chdir(here)
                if analytics is None:
                    os.environ.pop("DVC_NO_ANALYTICS", None)
                else:
                    os.environ["DVC_NO_ANALYTICS"] = analytics

    def create_io_threads(self) -> Any:
        # DVC wrote through `_Output` as it ran: nothing left to read.
        return {}, self._out, self._err

    def read_proc_stdout(self, num_bytes: int) -> bytes | None:
        return b""

    def read_proc_stderr(self, num_bytes: int) -> bytes | None:
        return b""

    def _write_proc_stdin(self, data: bytes) -> None:
        pass

    def close_proc_stdin(self) -> None:
        pass

    @property
    def process_is_finished(self) -> bool:
        return True

    def returncode(self) -> int | None:
        return self._exited

    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        pass  # DVC has ended by now: an interrupt while it ran, it caught

    def kill(self) -> None:
        pass


@contextlib.contextmanager
def _dvc_output(out: _Output, err: _Output) -> Iterator[None]:
    """Point ``sys.stdout``/``sys.stderr``, and DVC's log handlers (made on its
    import, holding the streams of then), at ``out`` and ``err``."""
    handlers = []
    for name in ("dvc", "dvc_objects", "dvc_data"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler not in handlers:
                handlers.append(handler)
    saved = [(h, h.stream, getattr(h.formatter, "log_colors", None)) for h in handlers]
    old_out, old_err = sys.stdout, sys.stderr
    # DVC lets colorama put back the streams it wrapped on import (to write JSON
    # unstripped): colorama's record of them is pointed at ``out``/``err`` too.
    colorama = sys.modules.get("colorama.initialise")
    names = ("orig_stdout", "orig_stderr", "wrapped_stdout", "wrapped_stderr")
    kept = {n: getattr(colorama, n, None) for n in names} if colorama else {}
    try:
        for n in kept:
            setattr(colorama, n, out if n.endswith("stdout") else err)
        for handler, _, colors in saved:
            # DVC's warnings and errors go to stderr, the rest to stdout.
            handler.setStream(err if handler.level >= logging.WARNING else out)
            if colors is not None:
                handler.formatter.log_colors = False  # type: ignore[union-attr]
        sys.stdout, sys.stderr = out, err
        yield
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        for n, value in kept.items():
            setattr(colorama, n, value)
        for handler, stream, colors in saved:
            handler.setStream(stream)
            if colors is not None:
                handler.formatter.log_colors = colors  # type: ignore[union-attr]


# Where DVC says which file a push or pull could not transfer, and why: at
# debug level (shown only with -v), before the error that counts them.
_PER_FILE = ("dvc_data.index.push", "dvc_data.index.fetch", "dvc_data.hashfile.transfer")


class _Caught(logging.Handler):
    """The exceptions DVC logs while a command runs (each once), none of them shown."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.exceptions: list[BaseException] = []

    def keep(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and not any(exc is e for e in self.exceptions):
            self.exceptions.append(exc)

    def emit(self, record: logging.LogRecord) -> None:
        self.keep(record)


class _PerFile(logging.Filter):
    """On a logger of `_PER_FILE`: keeps the exception of every record, and lets
    through only what DVC's own level would have (its debug lines stay unshown)."""

    def __init__(self, caught: _Caught, parent: logging.Logger):
        super().__init__()
        self.caught, self.parent = caught, parent

    def filter(self, record: logging.LogRecord) -> bool:
        self.caught.keep(record)
        return record.levelno >= self.parent.getEffectiveLevel()


@contextlib.contextmanager
def _catching(caught: _Caught) -> Iterator[None]:
    """Keep what DVC logs with an exception while it runs, in ``caught``."""
    tops = [logging.getLogger(name) for name in ("dvc", "dvc_objects", "dvc_data")]
    # Each logger of `_PER_FILE`, its level, and the filter that keeps its exceptions.
    per_file = [
        (lg, lg.level, _PerFile(caught, tops[2])) for lg in map(logging.getLogger, _PER_FILE)
    ]
    for lg in tops:
        lg.addHandler(caught)
    for lg, _, kept in per_file:
        lg.setLevel(logging.DEBUG)  # its records made, so that their exceptions are seen
        lg.addFilter(kept)
    try:
        yield
    finally:
        for lg in tops:
            lg.removeHandler(caught)
        for lg, level, kept in per_file:
            lg.removeFilter(kept)
            lg.setLevel(level)
