"""The project a task runs in: where its DVC root is, and its git state.

Every command goes through ``c.run``: probes hidden and allowed to fail,
actions echoed and turned into a `DvcInvokeError` naming their step when they
fail. Under ``inv --dry`` actions print and run nothing, while probes (which
only read) still run, so a dry run knows the workspace it describes.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dvc_invoke import console
from dvc_invoke.adapters.dvc import failures
from dvc_invoke.adapters.interrupts import Interrupts
from dvc_invoke.config import project
from dvc_invoke.config.settings import dvc_command, is_dry, settings
from dvc_invoke.errors import Cancelled, DvcInvokeError, Lost, Requeued


def quote_all(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


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


# git for reads: takes no optional lock (no index.lock for a status).
_GIT_READ = "git --no-optional-locks"

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


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The DVC root at or above ``start`` (the current directory)."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    below = dvc_projects_below(here)
    if below:
        where = ", ".join(f"{p}/" for p in below[:3])
        if len(below) > 3:
            where += f" (+{len(below) - 3} more)"
        raise DvcInvokeError(
            f"not a DVC repository: no .dvc folder in {here} or above; DVC projects below it:"
            f" {where} (run inv there: cd {shlex.quote(below[0])})",
            step="guards",
        )
    raise DvcInvokeError(
        f"not a DVC repository: no .dvc folder in {here} or above (run `dvc init` first)",
        step="guards",
    )


def dvc_projects_below(here: Path, depth: int = 2) -> list[str]:
    """The DVC projects (``dvc init --subdir``) in the folders below ``here``,
    ``depth`` levels down at most, hidden folders left out; relative paths."""
    found: list[str] = []
    level = [here]
    for _ in range(depth):
        deeper = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                if os.path.isdir(os.path.join(entry.path, ".dvc")):
                    found.append(Path(entry.path).relative_to(here).as_posix())
                else:
                    deeper.append(Path(entry.path))
        level = deeper
    return found


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


def push_rejected(output: str | None) -> bool:
    """Whether ``git push`` was rejected because the remote has commits this clone lacks."""
    text = output or ""
    return "[rejected]" in text or "non-fast-forward" in text or "fetch first" in text


def _passing(exc: DvcInvokeError) -> bool:
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


@dataclass
class GitState:
    """What ``git status --porcelain=v2 --branch`` says of the workspace."""

    commit: str | None = None  # None: no commit yet (or a dry run)
    branch: str | None = None  # None: detached HEAD (or a dry run)
    upstream: str | None = None  # e.g. "origin/main"
    ahead: int = 0
    behind: int = 0
    changed: list[str] = field(default_factory=list)  # relative to the git top

    @classmethod
    def parse(cls, out: str) -> GitState:
        state = cls()
        records = iter(out.split("\0"))
        for rec in records:
            if rec.startswith("# branch.oid "):
                oid = rec.split(" ", 2)[2]
                state.commit = None if oid == "(initial)" else oid
            elif rec.startswith("# branch.head "):
                head = rec.split(" ", 2)[2]
                state.branch = None if head == "(detached)" else head
            elif rec.startswith("# branch.upstream "):
                state.upstream = rec.split(" ", 2)[2]
            elif rec.startswith("# branch.ab "):
                _, _, ahead, behind = rec.split(" ")
                state.ahead, state.behind = int(ahead), -int(behind)
            elif rec[:2] == "1 ":
                state.changed.append(rec.split(" ", 8)[8])
            elif rec[:2] == "2 ":
                state.changed.append(rec.split(" ", 9)[9])
                next(records, None)  # the rename's original path
            elif rec[:2] == "u ":
                state.changed.append(rec.split(" ", 10)[10])
        return state


# Projects whose .env was checked for being git-ignored, in this process.
_ENV_CHECKED: set[Path] = set()


class Workspace:
    """Runs git and dvc commands for one DVC project, from its root."""

    def __init__(self, c: Any, root: Path | None = None):
        self.c = c
        self.root = Path(root) if root else find_root()
        self.dry = is_dry(c)
        self.interrupts: Interrupts | None = None  # set while a run handles signals
        self.log: IO[str] | None = None  # set while a foreground run keeps a log
        self.started: Any = None  # checks begun early, in the background (`checks.Started`)
        project.load(self.root)
        self._git_prefix: str | None = None
        self._warn_if_env_is_not_ignored()

    def _warn_if_env_is_not_ignored(self) -> None:
        """A ``.env`` that git does not ignore is one `git add -A` from the
        team's history, secrets and all: said once per project and process."""
        if self.root in _ENV_CHECKED or not (self.root / ".env").is_file():
            return
        _ENV_CHECKED.add(self.root)
        res = self.c.run(
            f"git -C {shlex.quote(str(self.root))} check-ignore -q .env",
            hide=True,
            warn=True,
            in_stream=False,
            dry=False,
        )
        if res.exited == 1:  # not ignored (128: not a git repository, said elsewhere)
            console.warn(".env is not ignored by git: add it to .gitignore, lest it is committed")

    # -- running ---------------------------------------------------------
    def _cmd(self, cmd: str) -> str:
        if Path(os.getcwd()).resolve() == self.root.resolve():
            return cmd
        return f"cd {shlex.quote(str(self.root))} && {cmd}"

    def probe(self, cmd: str) -> Any:
        """Run a read-only command quietly; never raises on failure.

        Probes run under ``inv --dry`` too: they change nothing, and a dry run
        that knows the branch and its upstream shows the commands the real run
        would run, exactly.
        """
        return self._run(cmd, hide=True, warn=True, in_stream=False, dry=False)

    def _run(self, cmd: str, *, in_process: bool = True, **kwargs: Any) -> Any:
        """``c.run`` of ``cmd``; a ``dvc`` command line by DVC's CLI entry point in
        this process (`inprocess.DvcRunner`: the same echo, ``--dry`` and result)."""
        args = self._dvc_args(cmd) if in_process else None
        if args is None:
            from invoke.context import MockContext

            if isinstance(self.c, MockContext):
                return self.c.run(self._cmd(cmd), **kwargs)
            # invoke's configured runner, passing on what it prints as it comes
            # and keeping its end (`output.Streaming`); invoke's own injection
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
        if settings(self.c).dvc or not cmd.startswith(self.dvc + " "):
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
        conf = settings(self.c)
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
                if attempt == attempts or isinstance(exc, Cancelled) or not _passing(exc):
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
        echo = settings(self.c).echo or bool(self.c.config.run.echo)
        out: Any = console.terminal("stdout")
        err: Any = console.terminal("stderr")
        if self.log is not None:
            # A foreground run: what the terminal shows goes to the run's log too.
            if echo:
                self.log.write(cmd + "\n")
            out, err = Tee(out, self.log), Tee(err, self.log)
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
        stopped = self.interruption(step, resume)
        if stopped is not None:
            raise stopped

    def interruption(self, step: str, resume: str | None) -> Cancelled | None:
        """How the run stops after the signal it received, if it received one.

        SIGTERM to a SLURM job is SLURM's (`runs.slurm_interruption` asks it
        why): a requeue is `Requeued`, a time limit or a node failure `Lost`,
        anything else (``scancel``, a preemption) `Cancelled`.
        """
        if self.interrupts is None or not self.interrupts.received:
            return None
        signal_name = self.interrupts.received
        job = os.environ.get("SLURM_JOB_ID")
        if signal_name == "SIGTERM" and job:
            from dvc_invoke.runs.store import slurm_interruption

            how, reason = slurm_interruption(job)
            kind = {"requeued": Requeued, "lost": Lost}.get(how, Cancelled)
            return kind(reason, step=step, resume=resume)
        return Cancelled(f"interrupted ({signal_name})", step=step, resume=resume)

    @property
    def dvc(self) -> str:
        return dvc_command(self.c)

    # -- git -------------------------------------------------------------
    def git_state(self, *, step: str = "guards") -> GitState:
        # A read takes no index.lock (git status refreshes the index when it can):
        # a host's probe must not fail a checkout another start is making there.
        res = self.probe(f"{_GIT_READ} status --porcelain=v2 --branch -z --untracked-files=no")
        if res.failed:
            err = res.stderr.strip().splitlines()
            reason = err[-1] if err else f"git exited with {res.exited}"
            if "not a git repository" in reason:
                reason = f"{self.root} is not in a git repository"
            raise DvcInvokeError(reason, step=step)
        return GitState.parse(res.stdout)

    @property
    def git_prefix(self) -> str:
        """The DVC root relative to the git top (``""`` unless ``dvc init --subdir``)."""
        if self._git_prefix is None:
            res = self.probe("git rev-parse --show-prefix")
            self._git_prefix = res.stdout.strip() if res.ok else ""
        return self._git_prefix

    def from_git_top(self, path: str) -> str:
        prefix = self.git_prefix
        return path[len(prefix) :] if prefix and path.startswith(prefix) else path

    def changed_paths(self, pathspecs: Iterable[str], *, unknown: bool = False) -> list[str]:
        """Which of ``pathspecs`` (files or folders) differ from HEAD, untracked included;
        with ``unknown``, all of them when git cannot tell."""
        specs = sorted(set(pathspecs))
        if not specs:
            return []
        res = self.probe(
            f"{_GIT_READ} status --porcelain -z --untracked-files=all -- " + quote_all(specs)
        )
        if res.failed and unknown:
            return specs
        paths: list[str] = []
        records = iter(res.stdout.split("\0"))
        for rec in records:
            if len(rec) < 4:
                continue
            paths.append(self.from_git_top(rec[3:]))
            if rec[0] in "RC":
                next(records, None)
        return paths

    def head(self) -> str | None:
        res = self.probe("git rev-parse --verify -q HEAD")
        if not res.ok:
            return None  # no commit yet
        return res.stdout.strip() or None

    def upstream_target(self, branch: str) -> tuple[str, str] | None:
        """The remote and remote ref that ``branch`` pushes to, if it has an upstream."""
        ref = shlex.quote(f"refs/heads/{branch}")
        res = self.probe(
            f"git for-each-ref --format='%(upstream:remotename) %(upstream:remoteref)' {ref}"
        )
        words = res.stdout.split()
        if res.ok and len(words) == 2:
            return words[0], words[1]
        return None
