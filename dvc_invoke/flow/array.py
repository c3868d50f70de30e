"""A sweep on SLURM (``inv exp.run --slurm``): SLURM's own job array, one
experiment per task, then a collector job; no queue of our own, not DVC's.

In the foreground, the run's checks, then the grid expanded as DVC expands it
(`prepare`) and one ``sbatch --array=0-(N-1)%K`` (`dvc_invoke.engines.slurm`).
Array task *i* (`task_main`) clones the commit into a folder of its own under
the project (``.dvc/tmp``), sharing the project's DVC cache and remote, so no
two experiments ever share a DVC lock; runs ``dvc exp run -S ... --name NAME-i``
there and ``dvc exp push``es its result, checked on origin (the ref) and on
the DVC remote (``dvc status --cloud``). The collector (``afterany`` on the
array; the same ``inv`` line, adopting the record) fetches them from origin
(``dvc exp pull``), reads each task's end in SLURM's words, and ends the sweep
as one on DVC's queue ends: the ranked table, Slack, the record (`collect`).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.dvc import experiments as dvcexp
from dvc_invoke.adapters.dvc import remote as dvc_remote
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.config.pipelines import slug
from dvc_invoke.engines import slurm
from dvc_invoke.engines.ssh_agent import tell_started
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow.plan import repro_targets
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import Store, read_tail

if TYPE_CHECKING:
    from dvc_invoke.flow.launch import Prepared

# The line an array task ends with: what the collector tells of it.
MARK = "dvc-invoke sweep-task:"
MARK_RE = re.compile(rf"^{re.escape(MARK)} (\S+) (shared|failed at (\S+): (.*))$", re.MULTILINE)


def prepare(ws: Workspace, ready: Prepared, sweep: dict[str, Any], exp_name: str | None) -> None:
    """What the array's tasks need, into the sweep's record before it is
    submitted: each experiment's ``-S`` values and name, the commit, where to
    share it (the git remote's name: its URL, credentials and all, is read by
    each task, never recorded), the DVC cache and remote to use. Experiments of
    those names on this commit, here or on the remote, are refused."""
    from dvc_invoke.adapters.dvc.model import by_stage

    sets = sweep["sets"]
    grid = dvcexp.grid(sets)
    upstream = ready.state.upstream or ""
    remote = upstream.split("/", 1)[0] if "/" in upstream else "origin"
    if not ws.probe(f"git remote get-url {quote_all([remote])}").stdout.strip():
        raise DvcInvokeError(
            f"no git remote {remote}: the array's tasks share their experiments there",
            step="guards",
        )
    names = fixed_names(
        ws, ready.plan.pipeline.name, exp_name, len(grid), ready.state.commit, remote
    )
    plan, checked = ready.plan, ready.plan.remote
    restore = [r for r in plan.graph.restore if r not in plan.pull]
    sweep.update(
        grid=grid,
        names=names,
        commit=ready.state.commit,
        git_remote=remote,
        # Where the DVC project is in the git repository (`dvc init --subdir`).
        prefix=ws.git.prefix,
        cache=dvcexp.cache_dir(ws.root),
        dvc_remote=(
            {"name": checked.name, "path": checked.path}
            if checked is not None and checked.name and checked.path
            else None
        ),
        pull=by_stage(plan.graph.tracked, plan.pull + restore),
        targets=repro_targets(plan),
        # The project's settings its tasks run with (they load no tasks.py).
        settings={
            "dvc": ws.settings.dvc,
            "retries": ws.settings.retries,
            "retry_delay": ws.settings.retry_delay,
        },
    )


def fixed_names(
    ws: Workspace, pipeline: str, exp_name: str | None, n: int, commit: str | None, remote: str
) -> list[str]:
    """The names of a sweep's ``n`` experiments, fixed before any runs (``NAME-i``,
    or ``PIPELINE-xxxx-i``); names on this commit, here or on ``remote``, are
    refused: a push of them would be refused, and `dvc exp pull` of them here."""
    base = exp_name or f"{slug(pipeline)}-{secrets.token_hex(2)}"
    names = [f"{base}-{i}" for i in range(1, n + 1)]
    found = ws.git.experiments(remote, step="guards") + ws.git.experiments()
    taken = {name for base_rev, name in found if base_rev == commit}
    clash = [name for name in names if name in taken]
    if clash:
        raise DvcInvokeError(
            f"experiments named {', '.join(clash[:3])} exist on this commit already (here or"
            f" on {remote}): choose another --name; nothing was started",
            step="guards",
        )
    return names


def planned(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """The sweep's experiments as its record starts them: queued, each with its
    array task and ``-S`` values (the table's params, also for one never run)."""
    return [
        {"name": name, "state": dvcexp.QUEUED, "params": _params(sets), "task": i}
        for i, (name, sets) in enumerate(zip(sweep["names"], sweep["grid"], strict=True))
    ]


def _params(sets: list[str]) -> dict[str, Any]:
    found = {}
    for value in sets:
        left, _, said = value.lstrip("+").partition("=")
        path, _, key = left.rpartition(":")
        try:
            found[f"{path or dvcexp.DEFAULT_PARAMS}:{key}"] = yaml.safe_load(said)
        except yaml.YAMLError:
            found[f"{path or dvcexp.DEFAULT_PARAMS}:{key}"] = said
    return found


def told(report: RunReport) -> None:
    """Where the submitted sweep is, and how to follow or cancel it; its log
    begins with the same (the collector's lines follow when it runs)."""
    sweep = report.sweep or {}
    n = len(sweep.get("names") or ())
    if report.log:
        with open(report.log, "a") as log:
            log.write(
                f"{report.pipeline} sweep submitted to SLURM: array {sweep.get('array')}"
                f" ({n} experiments), collected by job {report.job} when the array ended;"
                f" each experiment's log: {tasknames.command('repro.logs')} --run {report.id}"
                " --exp NAME\n"
            )
    console.result(
        True,
        f"{report.pipeline} sweep submitted to SLURM: array {sweep.get('array')}"
        f" ({n} experiments, {sweep.get('jobs')} at once), collected by job {report.job};"
        f" run {report.id}",
    )
    console.info(f"status:  {tasknames.command('repro.status')}")
    first = (sweep.get("names") or ["NAME"])[0]
    console.info(f"logs:    {tasknames.command('repro.logs')} --run {report.id} --exp {first}")
    console.info(f"cancel:  {tasknames.cancel(report.id or '')}")
    # Submitted from a login host over ssh: the laptop reads its id from this line.
    tell_started(report.id or "", report.job)


# -- an array task -----------------------------------------------------------
def clone_path(store: Store, run_id: str, name: str) -> Path:
    """Where experiment ``name`` of sweep ``run_id`` runs: a clone of its own."""
    return store.dir / "sweeps" / run_id / name


def task_main(args: list[str]) -> int:
    """``python -m dvc_invoke sweep-task ROOT RUN_ID``, in SLURM array task
    ``SLURM_ARRAY_TASK_ID``: that experiment, run and shared; its end said in one
    `MARK` line (what the collector tells), exit 1 when it failed."""

    if len(args) != 3 or not os.environ.get("SLURM_ARRAY_TASK_ID", "").isdigit():
        print(
            "usage: python -m dvc_invoke sweep-task ROOT RUN_ID (in a SLURM array task)",
            file=sys.stderr,
        )
        return 2
    root, run_id, index = Path(args[1]), args[2], int(os.environ["SLURM_ARRAY_TASK_ID"])
    name = f"task {index}"
    try:
        store = Store(root)
        report = store.load(run_id)
        sweep = report.sweep or {}
        name, sets = sweep["names"][index], sweep["grid"][index]
        clone = clone_path(store, run_id, name)
        # SLURM started this task again (a requeue): an experiment it shared whole
        # the first time stays as it is; else it is made again, pushed over any first.
        again = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
        log = slurm.task_log(report, index)
        if again and _shared_before(Workspace(_context(sweep), root), sweep, name, log):
            print(f"{MARK} {name} shared", flush=True)
            return 0
        _experiment(_context(sweep), root, clone, sweep, name, sets, again=again)
    except DvcInvokeError as exc:
        print(f"{MARK} {name} failed at {exc.step or 'run'}: {exc.reason}", flush=True)
        return 1
    except (OSError, LookupError, ValueError) as exc:  # the record gone, or not a sweep's
        print(f"{MARK} {name} failed at clone: no sweep {run_id} to run ({exc})", flush=True)
        return 1
    shutil.rmtree(clone, ignore_errors=True)
    print(f"{MARK} {name} shared", flush=True)
    return 0


def _context(sweep: dict[str, Any]) -> Any:
    """An invoke context with the project's settings the sweep recorded."""
    from invoke.config import Config
    from invoke.context import Context

    given = {k: v for k, v in (sweep.get("settings") or {}).items() if v not in (None, "")}
    return Context(config=Config(overrides={"dvc_invoke": given}))


def _shared_before(here: Workspace, sweep: dict[str, Any], name: str, log: str) -> bool:
    """Whether a first try of this task shared ``name`` whole: its end said so in
    the task's log (kept, appended), and the git remote holds it."""
    ended = MARK_RE.findall(read_tail(log, 64000) or "")
    if not any(n == name and what == "shared" for n, what, _, _ in ended):
        return False
    remote = sweep["git_remote"]
    return (sweep["commit"], name) in set(here.git.experiments(remote, step="share"))


def _experiment(
    c: Any,
    root: Path,
    clone: Path,
    sweep: dict[str, Any],
    name: str,
    sets: list[str],
    *,
    again: bool,
) -> None:
    here = Workspace(c, root)
    shutil.rmtree(clone, ignore_errors=True)
    clone.parent.mkdir(parents=True, exist_ok=True)
    remote, commit, prefix = sweep["git_remote"], sweep["commit"], sweep.get("prefix") or ""
    top = here.probe("git rev-parse --show-toplevel").stdout.strip() or str(root)
    here.act(f"git clone -q --no-checkout -o {quote_all([remote, top, str(clone)])}", step="clone")
    _point_at_remote(here, clone, remote)  # before the checkout: git-lfs fetches from it
    repo = Workspace(c, clone)
    repo.act(f"git checkout -q --detach {quote_all([commit])}", step="clone")
    ws = Workspace(c, clone / prefix) if prefix else repo
    local = root / ".dvc" / "config.local"
    if local.is_file():  # the project's own settings (credentials), paths made absolute below
        shutil.copyfile(local, ws.root / ".dvc" / "config.local")
    dvc = ws.dvc
    ws.act(f"{dvc} cache dir --local {quote_all([sweep['cache']])}", step="clone")
    if sweep.get("dvc_remote"):
        said = sweep["dvc_remote"]
        ws.act(
            f"{dvc} remote modify --local {quote_all([said['name'], 'url', said['path']])}",
            step="clone",
        )
    if sweep.get("pull"):
        ws.act(f"{dvc} pull --allow-missing {quote_all(sweep['pull'])}", step="pull", network=True)
    words = [w for value in sets for w in ("-S", value)] + ["--name", name]
    ws.act(f"{dvc} exp run {quote_all(words + list(sweep.get('targets') or []))}", step="run")
    force = ["--force"] if again else []
    push = f"{dvc} exp push {quote_all([*force, remote, name])}"
    ws.act(push, step="share", network=True)
    if (commit, name) not in set(ws.git.experiments(remote, step="share")):
        raise DvcInvokeError(f"{remote} does not hold {name} after dvc exp push", step="share")
    # The experiment's own outputs (its pipeline's), as a run checks its push.
    lacking = dvc_remote.lacking(ws, list(sweep.get("targets") or []), step="share")
    if lacking:
        raise DvcInvokeError(
            f"the DVC remote lacks {', '.join(sorted(lacking)[:3])} of {name} after dvc exp push",
            step="share",
        )


def _point_at_remote(here: Workspace, clone: Path, remote: str) -> None:
    """The clone's ``remote`` is the project's: its URL read here, set there,
    neither ever printed (a URL may carry a token). A relative path is the
    project's, made absolute."""
    said = here.probe(f"git remote get-url {quote_all([remote])}")
    url = said.stdout.strip() if said.ok else ""
    if url and "://" not in url and not re.match(r"^[^/]+:", url):  # a local path
        top = here.probe("git rev-parse --show-toplevel").stdout.strip()
        url = os.path.normpath(os.path.join(top or str(here.root), url))
    done = here.c.run(
        f"git -C {quote_all([str(clone)])} remote set-url {quote_all([remote, url])}",
        hide=True,
        warn=True,
        in_stream=False,
    )
    if not url or done is None or done.failed:
        raise DvcInvokeError(f"could not give the clone the git remote {remote}", step="clone")


# -- the collector -------------------------------------------------------------
def pull_shared(ws: Workspace, report: RunReport) -> list[str]:
    """The sweep's experiments its tasks shared, fetched from the git remote
    (``dvc exp pull``: refs and data); their names."""
    sweep = report.sweep or {}
    remote = sweep.get("git_remote") or "origin"
    there = {
        n for base, n in ws.git.experiments(remote, step="collect") if base == sweep.get("commit")
    }
    mine = [e["name"] for e in report.experiments if e["name"] in there]
    if mine:
        # Refs only: its tasks wrote the data into this project's cache (shared).
        pull = f"{ws.dvc} exp pull --no-cache {quote_all([remote, *mine])}"
        ws.act(pull, step="collect", resume=pull, network=True, in_process=False)
        sweep["shared"] = f"{len(mine)} pushed to {remote} by their SLURM tasks (dvc exp push)"
    return mine


def ended(
    report: RunReport,
    e: dict[str, Any],
    exp: dvcexp.Experiment | None,
    task: dict[str, str] | None,
    clone: Path | None = None,
) -> None:
    """Experiment ``e``'s end: DVC's result when the git remote has it, else its
    task's end as SLURM and the task's last line say it. The clone of an
    experiment that failed is kept to look into; others are removed."""
    if exp is not None and exp.state == dvcexp.SUCCESS:
        e.update(state=dvcexp.SUCCESS, metrics=exp.metrics)
        return
    state = (task or {}).get("JobState", "")
    tail = read_tail(e.get("log"), 4000) or ""
    said = MARK_RE.findall(tail)
    e["log_tail"] = tail
    if state in slurm.TASK_ENDS:
        word, why = slurm.TASK_ENDS[state]
        e.update(state=word, step="slurm", reason=f"{why} (SLURM: {state})")
    elif said and said[-1][2]:
        _, _, step, why = said[-1]
        e.update(state=dvcexp.FAILED, step=dvcexp.failed_stage(tail) or step, reason=why)
    elif state == "FAILED":
        exit_code = (task or {}).get("ExitCode", "?")
        e.update(state=dvcexp.FAILED, step="run", reason=f"its task failed (exit {exit_code})")
    elif not state and not (e.get("log") and os.path.exists(e["log"])):
        # Measured (SLURM 22.05): a pending array task that is scancel'd leaves
        # no trace in the array's record, and it never wrote its log.
        e.update(state="cancelled", reason="SLURM dropped its task before it started (scancel)")
    elif not state:
        e.update(state=dvcexp.LOST, step="slurm", reason="SLURM no longer knows its task")
    else:
        e.update(
            state=dvcexp.LOST,
            step="share",
            reason=f"its task ended {state.lower()}, but the git remote holds no {e['name']}",
        )
    if e["state"] == "cancelled":
        e.update(step=None, log_tail=None)
    else:
        logs = f"{tasknames.command('repro.logs')} --run {report.id} --exp {e['name']}"
        kept = clone is not None and e["state"] == dvcexp.FAILED and clone.is_dir()
        e["reason"] += f" (its log: {logs}" + (f"; its clone: {clone})" if kept else ")")
    if clone is not None and e["state"] != dvcexp.FAILED:
        shutil.rmtree(clone, ignore_errors=True)
