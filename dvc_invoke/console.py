"""What a run tells the person at the terminal (or the log of a detached run)."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _console() -> Any:
    # NOTE: rich comes with dvc; it is imported on first use so that
    # `inv --list` never pays for it.
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def step(pipeline: str, name: str, detail: str = "") -> None:
    """Announce a step of a pipeline run."""
    tail = f" [dim]{_escape(detail)}[/dim]" if detail else ""
    _console().print(f"[bold cyan]»[/bold cyan] [bold]{_escape(pipeline)}[/bold] · {name}{tail}")


def info(text: str) -> None:
    _console().print(f"  {_escape(text)}")


def warn(text: str) -> None:
    _console().print(f"[yellow]![/yellow] {_escape(text)}")


def result(ok: bool, text: str) -> None:
    mark = "[bold green]✔[/bold green]" if ok else "[bold red]✘[/bold red]"
    _console().print(f"{mark} {_escape(text)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
