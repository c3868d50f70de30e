"""The shares of a sweep spread over hosts: which experiments each runs, what it tells."""

from __future__ import annotations

import pytest

from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow import spread


@pytest.mark.parametrize(("text", "part"), [("1/1", (1, 1)), ("2/3", (2, 3)), ("10/12", (10, 12))])
def test_a_share_is_i_of_k(text, part):
    assert spread.parse_part(text) == part


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", " 1/2", ""])
def test_a_share_that_is_not_one_is_one_line(text):
    with pytest.raises(DvcInvokeError, match=r"--part .*: say i/k") as said:
        spread.parse_part(text)
    assert said.value.step == "guards"


def test_the_grid_is_dealt_round_the_shares_each_experiment_once():
    shares = [spread.mine(7, (i, 3)) for i in (1, 2, 3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(j for share in shares for j in share) == list(range(7))
    assert spread.mine(2, (3, 3)) == []  # more shares than experiments: none for the last


def test_a_share_tells_its_ends_and_calls_what_did_not_end_cancelled():
    told = spread._told(
        {
            "name": "g-2",
            "state": "running",
            "pid": 4242,
            "log": "/somewhere/on/the/host.log",
            "params": {"params.yaml:lr": 0.1},
            "log_tail": "x" * 5000 + "ERROR: diverged",
        }
    )
    assert told["state"] == "cancelled"
    assert "pid" not in told and "log" not in told  # the host's own, meaningless elsewhere
    assert len(told["log_tail"]) == spread.TAIL and told["log_tail"].endswith("diverged")
    assert spread._told({"name": "g-1", "state": "success", "metrics": {"m": 1}}) == {
        "name": "g-1",
        "state": "success",
        "metrics": {"m": 1},
    }


def test_the_whole_table_is_in_the_grid_order_whoever_told_each_share():
    shares = {
        2: {"experiments": [{"name": "g-2"}, {"name": "g-4"}]},
        1: {"experiments": [{"name": "g-1"}, {"name": "g-3"}]},
    }
    merged = spread._merged(["g-1", "g-2", "g-3", "g-4", "g-5"], shares)
    assert [e["name"] for e in merged] == ["g-1", "g-2", "g-3", "g-4"]
