"""Slack notifications against a stand-in Slack server speaking the real protocol."""

from __future__ import annotations

import json
import logging
import os
import signal

import pytest
from helpers import assert_one_line_error, latest, records, wait_for

from dvc_invoke.adapters.slack.notifiers import WebApiNotifier, WebhookNotifier
from dvc_invoke.adapters.slack.settings import SlackSettings
from dvc_invoke.testing.slack import TOKEN, WEBHOOK_PATH

SECRETS = (TOKEN, WEBHOOK_PATH.rsplit("/", 1)[-1])


def assert_no_secret(*texts):
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def fast(project, **slack):
    """Short Slack timeouts for fault tests, through the project's invoke.yaml."""
    options = {"timeout": 1, "retries": 2, "max_retry_after": 2, **slack}
    (project.path / "invoke.yaml").write_text(json.dumps({"dvc_invoke": {"slack": options}}))


def test_a_run_posts_started_then_updates_that_message_with_the_result(project, slack):
    run = project.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    (started,) = slack.calls("chat.postMessage")
    assert started.headers["Authorization"] == f"Bearer {TOKEN}"
    assert started.body["channel"] == "#ml-runs"
    assert started.text.startswith("metrics started on ")
    (update,) = slack.calls("chat.update")
    # chat.update needs the channel id that postMessage returned, and its ts.
    assert (update.body["channel"], update.body["ts"]) == ("C0RUNS", "1700000000.000001")
    assert update.text.startswith("metrics succeeded after ")
    blocks = update.blocks_text
    assert "pushed to the DVC remote: metrics/predictions.csv" in blocks
    assert "inv metrics" in blocks and "*Branch*" in blocks
    assert project.origin_log()[0] == "[DVC] Update model metrics"
    assert_no_secret(run.output)


def test_a_failed_run_names_the_step_and_replies_with_the_end_of_the_log(project, slack):
    (project.path / "metrics" / "evaluate.py").write_text(
        "print('\\n'.join(f'line {i}' for i in range(2000)))\nprint('evaluation broke')\nraise SystemExit(1)\n"
    )
    project.git("commit", "-qam", "Break the evaluation")

    run = project.inv("metrics", env=slack.web_api_env())

    assert_one_line_error(run, "repro failed")
    (update,) = slack.calls("chat.update")
    assert update.text.startswith("metrics failed after ")
    assert "*Failed at:* repro" in update.blocks_text
    assert "failed to reproduce" in update.blocks_text  # DVC's reason, in the message itself
    assert "*Resume with:* `inv metrics`" in update.blocks_text
    started, reply = slack.calls("chat.postMessage")
    assert reply.body["thread_ts"] == "1700000000.000001"
    assert reply.body["channel"] == "C0RUNS"
    # The log's end: DVC's stderr line may land before or after the stage's
    # last lines (two pipes, read side by side), so the stage's end is asserted.
    tail = reply.blocks_text
    assert "evaluation broke" in tail and "line 1999" in tail
    assert "line 0\\n" not in tail  # the end of the log, within Slack's limits
    assert len(reply.body["blocks"][0]["text"]["text"]) <= 3000


def test_a_webhook_gets_one_message_at_the_end(project, slack):
    run = project.inv("metrics", env=slack.webhook_env())

    assert run.returncode == 0, run.output
    (posted,) = slack.requests
    assert posted.method == "webhook"
    assert posted.text.startswith("metrics succeeded after ")
    assert_no_secret(run.output)


def test_per_pipeline_channel_and_texts_from_config(project, slack):
    (project.path / "invoke.yaml").write_text(
        json.dumps(
            {
                "dvc_invoke": {
                    "pipelines": {
                        "metrics": {"slack": {"channel": "#metrics", "succeeded": "Metrics done !"}}
                    }
                }
            }
        )
    )
    run = project.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert slack.calls("chat.postMessage")[0].body["channel"] == "#metrics"
    (update,) = slack.calls("chat.update")
    assert update.body["channel"] == "C0METRICS"
    assert update.text.endswith("Metrics done !") and "metrics succeeded" in update.text


@pytest.mark.parametrize(
    "fault, warning, delivered",
    [
        (
            dict(
                method="chat.postMessage",
                status=429,
                headers={"Retry-After": "1"},
                body={"ok": False, "error": "ratelimited"},
            ),
            None,
            True,
        ),
        (dict(method="chat.update", status=503, body="upstream down", times=1), None, True),
        (
            dict(
                method="chat.update",
                status=500,
                body={"ok": False, "error": "fatal_error"},
                times=10,
            ),
            "fatal_error",
            False,
        ),
        (
            dict(method="chat.update", body={"ok": False, "error": "token_revoked"}),
            "token_revoked",
            False,
        ),
        (dict(method="chat.update", delay=3, times=10), "timed out", False),
    ],
    ids=["429-once", "503-once", "500-always", "revoked-mid-run", "hangs"],
)
def test_slack_faults_never_fail_the_run_or_lose_its_result(
    project, slack, fault, warning, delivered
):
    fast(project)
    slack.fail(fault.pop("method"), **fault)

    run = project.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert project.origin_log()[0] == "[DVC] Update model metrics"
    assert_no_secret(run.output)
    warnings = [ln for ln in run.stdout.splitlines() if ln.startswith("! Slack")]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0], run.stdout
    results = [
        r for r in slack.requests if r.text.startswith("metrics succeeded") and not r.faulted
    ]
    assert bool(results) == delivered


@pytest.mark.parametrize(
    "env, error",
    [
        ({"SLACK_BOT_TOKEN": "xoxb-wrong-token"}, "invalid_auth"),
        ({"SLACK_CHANNEL": "#nowhere"}, "channel_not_found"),
    ],
)
def test_a_rejected_token_or_unknown_channel_refuses_the_run_before_it_starts(
    project, slack, env, error
):
    run = project.inv("metrics", env={**slack.web_api_env(), **env})

    line = assert_one_line_error(
        run, "the run's first message was refused (slack: ", error, "--skip slack"
    )
    assert project.stages_run() == []
    assert "started" not in run.stdout
    assert [r.method for r in slack.requests] == ["chat.postMessage"]
    assert "xoxb-wrong-token" not in run.output and TOKEN not in line
    assert project.inv("repro.status").stdout.strip() == "no runs yet"


def test_skipping_the_slack_check_runs_with_one_warning(project, slack):
    env = {**slack.web_api_env(), "SLACK_BOT_TOKEN": "xoxb-wrong-token"}
    run = project.inv("metrics", "--skip", "slack", env=env)

    assert run.returncode == 0, run.output
    assert [r.method for r in slack.requests] == ["chat.postMessage"]  # then left alone
    warnings = [ln for ln in run.stdout.splitlines() if ln.startswith("! Slack")]
    assert len(warnings) == 1 and "invalid_auth" in warnings[0]
    assert project.origin_log()[0] == "[DVC] Update model metrics"


@pytest.mark.parametrize("kind", ["web api", "webhook"])
def test_an_unreachable_slack_is_one_warning(project, slack, kind):
    fast(project)
    env = (
        {**slack.web_api_env(), "SLACK_API_URL": "http://127.0.0.1:9/api/"}
        if kind == "web api"
        else {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9" + WEBHOOK_PATH}
    )

    run = project.inv("metrics", env=env)

    assert run.returncode == 0, run.output
    warnings = [ln for ln in run.stdout.splitlines() if ln.startswith("! Slack")]
    assert len(warnings) == 1 and "connection failed" in warnings[0]
    # slack_sdk's own log line, once per attempt, stays out of the console.
    assert "Failed to send a request" not in run.output
    assert_no_secret(run.output)
    assert project.origin_log()[0] == "[DVC] Update model metrics"


@pytest.mark.parametrize(
    "env, error",
    [
        ({"SLACK_BOT_TOKEN": TOKEN}, "SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not"),
        ({"SLACK_CHANNEL": "#ml-runs"}, "SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not"),
        (
            {"SLACK_WEBHOOK_URL": "ftp://hooks.example/standinwebhooksecret"},
            "SLACK_WEBHOOK_URL is not an http(s) URL",
        ),
        (
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": "#x", "SLACK_API_URL": "slack.com/api"},
            "SLACK_API_URL is not an http(s) URL",
        ),
    ],
)
def test_a_malformed_slack_setup_refuses_the_run_before_it_starts(project, env, error):
    run = project.inv("metrics", env=env)

    line = assert_one_line_error(run, error)
    assert "started" not in run.stdout
    assert project.stages_run() == []
    assert_no_secret(line)


def test_env_file_is_read_from_the_project_root_and_real_variables_win(project, slack):
    env = slack.web_api_env()
    (project.path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    project.path.joinpath("metrics").mkdir(exist_ok=True)

    sub = project.path / "metrics"
    run = project.inv("notify", "from the .env", env={"SLACK_CHANNEL": "#metrics"}, cwd=sub)

    assert run.returncode == 0, run.output
    (posted,) = slack.calls("chat.postMessage")
    assert posted.text == "from the .env"
    assert posted.body["channel"] == "#metrics"
    assert project.git("status", "--porcelain") == ""


def test_a_malformed_env_file_is_one_line(project):
    (project.path / ".env").write_text("SLACK_CHANNEL=#ok\nthis line is not an assignment\n")
    run = project.inv("metrics")
    assert_one_line_error(run, ".env line 2: cannot be parsed")


def test_a_users_task_sends_a_message(project, slack):
    run = project.inv("notify", "Metrics done !", env=slack.webhook_env())
    assert run.returncode == 0, run.output
    assert [r.text for r in slack.calls("webhook")] == ["Metrics done !"]


def test_notify_test_checks_the_token_then_posts(project, slack):
    run = project.inv("notify.test", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert [r.method for r in slack.requests] == ["auth.test", "chat.postMessage"]
    assert "dvc-bot in ML team" in run.stdout


@pytest.mark.parametrize(
    "env, error",
    [
        ({"SLACK_BOT_TOKEN": "xoxb-revoked"}, "Slack rejected SLACK_BOT_TOKEN: invalid_auth"),
        ({"SLACK_CHANNEL": "#nowhere"}, "posting to #nowhere failed: channel_not_found"),
    ],
)
def test_notify_test_says_exactly_what_is_wrong(project, slack, env, error):
    run = project.inv("notify.test", env={**slack.web_api_env(), **env})
    line = assert_one_line_error(run, error)
    assert "xoxb-revoked" not in run.output and TOKEN not in line


def test_notify_test_without_slack_explains_the_setup(project):
    run = project.inv("notify.test")
    assert_one_line_error(run, "Slack is not configured", ".env.example")


def test_webhook_errors_are_read_from_status_and_body(project, slack):
    slack.fail("webhook", status=404, body="no_service")
    run = project.inv("notify.test", env=slack.webhook_env())
    assert_one_line_error(run, "webhook refused the test message: no_service")


# -- in-process: what slack_sdk logs, and its retries ----------------------------


def test_slack_sdk_retry_logs_never_carry_the_webhook_url(slack, caplog):
    caplog.set_level(logging.DEBUG)
    slack.fail("webhook", status=500, body="oops", times=1)
    settings = SlackSettings(webhook_url=slack.webhook_url, timeout=2, retries=2)
    warnings = []

    assert WebhookNotifier(settings, warnings.append).send("hello") is True

    assert len(slack.calls("webhook")) == 2  # retried once, by slack_sdk's handler
    assert_no_secret(caplog.text, *warnings)


def test_web_api_retries_a_rate_limit_honouring_retry_after(slack):
    slack.fail(
        "chat.postMessage",
        status=429,
        headers={"Retry-After": "1"},
        body={"ok": False, "error": "ratelimited"},
    )
    settings = SlackSettings(token=TOKEN, channel="#ml-runs", api_url=slack.api_url, timeout=2)

    assert WebApiNotifier(settings, print).send("hello") is True
    assert len(slack.calls("chat.postMessage")) == 2


def test_a_retry_after_longer_than_a_run_should_wait_is_not_waited_for(slack):
    slack.fail(
        "chat.postMessage",
        status=429,
        headers={"Retry-After": "120"},
        body={"ok": False, "error": "ratelimited"},
    )
    settings = SlackSettings(
        token=TOKEN, channel="#ml-runs", api_url=slack.api_url, max_retry_after=5
    )
    warnings = []

    assert WebApiNotifier(settings, warnings.append).send("hello") is False
    assert len(slack.calls("chat.postMessage")) == 1
    assert "ratelimited" in warnings[0]


def break_remote(project):
    """The DVC remote turns into a file: `dvc push` fails as if it broke mid-run."""
    remote = project.sandbox.remote
    remote.rename(remote.with_name("remote-away"))
    remote.write_text("not a folder\n")

    def mend():
        remote.unlink()
        remote.with_name("remote-away").rename(remote)

    return mend


def test_publishing_by_hand_turns_the_failed_runs_message_into_its_success(project, slack):
    mend = break_remote(project)
    failed = project.inv("metrics", "--skip", "dvc-remote", env=slack.web_api_env())
    assert_one_line_error(failed, "dvc push failed", "inv publish --pipeline metrics")
    run_id = latest(project)["id"]
    mend()
    before = len(slack.requests)

    done = project.inv("publish", "--pipeline", "metrics", env=slack.web_api_env())

    assert done.returncode == 0, done.output
    assert "metrics succeeded after" in done.stdout and "published by hand" in done.stdout
    # The same message, updated: the team sees the failure turn into a success.
    (update,) = [r for r in slack.requests[before:] if r.method == "chat.update"]
    assert update.body["ts"] == "1700000000.000001"
    assert update.text.startswith("metrics succeeded after ")
    assert update.text.endswith("published by hand")
    assert "published by hand: inv publish --pipeline metrics" in update.blocks_text
    assert "pushed to the DVC remote: metrics/predictions.csv" in update.blocks_text
    assert "committed the lock file, pushed to git" in update.blocks_text  # by the run
    assert not [r for r in slack.requests[before:] if r.method == "chat.postMessage"]
    record = latest(project)
    assert (record["id"], record["status"], record["step"]) == (run_id, "succeeded", None)
    assert record["published_by"] == "inv publish --pipeline metrics"
    assert record["commit_after"] == project.git("rev-parse", "HEAD")
    assert record["git_pushed"] and project.origin_log()[0] == "[DVC] Update model metrics"
    (row,) = [line for line in project.inv("repro.status").stdout.splitlines() if run_id in line]
    assert "succeeded" in row and "(published by hand)" in row
    assert_no_secret(failed.output, done.output)

    # Run again: nothing left to do, nothing said to the team.
    quiet = len(slack.requests)
    again = project.inv("publish", "--pipeline", "metrics", env=slack.web_api_env())
    assert again.returncode == 0, again.output
    assert "already published" in again.stdout
    assert len(slack.requests) == quiet


@pytest.mark.parametrize("path, finished", [("tasks.py", True), ("metrics/evaluate.py", False)])
def test_a_commit_made_by_hand_since_the_failed_run_finishes_it_only_if_unrelated(
    project, path, finished
):
    mend = break_remote(project)
    failed = project.inv("metrics", "--skip", "dvc-remote")
    assert_one_line_error(failed, "dvc push failed")
    run_id = latest(project)["id"]
    mend()
    target = project.path / path
    target.write_text(target.read_text() + "\n# by hand\n")
    project.git("commit", "-qam", "A change made by hand")

    done = project.inv("publish", "--pipeline", "metrics")

    assert done.returncode == 0, done.output
    record = next(r for r in records(project) if r["id"] == run_id)
    # A commit to what the results depend on makes them another run's work.
    assert record["status"] == ("succeeded" if finished else "failed")
    assert (f"run {run_id}" in done.stdout) == finished


def test_publishing_by_hand_without_a_failed_run_posts_one_message(project, slack):
    project.inv("repro.stages", "--pipeline", "metrics", "--force")

    done = project.inv("publish", "--pipeline", "metrics", env=slack.webhook_env())

    assert done.returncode == 0, done.output
    (posted,) = slack.requests
    assert posted.method == "webhook"
    assert posted.text.startswith("metrics succeeded after ")
    assert "published by hand: inv publish --pipeline metrics" in posted.blocks_text
    assert "committed the lock file, pushed to git" in posted.blocks_text
    assert records(project) == []  # not a run: no record


def test_a_publish_failing_again_tells_only_the_console(project, slack):
    break_remote(project)
    project.inv("metrics", "--skip", "dvc-remote", env=slack.web_api_env())
    before = len(slack.requests)

    again = project.inv("publish", "--pipeline", "metrics", env=slack.web_api_env())

    assert_one_line_error(again, "dvc push failed", "inv publish --pipeline metrics")
    assert len(slack.requests) == before
    assert latest(project)["status"] == "failed"


def test_a_dry_publish_prints_the_commands_and_tells_nobody(project, slack):
    mend = break_remote(project)
    project.inv("metrics", "--skip", "dvc-remote", env=slack.web_api_env())
    mend()
    before, origin = len(slack.requests), project.origin_log()

    dry = project.inv("--dry", "publish", "--pipeline", "metrics", env=slack.web_api_env())

    assert dry.returncode == 0, dry.output
    assert "dvc push metrics/predictions.csv" in dry.stdout and "git push" in dry.stdout
    assert len(slack.requests) == before
    assert project.origin_log() == origin
    assert latest(project)["status"] == "failed"


def test_a_run_left_on_another_branch_is_not_finished_from_here(project, slack):
    mend = break_remote(project)
    project.inv("metrics", "--skip", "dvc-remote", env=slack.web_api_env())
    mend()
    project.git("checkout", "-q", "-b", "elsewhere", "HEAD~1")
    project.git("push", "-q", "-u", "origin", "elsewhere")
    project.inv("repro.stages", "--pipeline", "metrics", "--force")
    before = len(slack.requests)

    done = project.inv("publish", "--pipeline", "metrics", env=slack.web_api_env())

    assert done.returncode == 0, done.output
    assert latest(project)["status"] == "failed"  # still waiting, on main
    new = slack.requests[before:]
    assert [r.method for r in new] == ["chat.postMessage"]  # a message of its own
    assert "published by hand" in new[0].text


# -- what is not ours: escaped, sized after escaping, never dropped ------------------


def break_with_log(project, body: str, command: str | None = None):
    """The evaluation prints ``body`` and fails; its stage command may be replaced."""
    (project.path / "metrics" / "evaluate.py").write_text(
        f"import sys\nsys.stdout.write({body!r})\nraise SystemExit(1)\n"
    )
    if command:
        dvc_yaml = project.path / "metrics" / "dvc.yaml"
        text = dvc_yaml.read_text()
        old = next(ln for ln in text.splitlines() if "cmd:" in ln and "evaluate" in ln)
        dvc_yaml.write_text(text.replace(old, f"    cmd: {json.dumps(command)}"))
    project.git("commit", "-qam", "Break the evaluation")


def test_a_webhook_hears_of_a_failure_whose_log_is_full_of_markup(project, slack):
    # ~1,000 characters that escaping triples: past Slack's 3,000 once escaped.
    log = (
        "".join(f"E   assert <Tensor {i}> >= 0 && ok\n" for i in range(120))
        + "``` fence\nlast line\n"
    )
    break_with_log(project, log)

    run = project.inv("metrics", env=slack.webhook_env())

    assert_one_line_error(run, "repro failed")
    assert "! Slack" not in run.stdout  # sent, and Slack took it
    (posted,) = slack.calls("webhook")
    assert not posted.faulted
    section = posted.body["blocks"][-1]["text"]["text"]
    assert len(section) <= 3000
    assert section.startswith("```") and section.endswith("```")
    assert section.count("```") == 2  # the log's own fence cannot close ours
    assert "last line" in section and "&lt;Tensor 119&gt; &gt;= 0 &amp;&amp; ok" in section
    assert "<Tensor" not in section


def test_no_command_or_reason_can_mention_anyone(project, slack):
    cmd = "python evaluate.py '<!here>' && echo `<@U0BOSS>`"
    break_with_log(project, "nope\n", command=cmd)

    run = project.inv("metrics", env=slack.web_api_env())

    assert_one_line_error(run, "repro failed")
    for request in slack.requests:
        for text in (request.text, request.blocks_text):
            assert "<!here>" not in text and "<@U0BOSS>" not in text
    (update,) = slack.calls("chat.update")
    assert "&lt;!here&gt;" in update.text or "&lt;!here&gt;" in update.blocks_text


def test_a_message_slack_will_not_take_in_blocks_is_sent_as_text(project, slack):
    slack.fail("chat.update", body={"ok": False, "error": "invalid_blocks"})

    run = project.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    first, second = slack.calls("chat.update")
    assert first.faulted and "blocks" in first.body
    assert second.text.startswith("metrics succeeded after ") and not second.body.get("blocks")
    (warning,) = [ln for ln in run.stdout.splitlines() if ln.startswith("! Slack")]
    assert "invalid_blocks" in warning and "connection" not in warning


@pytest.mark.parametrize(
    "api_url", ["http://proxyuser:pr0xyPassw0rd@127.0.0.1:9/api/", "proxyuser:pr0xyPassw0rd@host"]
)
def test_a_proxy_password_in_slack_api_url_is_never_printed(project, api_url):
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": "#ml-runs", "SLACK_API_URL": api_url}

    run = project.inv("notify.test", env=env)

    assert run.returncode != 0
    assert "[redacted]@" in run.output
    assert "pr0xyPassw0rd" not in run.output and "proxyuser" not in run.output


OWN_NOTIFIER = """

import json, os
from dvc_invoke import notifiers


class Journal:
    \"\"\"A team's own notifier: one JSON line per event, where the project's config says.\"\"\"

    name = "journal"
    remote = True

    def __init__(self, c):
        self.path = c.config.journal.path

    def _write(self, **event):
        with open(self.path, "a") as f:
            f.write(json.dumps(event) + "\\n")

    def start(self, report):
        self._write(pipeline=report.pipeline, status="started")
        return None

    def report(self, report):
        self._write(pipeline=report.pipeline, status=report.status, reason=report.reason)

    def send(self, text):
        self._write(text=text)
        return True

    def check(self):
        return "the journal is writable"


notifiers.register(Journal)
ns.configure({"journal": {"path": os.path.join(os.path.dirname(__file__), "..", "journal.jsonl")}})
"""


def test_a_notifier_of_the_projects_own_hears_runs_and_lost_runs(project):
    with (project.path / "tasks.py").open("a") as f:
        f.write(OWN_NOTIFIER)
    project.git("commit", "-qam", "Tell the journal too")
    journal = project.path.parent / "journal.jsonl"

    run = project.inv("metrics")
    assert run.returncode == 0, run.output
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["status"] for e in events] == ["started", "succeeded"]

    # A run killed outright is found lost by `python -m dvc_invoke settle`,
    # which loads the project's tasks.py and config as `inv` does.
    before = project.stages_run().count("predict")
    started = project.inv("metrics", "--detach", env={"SANDBOX_SLOW": "predict:30"})
    assert started.returncode == 0, started.output
    wait_for(lambda: project.stages_run().count("predict") > before, 60, "predict to start")
    (running,) = [r for r in records(project) if r["status"] == "started"]
    os.kill(running["pid"], signal.SIGKILL)

    def journal_says():
        return [json.loads(line)["status"] for line in journal.read_text().splitlines()]

    wait_for(lambda: journal_says()[-1] == "lost", 30, "the journal to hear of the lost run")
    assert latest(project)["status"] == "lost"
