"""What a command prints: passed on as it comes, only its end kept.

invoke's runners keep everything a command printed, for its `Result`, and
give all of it, joined anew, to the stream watchers at each read (1,000
bytes): a stage that prints 300 MB (tqdm bars, a log line per step) costs
time that grows with the square of it, and memory with it. A run only needs
the end of what a command printed (why it failed, and the end of the log for
Slack): the run's log has the rest. `Streaming` is invoke's own runner, with
a capture buffer that keeps the last `TAIL` characters of a stream it shows
(a hidden one, a caller's to read, is kept whole), no watcher matching when
there are no watchers, bigger reads, and characters whole across reads.
"""

from __future__ import annotations

import codecs
import errno
import functools
import termios
from collections.abc import Callable, Generator
from typing import IO

from invoke.runners import Local, Runner

from dvc_invoke import console

# What is kept of a shown stream for the Result: its last 64 KiB of characters.
TAIL = 64 * 1024


class Tail(list[str]):
    """A capture buffer that keeps the last ``limit`` characters written to it
    (at most twice as many between trims), in order: ``"".join`` of it is the
    end of the stream. ``dropped`` counts the characters left out before it."""

    def __init__(self, limit: int = TAIL):
        super().__init__()
        self.limit, self.size, self.dropped = limit, 0, 0

    def append(self, text: str) -> None:
        super().append(text)
        self.size += len(text)
        if self.size > 2 * self.limit:
            joined = "".join(self)
            kept = joined[-self.limit :]
            self.dropped += len(joined) - len(kept)
            self[:] = [kept]
            self.size = len(kept)

    def text(self) -> str:
        return "".join(self)[-self.limit :]


class Streaming(Runner):
    """Runner behaviour for commands whose output is shown as it comes: mixed in
    before a runner class (`streaming` makes the class)."""

    # NOTE: invoke reads 1,000 bytes at a time; a read returns what the pipe holds.
    read_chunk_size = 64 * 1024

    def handle_stdout(self, buffer_: list[str], hide: bool, output: IO[str]) -> None:
        self._kept(super().handle_stdout, buffer_, hide, output)

    def handle_stderr(self, buffer_: list[str], hide: bool, output: IO[str]) -> None:
        self._kept(super().handle_stderr, buffer_, hide, output)

    def _kept(
        self, handle: Callable[..., None], buffer_: list[str], hide: bool, out: IO[str]
    ) -> None:
        """Read a stream into `Tail`, then leave its end in invoke's capture
        buffer (read once the stream ended): a hidden stream, and any stream
        a watcher scans, are kept whole."""
        if hide or self.watchers:
            handle(buffer_, hide, out)
            return
        tail = Tail()
        try:
            handle(tail, hide, out)
        finally:
            buffer_[:] = [tail.text()]

    def respond(self, buffer_: list[str]) -> None:
        if self.watchers:  # invoke joins the whole buffer on each read, for them
            super().respond(buffer_)

    def read_proc_output(self, reader: Callable[[int], bytes | None]) -> Generator[str, None, None]:
        # One decoder per stream: a character split between two reads stays whole.
        decoder = codecs.getincrementaldecoder(self.encoding)("replace")
        while True:
            data = reader(self.read_chunk_size)
            if not data:
                break
            text = decoder.decode(data)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    def write_our_output(self, stream: IO[str], string: str) -> None:
        console.write(stream, string)
        console.flush(stream)

    def echo(self, command: str) -> None:
        # As invoke prints it, coloured as the console is (`console.colour`: not
        # as colorama, which DVC's logger wraps stdout in, would have it), without
        # failing on a console gone away.
        line = console.echo_format(self.opts["echo_format"]).format(command=command)
        console.stdout.write(line + "\n")
        console.stdout.flush()

    def handle_stdin(self, input_: IO[str], output: IO[str], echo: bool = False) -> None:
        # A terminal that went away (its hangup) is the end of its input, not an error.
        try:
            super().handle_stdin(input_, output, echo)
        except (OSError, termios.error) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EIO, errno.EBADF, errno.ENXIO):
                raise


@functools.cache
def streaming(base: type[Runner] = Local) -> type[Runner]:
    """``base`` (the runner class invoke is configured with) with `Streaming`'s output handling."""
    if issubclass(base, Streaming):
        return base
    return type(f"Streaming{base.__name__}", (Streaming, base), {})


class Tee:
    """A stream that writes to the terminal and to a run's log: a terminal that
    went away, or whose encoding cannot take a character, leaves the log whole
    (`console.write`)."""

    def __init__(self, *streams: IO[str]):
        self.streams = streams

    def write(self, data: str) -> int:
        for stream in self.streams:
            console.write(stream, data)
        return len(data)

    def flush(self) -> None:
        for stream in self.streams:
            console.flush(stream)
