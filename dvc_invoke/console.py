"""What a run tells the person at the terminal (or the log of a detached run)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import IO, Any


@functools.cache
def _console() -> Any:
    # NOTE: rich comes with dvc; it is imported on first use so that
    # `inv --list` never pays for it.
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


_log_consoles: list[Any] = []


@contextlib.contextmanager
def log_to(handle: IO[str]) -> Iterator[None]:
    """Also write what the console shows to ``handle`` (a run's log), without colour."""
    from rich.console import Console

    _log_consoles.append(Console(file=handle, highlight=False, soft_wrap=True, no_color=True))
    try:
        yield
    finally:
        _log_consoles.pop()


def _print(markup: str) -> None:
    _console().print(markup)
    for log in _log_consoles:
        log.print(markup)


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
    if not out.is_terminal:
        # Off a terminal (a log, a pipe) rich assumes 80 columns: give run ids room.
        from rich.console import Console

        out = Console(highlight=False, width=160)
    out.print(t)
