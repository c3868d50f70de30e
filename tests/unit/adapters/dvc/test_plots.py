"""The plots a run changed: drawn to PNG into its Slack thread, DVC's HTML report on
the console, a link-free summary for a webhook. On DVC's get-started layout, whose
evaluate stage writes eval/plots/errors.json, declared at the top level."""

from __future__ import annotations

import pytest

from dvc_invoke.adapters.dvc import plots

PNG = b"\x89PNG\r\n\x1a\n"


def vega(points):
    return {
        "type": "vega",
        "revisions": ["workspace", "abc1234"],
        "content": {"data": {"values": points}},
    }


def test_a_vega_plot_differs_when_one_revisions_points_do():
    same = [{"x": 1, "y": 2, "rev": "workspace"}, {"x": 1, "y": 2, "rev": "abc1234"}]
    moved = [{"x": 1, "y": 3, "rev": "workspace"}, {"x": 1, "y": 2, "rev": "abc1234"}]
    new = [{"x": 1, "y": 3, "rev": "workspace"}]
    gone = [{"x": 1, "y": 3, "rev": "abc1234"}]
    assert not plots._differs([vega(same)], "abc1234")
    assert plots._differs([vega(moved)], "abc1234")
    assert plots._differs([vega(new)], "abc1234")
    assert not plots._differs([vega(gone)], "abc1234")


@pytest.mark.parametrize(("before", "after", "differs"), [(b"a", b"a", False), (b"a", b"b", True)])
def test_an_image_plot_differs_when_its_bytes_do(tmp_path, before, after, differs):
    (tmp_path / "old.png").write_bytes(before)
    (tmp_path / "new.png").write_bytes(after)
    renders = [
        {"type": "image", "revisions": ["workspace"], "url": str(tmp_path / "new.png")},
        {"type": "image", "revisions": ["abc1234"], "url": str(tmp_path / "old.png")},
    ]
    assert plots._differs(renders, "abc1234") is differs
    assert plots._differs(renders[:1], "abc1234")  # a new image


def test_a_changed_vega_plot_is_drawn_to_png(tmp_path):
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": [{"x": 1, "y": 2, "rev": "workspace"}]},
        "mark": "line",
        "encoding": {"x": {"field": "x"}, "y": {"field": "y"}, "color": {"field": "rev"}},
    }
    png = plots._draw("Loss / epoch", [{"type": "vega", "content": spec}], tmp_path)
    assert png is not None and png.endswith("Loss_epoch.png")
    assert open(png, "rb").read().startswith(PNG)
