"""Block Kit messages for a run's report, within Slack's limits once escaped.

Every string that is not ours (names, commands, reasons, logs) is escaped, so
none can mention anyone or end our formatting; a long text is cut, never the
message.
"""

from __future__ import annotations

import re
from typing import Any

from dvc_invoke.runs.record import RunReport, format_duration
from dvc_invoke.runs.sweep import text as text_table

SECTION_LIMIT = 3000  # a section's text, after escaping
TEXT_LIMIT = 3000  # the top-level text: the notification and the fallback
LOG_TAIL_LIMIT = 2900
EMOJI = {
    "started": ":arrow_forward:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
    "lost": ":x:",
    "requeued": ":repeat:",
}


def escape(text: str) -> str:
    """Slack mrkdwn control characters in text that is not ours."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, never cutting an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def fit(text: str, limit: int) -> str:
    """Text that is not ours, escaped, within ``limit`` characters once escaped."""
    return clip(escape(text), limit)


def _unfence(text: str) -> str:
    # NOTE: a zero-width space between backticks, and at the ends: a ``` in a
    # log, or a backtick next to ours, cannot close our fence.
    text = re.sub(r"`(?=`)", "`\u200b", text)
    if text.startswith("`"):
        text = "\u200b" + text
    if text.endswith("`"):
        text += "\u200b"
    return text


def code(text: str, limit: int) -> str:
    """Inline code, unless ``text`` holds a backtick that would end it early."""
    if "`" in text:
        return fit(text, limit)
    return f"`{fit(text, limit - 2)}`"


def fence(text: str, limit: int) -> str:
    """A code block of the end of ``text``: whole last lines, within ``limit`` once escaped."""
    body = log_tail(_unfence(escape(text.rstrip())), limit - 6)
    return f"```{body}```"


def log_tail(text: str, limit: int = LOG_TAIL_LIMIT) -> str:
    """The end of a log, whole lines, within ``limit`` characters."""
    text = text.rstrip()
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    cut = tail.find("\n")
    if 0 <= cut < len(tail) - 1:
        return tail[cut + 1 :]
    # One long line: never start inside an entity that escaping made.
    semi = tail.find(";", 0, 6)
    if semi != -1 and "&" not in tail[:semi]:
        tail = tail[semi + 1 :]
    return tail


def _section(text: str) -> Any:
    from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

    return SectionBlock(text=MarkdownTextObject(text=text))


def message(report: RunReport, custom: str | None = None) -> tuple[str, list[Any]]:
    """The plain text and Block Kit blocks for ``report``.

    Every string that is not ours (names, commands, reasons, logs) is escaped,
    so none can mention anyone or end our formatting, and every text is sized
    after escaping, within Slack's limits: a long one is cut, never the message.
    """
    plain = report.headline()
    if custom:
        plain = f"{plain}: {custom}"
    text = fit(plain, TEXT_LIMIT)
    blocks: list[Any] = [_section(_title(report))]
    if custom:
        blocks.append(_section(fit(custom, SECTION_LIMIT)))
    blocks.append(_fields(report))
    rows = report.metric_rows()
    if rows:
        header = "*Metrics and params* (against the run's first commit)\n"
        blocks.append(_section(header + fence("\n".join(rows), SECTION_LIMIT - len(header))))
    swept = report.sweep_table()
    if swept:
        blocks.append(
            _section(_sweep_header(report) + fence(text_table(*swept), SECTION_LIMIT - 300))
        )
    outcome = _outcome(report)
    if outcome is not None:
        blocks.append(outcome)
    return text, blocks


def _sweep_header(report: RunReport) -> str:
    sweep = report.sweep or {}
    by = sweep.get("by")
    order = (
        f"best first by {fit(by[0], 200)} ({'higher' if by[1] == 'max' else 'lower'})"
        if by
        else "unranked: no gate"
    )
    shared = f"; {fit(sweep['shared'], 200)}" if sweep.get("shared") else ""
    return f"*Experiments* ({order}; baseline = what the branch published{shared})\n"


def _title(report: RunReport) -> str:
    word = "failed" if report.status == "lost" else report.status
    word = f"sweep {word}" if report.sweep is not None else word
    title = f"{EMOJI[report.status]} *{fit(report.pipeline, 200)}* {word}"
    if report.status != "started":
        title += f" after {format_duration(report.duration)}"
    return title


def _fields(report: RunReport) -> Any:
    """Where the run ran, and what: its host, its command, its commits."""
    from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

    fields = [f"*Host*\n{fit(report.host, 200)}", f"*Command*\n{code(report.command, 1800)}"]
    commits = report.commits()
    if commits:
        fields.insert(0, f"*Branch*\n{fit(commits, 240)}")
    return SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields])


def _outcome(report: RunReport) -> Any | None:
    """Where a run failed and how to resume it, why it was requeued, or what it published."""
    from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

    if report.status in ("failed", "cancelled", "lost"):
        lines = [f"*Failed at:* {fit(report.step or 'unknown step', 200)}"]
        if report.reason:
            lines.append(fit(report.reason, 1500))
        if report.resume:
            lines.append(f"*Resume with:* {code(report.resume, 1000)}")
        return _section("\n".join(lines))
    if report.status == "requeued":
        step = fit(report.step or "unknown step", 200)
        return _section(f"*Requeued at:* {step}\n{fit(report.reason or '', 1500)}")
    if report.published() or report.plots_changed():  # a sweep: its best one's plots
        plots = report.plots_changed()
        done = fit("; ".join(report.published() + ([plots] if plots else [])), 1900)
        return ContextBlock(elements=[MarkdownTextObject(text=done)])
    return None


def experiment_tails(report: RunReport, limit: int = 10) -> list[tuple[str, list[Any]]]:
    """A sweep's failed experiments, each its step, reason and the end of its log."""
    found = []
    for e in [e for e in report.experiments if e.get("state") in ("failed", "lost")][:limit]:
        head = f"{report.pipeline}: experiment {e['name']} {e['state']} at {e.get('step') or 'run'}"
        text = fit(f"{head}: {e.get('reason') or ''}", TEXT_LIMIT)
        blocks = [_section(fit(text, SECTION_LIMIT))]
        if e.get("log_tail"):
            blocks.append(_section(fence(e["log_tail"], LOG_TAIL_LIMIT)))
        found.append((text, blocks))
    return found


def tail_blocks(report: RunReport) -> tuple[str, list[Any]]:
    text = fit(f"{report.pipeline} {report.status}: end of the log", TEXT_LIMIT)
    return text, [_section(fence(report.log_tail or "", LOG_TAIL_LIMIT))]
