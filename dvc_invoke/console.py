"""What a run tells the person at the terminal (or the log of a detached run).

Printing never decides a run's outcome. What the terminal's encoding cannot
write is replaced (the marks by ASCII ones: ``OK``, ``X``, ``>>``), and a
console that went away (a closed pipe, ``inv train | head``; a terminal that
hung up) is no longer written to: its file descriptor is pointed at
``/dev/null``, and the run's log, which keeps everything, says so once.

Colour is as users set it (`colour`): ``NO_COLOR`` (any non-empty value)
leaves no escape sequence, invoke's echo of commands included;
``FORCE_COLOR`` colours a pipe (a CI log); otherwise a terminal is coloured.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import sys
from collections.abc import Iterator
from typing import IO, Any

# A console that went away: EPIPE (its reader ended), EIO (its terminal hung up).
_GONE = (errno.EPIPE, errno.EIO, errno.ENXIO, errno.EBADF)


class _Stream:
    """A stream written through `write`: never raising for what it cannot take.

    A console stream is ``sys.stdout`` or ``sys.stderr`` as it is at each
    write (a test may swap it), or as it was when `terminal` was called (what
    DVC prints while it runs in this process goes through its own streams
    there); any other (a run's log) only has what its encoding cannot write
    replaced."""

    def __init__(self, name: str, handle: IO[str] | None = None, *, console: bool = True):
        self.name, self.handle, self.console = name, handle, console

    @property
    def stream(self) -> IO[str]:
        stream: IO[str] = self.handle if self.handle is not None else getattr(sys, self.name)
        # NOTE: DVC's logger wraps the process's streams in colorama's, which
        # off a terminal strips colour codes from every write with a regular
        # expression: a stage's 200 MB took seconds more. What passes through
        # here goes out as the stage wrote it, as from a plain `dvc repro`.
        return getattr(stream, "_StreamWrapper__wrapped", stream)

    def write(self, text: str) -> int:
        _write(self.stream, text, self.console)
        return len(text)

    def flush(self) -> None:
        _flush(self.stream, self.console)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.stream, attr)


stdout: Any = _Stream("stdout")
stderr: Any = _Stream("stderr")


def terminal(name: str) -> Any:
    """``sys.stdout`` or ``sys.stderr`` (``name``) as it is now, as a console stream."""
    return _Stream(name, getattr(sys, name))


# The marks, and what stands for them where the console cannot write them.
_ASCII = {"✔": "OK", "✘": "X", "»": ">>", "·": "-", "…": "...", "→": "->"}


def _encodable(text: str, stream: Any) -> str:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    for mark, plain in _ASCII.items():
        try:
            mark.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            text = text.replace(mark, plain)
    try:
        return text.encode(encoding, "replace").decode(encoding)
    except LookupError:
        return text.encode("ascii", "replace").decode("ascii")


def write(stream: Any, text: str) -> None:
    """Write ``text`` to ``stream``, replacing what its encoding cannot write;
    the process's stdout or stderr, gone away, is left alone from then on."""
    _write(stream, text, _is_console(stream))


def flush(stream: Any) -> None:
    _flush(stream, _is_console(stream))


def _is_console(stream: Any) -> bool:
    return any(stream is s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


def _write(stream: Any, text: str, console: bool) -> None:
    if not text:
        return
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:
            stream.write(_encodable(text, stream))
    except (OSError, ValueError) as exc:
        _gone(stream, exc, console)


def _flush(stream: Any, console: bool) -> None:
    try:
        stream.flush()
    except (OSError, ValueError) as exc:
        _gone(stream, exc, console)


def _gone(stream: Any, exc: BaseException, console: bool) -> None:
    """A console stream that can no longer be written: what follows goes to
    ``/dev/null`` (the run's log has it); any other stream's error is raised."""
    if not console or isinstance(exc, UnicodeError):
        raise exc
    if isinstance(exc, OSError) and exc.errno not in _GONE:
        raise exc
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        fd = None
    if fd is not None and not _is_null(fd):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
        why = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else "closed"
        name = "stderr" if any(stream is s for s in (sys.stderr, sys.__stderr__)) else "stdout"
        _said.append(f"! the console's {name} went away ({why}): the run goes on, written here")
        for log in _log_consoles:
            log.print(_said[-1])
    # What the stream still holds is dropped with what follows.
    with contextlib.suppress(OSError, ValueError):
        stream.flush()


# That the console went away, said again at the start of a run's log (`log_to`).
_said: list[str] = []


def _is_null(fd: int) -> bool:
    try:
        here, null = os.fstat(fd), os.stat(os.devnull)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (null.st_dev, null.st_ino)


def colour(stream: Any = None) -> bool:
    """Whether what goes to ``stream`` (default: stdout) is coloured: never under
    ``NO_COLOR``, always under ``FORCE_COLOR`` (any non-empty value; NO_COLOR
    wins), else when it is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return bool((stream if stream is not None else stdout).isatty())
    except (OSError, ValueError, AttributeError):
        return False


# CSI sequences: colours, bold, dim and the like.
_ESCAPES = re.compile(r"\x1b\[[0-9;:?]*[ -/]*[@-~]")


def plain(text: str) -> str:
    """``text`` without its escape sequences."""
    return _ESCAPES.sub("", text)


def echo_format(given: str) -> str:
    """invoke's ``run.echo_format`` (bold by default) as `colour` has it for stdout."""
    return given if colour() else plain(given)


def _colours() -> dict[str, Any]:
    """rich's options for `colour`: under NO_COLOR no style at all (rich's own
    NO_COLOR keeps bold and dim), under FORCE_COLOR a terminal's colours."""
    if os.environ.get("NO_COLOR"):
        return {"color_system": None}
    if os.environ.get("FORCE_COLOR"):
        # NOTE: rich finds no colours where TERM is unset or dumb, as in CI.
        return {"force_terminal": True, "color_system": "standard"}
    return {}


@functools.cache
def _console() -> Any:
    # NOTE: rich comes with dvc; it is imported on first use so that
    # `inv --list` never pays for it.
    from rich.console import Console

    return Console(file=stdout, highlight=False, soft_wrap=True, **_colours())


_log_consoles: list[Any] = []


@contextlib.contextmanager
def log_to(handle: IO[str]) -> Iterator[None]:
    """Also write what the console shows to ``handle`` (a run's log), without colour."""
    from rich.console import Console

    log: Any = _Stream("log", handle, console=False)
    _log_consoles.append(Console(file=log, highlight=False, soft_wrap=True, no_color=True))
    for said in _said:
        _log_consoles[-1].print(said)
    try:
        yield
    finally:
        _log_consoles.pop()


def _print(markup: str) -> None:
    for log in _log_consoles:
        log.print(markup)
    _console().print(markup)


def step(pipeline: str, name: str, detail: str = "") -> None:
    """Announce a step of a pipeline run."""
    tail = f" [dim]{_escape(detail)}[/dim]" if detail else ""
    _print(f"[bold cyan]»[/bold cyan] [bold]{_escape(pipeline)}[/bold] · {name}{tail}")


def info(text: str) -> None:
    _print(f"  {_escape(text)}")


def warn(text: str) -> None:
    _print(f"[yellow]![/yellow] {_escape(text)}")


def result(ok: bool, text: str) -> None:
    mark = "[bold green]✔[/bold green]" if ok else "[bold red]✘[/bold red]"
    _print(f"{mark} {_escape(text)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def table(headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    t = Table(box=None, header_style="bold", pad_edge=False)
    for i, header in enumerate(headers):
        last = i == len(headers) - 1
        t.add_column(header.upper(), no_wrap=not last, overflow="fold")
    for row in rows:
        t.add_row(*(_escape(cell) for cell in row))
    out = _console()
    if not _on_terminal():
        # Off a terminal (a log, a pipe) rich assumes 80 columns: give run ids room.
        from rich.console import Console

        out = Console(file=stdout, highlight=False, width=160, **_colours())
    out.print(t)


def _on_terminal() -> bool:
    try:
        return bool(stdout.isatty())
    except (OSError, ValueError, AttributeError):
        return False
