"""Expected failures: invoke's ``Exit``, with the step that failed and how to resume."""

from __future__ import annotations

from invoke.exceptions import Exit

# The form of the one line a `DvcInvokeError` prints: PREFIX, what failed, THEN and the resume.
PREFIX = "dvc-invoke: "
THEN = "; then run: "


class DvcInvokeError(Exit):
    """A failure the user can act on: one line, the step, how to resume.

    ``step`` names where the run stopped (``guards``, ``pull``, ``repro``,
    ``commit``, ``dvc push``, ``git push``); ``resume`` is the command that
    continues from there once the cause is fixed.

    It is invoke's `Exit`: raised out of a task, invoke prints its one line
    to stderr and exits with its code, no traceback; a task of your own that
    calls the steps can catch it, like any exception.
    """

    exit_code = 1

    def __init__(
        self,
        reason: str,
        *,
        step: str | None = None,
        resume: str | None = None,
        log: str | None = None,
    ):
        super().__init__()
        Exception.__init__(self, reason)
        self.reason = reason
        self.step = step
        self.resume = resume
        self.log = log  # what the failing command printed, for the team's notification
        # Files the user is asked to commit before `inv publish` finishes the run.
        self.to_commit: list[str] = []
        # The branch the run's commit was kept on when the push was refused.
        self.kept: str | None = None
        # What the types of the exceptions behind it say (DVC's, read by
        # `dvc_invoke.adapters.dvc.failures.classify`): True for a moment, False
        # for good, None when only its text can tell.
        self.transient: bool | None = None

    @property
    def message(self) -> str:
        """What invoke prints: the line, made from the reason, step and resume as they are now."""
        return self.line()

    @message.setter
    def message(self, value: str | None) -> None:
        pass  # made from the reason, the step and the resume

    @property
    def code(self) -> int:
        return self.exit_code

    def what(self) -> str:
        return f"{self.step} failed: {self.reason}" if self.step else self.reason

    def line(self) -> str:
        text = self.what()
        if self.resume:
            text = f"{text}{THEN}{self.resume}"
        return f"{PREFIX}{text}"


def what_failed(line: str) -> str | None:
    """What failed, as a `DvcInvokeError`'s printed ``line`` says it, without the
    command that resumes; None when ``line`` is not such a line."""
    if not line.startswith(PREFIX):
        return None
    return line[len(PREFIX) :].split(THEN, 1)[0]


class Cancelled(DvcInvokeError):
    """The run was interrupted (Ctrl-C, SIGTERM, ``inv repro.cancel``)."""

    exit_code = 130

    def what(self) -> str:
        return f"cancelled during {self.step or 'the run'}: {self.reason}"


class Requeued(Cancelled):
    """SLURM requeued the run's job (``scontrol requeue``, a preemption or node
    failure with requeue): stopped as on a cancel, recorded requeued; SLURM
    starts the job again, and the run with it, from the start."""

    def what(self) -> str:
        return f"requeued during {self.step or 'the run'}: {self.reason}"


class Lost(Cancelled):
    """SLURM ended the run's job (its time limit): stopped as on a cancel, recorded as lost."""

    def what(self) -> str:
        return f"stopped during {self.step or 'the run'}: {self.reason}"


def dvc_error_reason(exc: BaseException) -> str:
    """DVC's own message for ``exc``, folded to one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    where = _yaml_problem(exc)
    return f"{text}: {where}" if where else text


def _yaml_problem(exc: BaseException) -> str | None:
    """What the YAML parser behind a DVC error found, and where: DVC's own
    line says only that a file is corrupted (``dvc status`` prints the rest)."""
    seen = 0
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None and seen < 5:
        mark = getattr(cause, "problem_mark", None)
        problem = getattr(cause, "problem", None)
        if mark is not None and problem:
            line, column = getattr(mark, "line", None), getattr(mark, "column", None)
            if isinstance(line, int) and isinstance(column, int):
                return f"{problem} at line {line + 1}, column {column + 1}"
            return str(problem)
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None
