"""The host's side of a run over SSH: ``python -m dvc_invoke host probe|checkout|release``.

Run in the host's checkout, these answer the laptop: what holds the checkout
and how many GPUs are in use (one JSON line), move the checkout to the
laptop's commit and reserve it for the run started next, or free it again.
A run started for the laptop tells its id in one machine-readable line
(`tell_started`, read back by `started`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.errors import DvcInvokeError

# `host checkout`'s exit code when a run holds the checkout or another start
# reserved it (EX_TEMPFAIL): nothing of ours to release; a group tries the next.
HOST_TAKEN = 75
# Set by the laptop on the command that starts a run on the host: the run then
# tells its id in one line, `STARTED` followed by a JSON object.
ENV_TELL = "DVC_INVOKE_TELL_STARTED"
STARTED = "dvc-invoke-started: "


class Taken(DvcInvokeError):
    """The host's checkout is a run's, or about to be: `HOST_TAKEN`."""

    exit_code = HOST_TAKEN


def started_line(run_id: str, job: str | None = None) -> str:
    """The line that tells the laptop which run started (and, under SLURM, its job)."""
    return STARTED + json.dumps({"run": run_id, "job": job}, sort_keys=True)


def tell_started(run_id: str, job: str | None = None) -> None:
    """Print `started_line` when the laptop asked for it (`ENV_TELL`); nothing otherwise."""
    if os.environ.get(ENV_TELL):
        print(started_line(run_id, job), flush=True)


def started(out: str) -> dict[str, Any] | None:
    """What the last `started_line` in ``out`` says (``run``, ``job``), or None."""
    for line in reversed(out.splitlines()):
        if line.startswith(STARTED):
            try:
                said = json.loads(line[len(STARTED) :])
            except ValueError:
                return None
            if isinstance(said, dict) and isinstance(said.get("run"), str) and said["run"]:
                return said
            return None
    return None


def _gpus() -> tuple[int | None, int]:
    """How many GPUs this host has (None: no nvidia-smi) and how many a process uses."""
    import shutil

    from invoke.context import Context

    smi = shutil.which("nvidia-smi") or (
        "/usr/local/nvidia/bin/nvidia-smi"
        if Path("/usr/local/nvidia/bin/nvidia-smi").exists()
        else None
    )
    if smi is None:
        return None, 0
    c = Context()
    gpus = c.run(
        f"{shlex.quote(smi)} --query-gpu=uuid --format=csv,noheader,nounits", hide=True, warn=True
    )
    apps = c.run(
        f"{shlex.quote(smi)} --query-compute-apps=gpu_uuid --format=csv,noheader,nounits",
        hide=True,
        warn=True,
    )
    if gpus is None or apps is None or gpus.failed or apps.failed:
        return None, 0
    return parse_gpus(gpus.stdout, apps.stdout)


def parse_gpus(gpus: str, apps: str) -> tuple[int, int]:
    """nvidia-smi's GPUs and compute processes (CSV): GPUs in all, GPUs in use."""
    uuids = {line.split(",")[0].strip() for line in gpus.splitlines() if line.strip()}
    used = {line.split(",")[0].strip() for line in apps.splitlines() if line.strip()}
    return len(uuids), len(uuids & used)


def _probe_here(ws: Workspace) -> dict[str, Any]:
    from dvc_invoke.engines import alive
    from dvc_invoke.runs.store import Store

    held = None
    store = Store(ws.root)
    for report in store.running():
        if alive(report):
            held = {"id": report.id or "", "pipeline": report.pipeline}
            break
    gpus, busy = _gpus()
    changed = ws.git.state(step="host").changed
    found: dict[str, Any] = {
        "held": held,
        "changed": changed or None,
        "gpus": gpus,
        "busy_gpus": busy,
        "reserved": store.reserved(),
    }
    if importlib.util.find_spec("dvc") is None:  # the run would die in the background
        found["missing"] = "dvc"
    return found


def _checkout_here(ws: Workspace, branch: str, commit: str) -> None:
    """Fetch, then put ``branch`` at ``commit`` (a fast-forward), refusing what would
    lose work. The checkout is reserved for the run started next, until it claims
    it: a second start meanwhile goes elsewhere."""
    from dvc_invoke.runs.store import Store

    store = Store(ws.root)
    with store.lock():
        said = _probe_here(ws)
        if said["held"] or said["reserved"] is not None:
            reason = (
                f"run {said['held']['id']} ({said['held']['pipeline']}) holds the checkout"
                if said["held"]
                else "a run is being started there"
            )
            raise Taken(reason, step="host")
        if said["changed"]:
            reason = f"the checkout has changes ({', '.join(said['changed'][:5])})"
            raise DvcInvokeError(reason, step="host")
        store.reserve()
    try:
        _move_to(ws, branch, commit)
    except BaseException:
        store.unreserve()
        raise


def _move_to(ws: Workspace, branch: str, commit: str) -> None:
    git = ws.git
    state = ws.git.state(step="host")
    remote = "origin"
    if state.branch:
        target = ws.git.upstream_target(state.branch)
        remote = target[0] if target else remote
    git.fetch(remote, step="host")
    if git.commit_of(commit) is None:
        raise DvcInvokeError(f"commit {commit[:7]} is not on {remote}", step="host")
    if git.has_branch(branch):
        git.checkout(branch, step="host")
    else:
        git.checkout_new(branch, commit, upstream=f"{remote}/{branch}", step="host")
    moved = git.try_fast_forward(commit)
    head = ws.git.head()
    if not moved or head != commit:
        raise DvcInvokeError(
            f"its {branch} is at {(head or '?')[:7]}, which {commit[:7]} does not fast-forward"
            f" (commits of its own, or yours are behind): bring the two in line first",
            step="host",
        )


def host_main(args: list[str]) -> int:
    """``python -m dvc_invoke host probe`` / ``host checkout BRANCH COMMIT``, in the checkout."""
    from invoke.context import Context

    try:
        ws = Workspace(Context())
        if args[:1] == ["probe"] and len(args) == 1:
            print(json.dumps(_probe_here(ws)))
            return 0
        if args[:1] == ["checkout"] and len(args) == 3:
            _checkout_here(ws, args[1], args[2])
            return 0
        if args[:1] == ["release"] and len(args) == 1:
            from dvc_invoke.runs.store import Store

            Store(ws.root).unreserve()
            return 0
    except DvcInvokeError as exc:
        print(exc.reason, file=sys.stderr)
        return HOST_TAKEN if isinstance(exc, Taken) else 1
    print(
        "usage: python -m dvc_invoke host probe | host checkout BRANCH COMMIT | host release",
        file=sys.stderr,
    )
    return 2
