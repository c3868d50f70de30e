"""The plots a run changed: drawn to PNG into its Slack thread, DVC's HTML report on
the console, a link-free summary for a webhook. On DVC's get-started layout, whose
evaluate stage writes eval/plots/errors.json, declared at the top level."""

from __future__ import annotations

from helpers import assert_fresh_clone_up_to_date, latest

PNG = b"\x89PNG\r\n\x1a\n"


def other_errors(project):
    """An evaluation whose errors differ: the plot changes, the model does not."""
    script = project.path / "src" / "evaluate.py"
    script.write_text(script.read_text().replace("errors = [abs(", "errors = [0.5 + abs("))
    project.git("commit", "-qam", "Errors with an offset")


def test_a_run_that_changes_a_plot_posts_it_as_a_png_in_its_thread(canonical, slack):
    other_errors(canonical)

    run = canonical.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    (started,) = slack.calls("chat.postMessage")
    (shared,) = slack.files
    assert shared.title == "eval/plots/errors.json"
    assert shared.data is not None and shared.data.startswith(PNG)
    assert (shared.channel, shared.thread_ts) == ("C0RUNS", "1700000000.000001")
    assert "metrics: plots changed: eval/plots/errors.json" in (shared.comment or "")
    (update,) = slack.calls("chat.update")
    assert "plots changed: eval/plots/errors.json" in update.blocks_text
    # The console names the plots and DVC's HTML report, which is there.
    assert "plots changed: eval/plots/errors.json" in run.stdout
    html = run.stdout.split("plots report: ", 1)[1].split()[0]
    assert html.endswith("index.html") and "errors.json" in open(html).read()
    record = latest(canonical)
    assert record["plots"][0]["id"] == "eval/plots/errors.json"
    # Nothing of it lands in the workspace (`dvc plots diff --json` writes dvc_plots/ there).
    assert canonical.sh("git status --porcelain") == ""
    assert_fresh_clone_up_to_date(canonical)


def test_a_run_that_changes_no_plot_posts_no_picture(canonical, slack):
    run = canonical.inv("metrics", env=slack.web_api_env())  # forced, same model, same errors

    assert run.returncode == 0, run.output
    assert slack.files == [] and slack.calls("files.getUploadURLExternal") == []
    assert "plots changed" not in run.stdout
    assert latest(canonical)["plots"] == []


def test_a_webhook_gets_the_names_of_the_changed_plots_and_no_picture(canonical, slack):
    other_errors(canonical)

    run = canonical.inv("metrics", env=slack.webhook_env())

    assert run.returncode == 0, run.output
    (posted,) = slack.calls("webhook")
    assert "plots changed: eval/plots/errors.json" in posted.blocks_text
    assert "http" not in posted.blocks_text and "file:" not in posted.blocks_text
    # Nobody is shown pictures: none drawn, and no advice to install the renderer.
    assert latest(canonical)["plots"][0]["png"] is None
    assert "not drawn" not in run.output


def test_an_app_without_files_write_gets_one_warning_and_the_run_its_message(canonical, slack):
    other_errors(canonical)
    slack.fail(
        "files.getUploadURLExternal",
        body={"ok": False, "error": "missing_scope", "needed": "files:write"},
    )

    run = canonical.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert run.output.count("Slack plot upload failed") == 1
    assert "the Slack app needs the files:write scope" in run.output
    assert slack.files == []
    (update,) = slack.calls("chat.update")
    assert update.text.startswith("metrics succeeded")


def test_plots_can_be_left_out(canonical, slack):
    other_errors(canonical)
    (canonical.path / "invoke.yaml").write_text("dvc_invoke:\n  plots: false\n")

    run = canonical.inv("metrics", env=slack.web_api_env())

    assert run.returncode == 0, run.output
    assert "plots changed" not in run.stdout
    assert latest(canonical)["plots"] == [] and slack.files == []
