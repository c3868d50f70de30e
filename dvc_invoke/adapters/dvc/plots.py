"""The plots a run changed, for eyes rather than for reading.

``dvc plots diff`` between the run's first commit and the workspace it left
says which plots differ; each one that does is drawn to PNG (Vega-Lite
plots with vl-convert, the ``plots`` extra; image plots as they are) for the
run's Slack thread, and DVC's own HTML report of them is written beside the
run's log. Nothing here fails a run: a plot that cannot be drawn is named
instead, and the run is told of as always.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from dvc_invoke import console
from dvc_invoke.adapters.shell import Workspace, quote_all

# The rev DVC gives the workspace in a `plots diff` with one revision.
WORKSPACE = "workspace"


def changed(
    ws: Workspace,
    plot_files: list[str],
    base: str,
    folder: Path,
    *,
    draw: bool = True,
    new: str | None = None,
) -> dict[str, Any]:
    """The plots that differ between ``base`` and the workspace (or revision ``new``:
    an experiment's name), drawn into ``folder``.

    Returns ``{"plots": [{"id", "png"}], "html": path}`` (``png`` None where a
    plot could not be drawn, or with ``draw`` False: nobody is shown pictures);
    empty when the pipeline has no plots or none changed. ``dvc plots diff``
    runs only for a pipeline with plots.
    """
    if not plot_files:
        return {}
    # Its shortest unambiguous name: the label of its side in the pictures.
    rev = ws.git.short_name(base) or base
    revs = quote_all([rev, *([new] if new else [])])
    res = ws.probe(f"{ws.dvc} plots diff {revs} --json -o {quote_all([str(folder)])}")
    try:
        data = json.loads(res.stdout)["data"] if res.ok else None
    except (ValueError, KeyError, TypeError):
        data = None
    if data is None:
        why = (res.stderr.strip().splitlines() or ["no answer"])[-1]
        console.warn(f"could not compare the run's plots (dvc plots diff: {why})")
        return {}
    found = [(plot_id, renders) for plot_id, renders in data.items() if _differs(renders, rev, new)]
    if not found:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    drawn = [
        {"id": plot_id, "png": _draw(plot_id, renders, folder) if draw else None}
        for plot_id, renders in found
    ]
    missing = [d["id"] for d in drawn if d["png"] is None]
    if draw and missing and not _can_draw():
        console.warn(
            f"{len(missing)} changed plot(s) not drawn: install dvc-invoke[plots] (vl-convert)"
        )
    html = folder / "html"
    res = ws.probe(f"{ws.dvc} plots diff {revs} -o {quote_all([str(html)])}")
    report = html / "index.html"
    return {"plots": drawn, "html": str(report) if res.ok and report.is_file() else None}


def _differs(renders: list[dict[str, Any]], rev: str, new: str | None = None) -> bool:
    """Whether a plot's data (or image) at ``rev`` is not the workspace's (``new``'s)."""
    now = new or WORKSPACE
    images = {r.get("revisions", [None])[0]: r.get("url") for r in renders if r["type"] == "image"}
    if images:
        before, after = images.get(rev), images.get(now)
        if after is None:
            return False  # gone in the workspace: nothing to show
        return before is None or Path(before).read_bytes() != Path(after).read_bytes()
    by_rev: dict[str, list[Any]] = defaultdict(list)
    for r in renders:
        if r["type"] != "vega":
            continue
        for point in r["content"].get("data", {}).get("values", []):
            point = dict(point)
            by_rev[str(point.pop("rev", ""))].append(point)
    return by_rev.get(now) is not None and by_rev.get(now) != by_rev.get(rev)


def _slug(plot_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", plot_id.removesuffix(".png")).strip("_.")
    return name or "plot"


def _can_draw() -> bool:
    import importlib.util

    return importlib.util.find_spec("vl_convert") is not None


def _draw(plot_id: str, renders: list[dict[str, Any]], folder: Path) -> str | None:
    """The plot as a PNG file in ``folder``; None where it cannot be drawn."""
    target = folder / f"{_slug(plot_id)}.png"
    for r in renders:
        if r["type"] == "image" and r.get("revisions") == [WORKSPACE]:
            shutil.copyfile(r["url"], target)
            return str(target)
    vega = [r for r in renders if r["type"] == "vega"]
    if not vega or not _can_draw():
        return None
    import vl_convert

    try:
        png = vl_convert.vegalite_to_png(vl_spec=vega[0]["content"], scale=2)
    except Exception as exc:  # noqa: BLE001 - a plot that will not draw is named instead
        console.warn(f"could not draw plot {plot_id}: {str(exc).splitlines()[0][:200]}")
        return None
    target.write_bytes(png)
    return str(target)
