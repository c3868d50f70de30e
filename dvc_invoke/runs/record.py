"""What a run did: the form every notifier reads, and the run's record on disk."""

from __future__ import annotations

import dataclasses
import socket
import time
from dataclasses import dataclass, field
from typing import Any

# "lost": the run's process died without writing its end (SIGKILL, OOM, reboot).
# "requeued": SLURM stopped the run's job and will start it again; not an end.
STATUSES = ("started", "succeeded", "failed", "cancelled", "lost", "requeued")
ENDED = ("succeeded", "failed", "cancelled", "lost")


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
    pushed: list[str] = field(default_factory=list)
    committed: bool = False
    git_pushed: bool = False
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    log_tail: str | None = None  # the end of the log, for a failure's notification
    messages: dict[str, dict[str, str]] = field(default_factory=dict)  # per notifier
    # The run's record (`dvc_invoke.runs.store`): who runs it, where its log is.
    id: str | None = None
    pid: int | None = None
    pgid: int | None = None
    process_started: float | None = None
    log: str | None = None
    detached: bool = False
    job: str | None = None  # its SLURM job, when submitted with --slurm
    restarts: int = 0  # SLURM's SLURM_RESTART_COUNT of the job running it now
    slack: dict[str, str] | None = None  # the pipeline's Slack overrides
    # What the run changed in the pipeline's metrics and params (`dvc_invoke.runs.metrics.Change`s).
    metrics: list[dict[str, Any]] = field(default_factory=list)
    published_by: str | None = None  # the `inv publish` that finished it by hand
    # Files a refused publish asked to commit: a commit of them keeps the run finishable.
    to_commit: list[str] = field(default_factory=list)
    # The plots the run changed: [{"id", "png"}], and DVC's HTML report.
    plots: list[dict[str, Any]] = field(default_factory=list)
    plots_html: str | None = None
    # The local branch its commit was kept on when origin refused the push.
    kept: str | None = None
    # DVC files a stage rewrote with entries of its own (dvclive), committed with the lock.
    rewritten: list[str] = field(default_factory=list)
    # A sweep (`inv exp.run`): its experiments and itself (`dvc_invoke.runs.sweep`).
    experiments: list[dict[str, Any]] = field(default_factory=list)
    sweep: dict[str, Any] | None = None
    # An experiment published (`inv exp.publish`): its name.
    experiment: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("log_tail")  # the log file holds it
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})

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

    def headline(self, *, reason: bool = True) -> str:
        """One plain line: the pipeline and what happened to its run (and why,
        unless ``reason`` is False)."""
        if self.sweep is not None:
            return self._sweep_headline(reason=reason)
        if self.status == "started":
            again = f" (restart {self.restarts})" if self.restarts else ""
            return f"{self.pipeline} started on {self.host}{again}"
        if self.status == "requeued":
            text = f"{self.pipeline} requeued after {format_duration(self.duration)}"
            return text + (f" at {self.step}" if self.step else "") + f": {self.reason}"
        # A lost run failed: its text says so, in one of the four words.
        word = "failed" if self.status == "lost" else self.status
        text = f"{self.pipeline} {word} after {format_duration(self.duration)}"
        if self.status != "succeeded" and self.step:
            text += f" at {self.step}"
        if self.status == "succeeded" and self.experiment:
            text += f", experiment {self.experiment}"
        if self.status == "succeeded" and self.published_by:
            text += ", published by hand"
        if reason and self.reason and self.status != "succeeded":
            text += f": {self.reason}"
        return text

    def _sweep_headline(self, *, reason: bool) -> str:
        from dvc_invoke.runs.sweep import summary

        sweep = self.sweep or {}
        what = summary(self.experiments, sweep.get("best"))
        label = f"{self.pipeline} sweep"
        if sweep.get("part"):  # a share of a sweep spread over hosts, or all of it
            i, k = sweep["part"]
            label += f" {sweep.get('name')}" + (
                "" if sweep.get("collected") else f" (share {i}/{k})"
            )
        elif sweep.get("hosts"):  # told by the machine that spread it
            label += f" {sweep.get('name')} (over {', '.join(sweep['hosts'])})"
        if self.status == "started":
            sets = " ".join(f"-S {s}" for s in sweep.get("sets") or ())
            return f"{label} started on {self.host}: {what} ({sets})"
        word = "failed" if self.status == "lost" else self.status
        text = f"{label} {word} after {format_duration(self.duration)}: {what}"
        if reason and self.reason and self.status != "succeeded":
            text += f" ({self.reason})"
        return text

    def sweep_table(self) -> tuple[list[str], list[list[str]]] | None:
        """The sweep's experiments ranked, its baseline first (`runs.sweep.table`)."""
        if self.sweep is None or not self.experiments:
            return None
        from dvc_invoke.config.gates import parse_gates
        from dvc_invoke.runs.sweep import table

        sweep = self.sweep
        gates = parse_gates(sweep.get("gates"), where="the sweep's record")
        by = tuple(sweep["by"]) if sweep.get("by") else None
        return table(self.experiments, sweep.get("baseline"), gates, by)

    # One account of a run, rendered by the console (`details`) and by Slack
    # (Slack's message): what each says is said here once.

    def commits(self) -> str | None:
        """``main at 1a2b3c4 → 5d6e7f8``: the branch and what the run moved it to."""
        if not (self.branch or self.commit_before):
            return None
        before, after = short(self.commit_before), short(self.commit_after)
        unchanged = self.commit_after in (None, self.commit_before)
        return f"{self.branch or '(detached)'} at {before if unchanged else f'{before} → {after}'}"

    def published(self) -> list[str]:
        """What a succeeded run published, one phrase each."""
        if self.status != "succeeded" or self.sweep is not None:
            return []  # a sweep publishes nothing: its experiments are shared
        done = ["committed the lock file" if self.committed else "nothing new to commit"]
        done[0] += ", pushed to git" if self.git_pushed else ""
        if self.rewritten:
            done.append(f"committed dvclive's entries in {', '.join(self.rewritten)}")
        if self.pushed:
            done.append(f"pushed to the DVC remote: {', '.join(self.pushed)}")
        if self.published_by:
            done.append(f"published by hand: {self.published_by}")
        return done

    def plots_changed(self) -> str | None:
        """``plots changed: ROC, Precision-Recall``: which, by name, link-free."""
        if not self.plots:
            return None
        return f"plots changed: {some([str(p['id']) for p in self.plots], 8)}"

    def metric_rows(self) -> list[str]:
        """The metrics and params that changed, one aligned row each."""
        if not self.metrics:
            return []
        from dvc_invoke.runs.metrics import Change, table

        return table([Change.from_dict(m) for m in self.metrics])

    def details(self) -> list[str]:
        """The console's lines under the headline."""
        commits = self.commits()
        lines = [f"branch {commits}"] if commits else []
        if self.restarts:
            lines.append(f"restart {self.restarts} of SLURM job {self.job}")
        lines += self.published() + self.metric_rows()
        if self.sweep is not None and self.sweep.get("shared"):
            lines.append(f"shared: {self.sweep['shared']}")
        if plots := self.plots_changed():
            lines.append(plots)
        if self.plots_html:
            lines.append(f"plots report: {self.plots_html}")
        if self.resume:
            lines.append(f"resume with: {self.resume}")
        return lines


def some(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def short(commit: str | None) -> str:
    return commit[:7] if commit else "(none)"


# A record's keys that are a report's fields (others, of another version, are left out).
_FIELDS = frozenset(f.name for f in dataclasses.fields(RunReport))


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
