"""Block Kit messages: what they say, what they escape, and that they stay within Slack's limits."""

from __future__ import annotations

import json

import pytest

from dvc_invoke.adapters.slack.blocks import fence, log_tail, message
from dvc_invoke.runs.record import RunReport


def report(status="failed", **kw):
    r = RunReport(
        pipeline="metrics",
        command="inv metrics",
        host="gpu-1",
        branch="main",
        commit_before="a" * 40,
        step="dvc push",
        **kw,
    )
    if status != "started":
        r.end(status, reason="remote <gone> & lost", resume="inv publish --pipeline metrics")
        r.commit_after = "b" * 40
    return r


@pytest.mark.parametrize("status", ["started", "succeeded", "failed", "cancelled"])
def test_every_message_text_names_the_pipeline_and_its_status(status):
    text, blocks = message(report(status))
    assert text.startswith(f"metrics {status}")
    assert len(blocks) <= 50
    for block in blocks:
        block.validate_json()


def test_failure_message_escapes_what_is_not_ours():
    _, blocks = message(report("failed"))
    dumped = json.dumps([b.to_dict() for b in blocks])
    assert "remote &lt;gone&gt; &amp; lost" in dumped
    assert "*Failed at:* dvc push" in dumped


def test_a_resume_hint_holding_backticks_is_not_wrapped_in_more():
    r = report("failed")
    r.resume = "review `git status` and `git log`, then inv publish --pipeline metrics"
    _, blocks = message(r)
    dumped = json.dumps([b.to_dict() for b in blocks])
    assert "*Resume with:* review `git status` and `git log`, then inv publish" in dumped
    plain = report("failed")
    assert "*Resume with:* `inv publish --pipeline metrics`" in json.dumps(
        [b.to_dict() for b in message(plain)[1]]
    )


def test_log_tail_keeps_whole_last_lines_within_the_limit():
    log = "\n".join(f"line {i:04d}" for i in range(5000))
    tail = log_tail(log, limit=2500)
    assert len(tail) <= 2500
    assert tail.endswith("line 4999") and tail.startswith("line ")


def test_every_text_stays_within_slacks_limits_after_escaping():
    r = report("failed")
    r.reason = "<&>" * 3000
    r.command = "inv " + "&" * 5000
    r.log_tail = "<" * 10000
    r.metrics = [{"name": f"m.json:k{i}<&>", "old": i, "new": i + 1} for i in range(400)]
    text, blocks = message(r)
    assert len(text) <= 3000
    for block in blocks:
        block.validate_json()  # slack_sdk's own limits
    for field_text in json.loads(json.dumps([b.to_dict() for b in blocks])):
        for t in [field_text.get("text") or {}] + field_text.get("fields", []):
            assert "&am…" not in t.get("text", "") and "&a…" not in t.get("text", "")


def test_a_log_that_starts_or_ends_with_a_backtick_cannot_break_the_fence():
    text = fence("`quoted`", 100)
    assert text.startswith("```") and text.endswith("```")
    assert "````" not in text
