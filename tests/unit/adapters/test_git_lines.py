"""The git adapter's lines for another host: a clone, and a URL without credentials."""

from __future__ import annotations

from dvc_invoke.adapters.git import clone_line, without_credentials


def test_a_token_in_the_upstream_url_never_reaches_the_host():
    assert (
        without_credentials("https://oauth2:glpat-SECRET@gitlab.example/ml/p.git")
        == "https://gitlab.example/ml/p.git"
    )
    assert without_credentials("git@github.com:ml/p.git") == "git@github.com:ml/p.git"
    assert without_credentials("ssh://me@host:22/p.git") == "ssh://me@host:22/p.git"


def test_a_clone_quotes_the_url_and_takes_the_folder_as_a_shell_word():
    assert (
        clone_line("/srv/my repo.git", '"$HOME"/p') == "git clone -q '/srv/my repo.git' \"$HOME\"/p"
    )
