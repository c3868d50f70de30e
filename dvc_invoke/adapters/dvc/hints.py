"""DVC's advice to a user who commits and pushes by hand, left out of what ``dvc repro``
prints when the flow does both itself."""

from __future__ import annotations

import re
from typing import IO

# What `dvc repro` advises a user who commits and pushes by hand, when the
# flow does both itself: `git add` the lock files, enable autostage, `dvc push`.
DVC_HINTS = (
    "To track the changes with git, run:",
    "\tgit add ",
    "To enable auto staging, run:",
    "\tdvc config core.autostage true",
    "Use `dvc push` to send your updates to remote storage.",
)


# What starts DVC's hints, and the lines that follow those (only after them).
_LEADS = (DVC_HINTS[0], DVC_HINTS[2], DVC_HINTS[4])
# A whole line that is one of DVC's hints, or blank (held: dropped if a hint follows).
_HINT_OR_BLANK = re.compile(
    r"^(?:(?P<lead>(?:" + "|".join(map(re.escape, _LEADS)) + r")[^\n]*)"
    r"|(?P<follow>(?:" + "|".join(map(re.escape, (DVC_HINTS[1], DVC_HINTS[3]))) + r")[^\n]*)"
    r"|[^\S\n]*)\n",
    re.MULTILINE,
)


class WithoutHints:
    """A stream passing ``dvc repro``'s output through, less DVC's hints and
    the blank lines around them. Written in chunks, not lines: only the start
    of a line that may still become a hint, and blank lines, are held back
    (a stage's progress bar, ending in ``\r``, is never held). Lines with no
    hint among them (a stage's output: hundreds of MB of a training's log)
    pass at once, in one write. `finish` writes what is held once the
    command ended."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.partial = ""  # the start of a line that may be a hint
        self.blanks = ""  # blank lines held: dropped if a hint comes next
        self.mid_line = False  # a line is being written through: not a hint
        self.after_hint = False

    def write(self, data: str) -> int:
        text, self.partial = self.partial + data, ""
        out: list[str] = []
        if self.mid_line:
            end = text.find("\n")
            if end < 0:
                self.stream.write(text)
                return len(data)
            out.append(text[: end + 1])
            text, self.mid_line = text[end + 1 :], False
        if not self.after_hint and not any(lead in text for lead in _LEADS):
            # No hint starts here: every line passes, but for the blank lines
            # at the end (a hint may follow) and a last line not yet whole.
            last = text.rfind("\n") + 1
            cut = len(text[:last].rstrip())
            cut = text.find("\n", cut) + 1 if cut else 0
            if cut:
                out.append(self._held() + text[:cut])
                text = text[cut:]
        self._filter(text, out)
        if out:
            self.stream.write("".join(out))
        return len(data)

    def _filter(self, text: str, out: list[str]) -> None:
        last = text.rfind("\n") + 1
        whole, rest = text[:last], text[last:]
        at = 0
        for match in _HINT_OR_BLANK.finditer(whole):
            hint = match.group("lead") is not None
            hint = hint or (match.group("follow") is not None and self.after_hint)
            if not hint and match.group().strip():  # a line like a hint, in a stage's output
                continue
            if match.start() > at:  # ordinary lines, written through
                out.append(self._held() + whole[at : match.start()])
                self.after_hint = False
            if hint:
                self.blanks, self.after_hint = "", True
            elif not self.after_hint:
                self.blanks += match.group()
            at = match.end()
        if at < len(whole):
            out.append(self._held() + whole[at:])
            self.after_hint = False
        if rest:
            if rest.startswith(DVC_HINTS) or any(h.startswith(rest) for h in DVC_HINTS):
                self.partial = rest
            else:
                out.append(self._held() + rest)
                self.mid_line, self.after_hint = True, False

    def _held(self) -> str:
        blanks, self.blanks = self.blanks, ""
        return blanks

    def flush(self) -> None:
        self.stream.flush()

    def finish(self) -> None:
        rest = self._held() + self.partial
        self.partial = ""
        if rest:
            self.stream.write(rest)
        self.stream.flush()
