"""What a run did, in the form every notifier reads."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

STATUSES = ("started", "succeeded", "failed", "cancelled")


@dataclass
class RunReport:
    pipeline: str
    command: str
    status: str = "started"
    step: str | None = None  # the step running, or the one that failed
    reason: str | None = None
    resume: str | None = None
    host: str = field(default_factory=socket.gethostname)
    branch: str | None = None
    commit_before: str | None = None
    commit_after: str | None = None
    pulled: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    committed: bool = False
    git_pushed: bool = False
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    log_tail: str | None = None  # the end of the failing command's output
    messages: dict[str, dict[str, str]] = field(default_factory=dict)  # per notifier

    @property
    def duration(self) -> float:
        return (self.ended_at or time.time()) - self.started_at

    def end(
        self,
        status: str,
        *,
        reason: str | None = None,
        resume: str | None = None,
        log_tail: str | None = None,
    ) -> None:
        assert status in STATUSES
        self.status = status
        self.reason = reason
        self.resume = resume
        self.log_tail = log_tail
        self.ended_at = time.time()

    def headline(self) -> str:
        """One plain line: the pipeline and what happened to its run."""
        if self.status == "started":
            return f"{self.pipeline} started on {self.host}"
        text = f"{self.pipeline} {self.status} after {format_duration(self.duration)}"
        if self.status != "succeeded" and self.step:
            text += f" at {self.step}"
        if self.reason and self.status != "succeeded":
            text += f": {self.reason}"
        return text

    def details(self) -> list[str]:
        lines = []
        if self.branch or self.commit_before:
            before, after = short(self.commit_before), short(self.commit_after)
            commits = before if before == after else f"{before} → {after}"
            lines.append(f"branch {self.branch or '(detached)'} at {commits}")
        if self.status == "succeeded":
            lines.append(
                ("committed the lock file" if self.committed else "nothing new to commit")
                + (", pushed to git" if self.git_pushed else "")
            )
            if self.pushed:
                lines.append(f"pushed to the DVC remote: {', '.join(self.pushed)}")
        if self.resume:
            lines.append(f"resume with: {self.resume}")
        return lines


def short(commit: str | None) -> str:
    return commit[:7] if commit else "(none)"


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
