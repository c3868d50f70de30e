"""Why a command failed, read from what it printed: the line that says why, and
whether it failed for a moment (worth trying again) or for good."""

from __future__ import annotations

import re

from dvc_invoke.errors import DvcInvokeError

_TRANSIENT = re.compile(
    r"timed? ?out|connection (reset|refused|closed|aborted)|remote end hung up"
    r"|temporar(il)?y (unavailable|failure)|could not resolve host|network is unreachable"
    r"|early eof|broken pipe|too many requests|\b(429|500|502|503|504)\b",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"permission denied|authentication failed|access denied|forbidden|not found"
    r"|\[rejected\]|non-fast-forward|no space left|read-only file system|not a directory",
    re.IGNORECASE,
)


def transient(output: str | None) -> bool:
    """Whether a remote command's output says it failed for a moment, not for good:
    for git, a process, whose text is all there is (DVC's exceptions have types:
    `failures`)."""
    text = output or ""
    return bool(_TRANSIENT.search(text)) and not _PERMANENT.search(text)


def passing(exc: DvcInvokeError) -> bool:
    """Whether a failure may pass if tried again: as the types of its exceptions
    say (DVC in this process), else as its text says."""
    return exc.transient if exc.transient is not None else transient(exc.log)


_PREFIXES = ("ERROR: ", "fatal: ", "error: ")
# Targets named on the lines after an error ending in a colon: this many, then "+N more".
LISTED = 3


def error_line(stderr: str) -> str | None:
    """The line in which git or dvc said why it failed, without its prefix.

    dvc ends with a summary ("failed to push data to the cloud - 1 files
    failed to upload") after the line that has the cause; the cause is kept.
    An error ending in a colon ("Checkout failed for following targets:")
    names its targets on the lines after it, then may ask a question ("Is
    your cache up to date?"): the line keeps the first targets and the
    question.
    """
    errors = []
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        for prefix in _PREFIXES:
            if line.startswith(prefix):
                errors.append(_with_listed(line[len(prefix) :].strip(), lines[i + 1 :]))
    if not errors:
        return None
    last = errors[-1]
    if len(errors) > 1 and last.startswith("failed to ") and " - " in errors[-2]:
        cause = errors[-2].split(" - ", 1)[1].split(": '", 1)[0]
        return f"{last} ({cause})"
    return last


def _with_listed(said: str, after: list[str]) -> str:
    """``said``, and when it ends in a colon, what it lists on the lines ``after`` it."""
    if not said.endswith(":"):
        return said
    listed: list[str] = []
    question = ""
    for line in after:
        item = line.strip()
        if not item or item.startswith("<") or line.startswith(_PREFIXES + ("WARNING: ",)):
            break  # a blank line, DVC's link to its docs, the next message
        if item.endswith(("?", ".")):  # advice after the list: a question is kept
            question = item if item.endswith("?") else ""
            break
        listed.append(item)
    if not listed:
        return said
    more = f", +{len(listed) - LISTED} more" if len(listed) > LISTED else ""
    text = f"{said} {', '.join(listed[:LISTED])}{more}"
    return f"{text} ({question})" if question else text
