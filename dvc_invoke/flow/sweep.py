"""A sweep of experiments (``inv exp.run``): a run of its own, on DVC's own queue.

The same foreground checks as a run (clean workspace, HEAD pushed, the DVC
remote, Slack), the inputs pulled, then the experiments queued by ``dvc exp
run --queue -S ...`` (DVC's grammar, grids included) and run by DVC's workers
(``dvc queue start -j N``). The sweep watches them through ``dvc exp show
--json`` (DVC's state, the worker's pid, its log), records each experiment as
it ends, marks lost an experiment whose process died while DVC still calls it
running, and at the end ranks them, shares them (``dvc exp push``) and tells
the team: one table on the console and on Slack. Cancelled (``repro.cancel``,
Ctrl-C), the queued ones are removed and the running ones killed through DVC's
queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import time
from typing import IO, Any

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.dvc import experiments as dvcexp
from dvc_invoke.adapters.gpus import choose
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.config.pipelines import Pipeline
from dvc_invoke.engines.local import marked, own_group
from dvc_invoke.errors import Cancelled, DvcInvokeError
from dvc_invoke.flow import array, notifiers, spread
from dvc_invoke.flow.context import RunContext
from dvc_invoke.flow.interrupts import Interrupts
from dvc_invoke.flow.launch import Prepared, Request, prepare, prune, started, tell_detached
from dvc_invoke.flow.plan import Plan, repro_targets
from dvc_invoke.flow.steps import pull
from dvc_invoke.runs import sweep as sweeps
from dvc_invoke.runs.record import RunReport
from dvc_invoke.runs.store import ENV_RUN, Store, read_tail

POLL = 0.2  # seconds between looks at DVC's queue folder (a stat or two)
SHOW_EVERY = 10.0  # seconds between `dvc exp show` when nothing seemed to change
# Seconds an experiment's process is gone while DVC still calls it running: lost.
LOST_AFTER = 10.0
# Seconds with experiments queued, none running and no worker: DVC's workers died.
STALLED = 30.0
FAILED_RE = re.compile(r"failed to reproduce '([^']+)'")
ERROR_RE = re.compile(r"^ERROR: (.+)$", re.MULTILINE)


def sweep_command(
    name: str,
    sets: list[str],
    *,
    jobs: int,
    exp_name: str | None,
    share: bool,
    gpus: str | None = None,
    slurm: bool = False,
    part: str | None = None,
) -> str:
    """The ``inv exp.run`` line that runs this sweep again."""
    words = [tasknames.command("exp.run"), "--pipeline", name]
    for value in sets:
        words += ["-S", value]
    words += ["--jobs", str(jobs)] if jobs != 1 and not gpus else []
    words += ["--gpus", gpus] if gpus else []
    words += ["--name", exp_name] if exp_name else []
    words += [] if share else ["--no-share"]
    words += ["--slurm"] if slurm else []
    words += ["--part", part] if part else []
    return " ".join([words[0], *map(shlex.quote, words[1:])])


def run(
    c: Any,
    name: str,
    sets: list[str],
    *,
    jobs: int = 1,
    exp_name: str | None = None,
    detach: bool = False,
    share: bool = True,
    skip: tuple[str, ...] | list[str] = (),
    gpus: str | None = None,
    host: str | None = None,
    slurm: bool = False,
    part: str | None = None,
) -> RunReport | None:
    """Sweep pipeline ``name`` over the ``-S`` values ``sets``; see the module.
    With ``host`` (a GPU host, or a group's first free one): the sweep runs
    there, detached, watched from here with ``--host``.
    With ``gpus`` (``all``: the free ones, or ``0,1,...``), one DVC worker per
    GPU, each pinned to its GPU (``CUDA_VISIBLE_DEVICES``).
    With ``slurm``: SLURM's job array, one experiment per task, ``jobs`` at once
    (`dvc_invoke.flow.array`).
    With ``host`` a group of several hosts, the grid spread over its free
    ones, each running its share ``part`` (`dvc_invoke.flow.spread`)."""
    if not sets:
        raise DvcInvokeError(
            "say which params to sweep: -S 'train.lr=0.001,0.01' (DVC's grammar; a grid"
            " of each -S with the others)",
            step="guards",
        )
    if jobs < 1:
        raise DvcInvokeError(f"--jobs {jobs}: at least 1 worker", step="guards")
    if exp_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", exp_name):
        raise DvcInvokeError(
            f"--name {exp_name!r}: letters, digits, '_', '.' and '-' only", step="guards"
        )
    if slurm and gpus:
        raise DvcInvokeError(
            "--gpus is for a box's own GPUs: on SLURM each task asks for its GPU"
            " (the pipeline's slurm: {gres: 'gpu:1'})",
            step="guards",
        )
    if slurm and not share:
        raise DvcInvokeError(
            "--no-share: a SLURM task's experiment reaches the sweep through the git remote"
            " (dvc exp push), so it is always shared",
            step="guards",
        )
    share_of = _refuse_part(part, exp_name, share, slurm)
    dvcexp.set_keys(sets)  # each one readable as DVC reads it
    command = sweep_command(
        name, sets, jobs=jobs, exp_name=exp_name, share=share, gpus=gpus, slurm=slurm, part=part
    )
    if host:  # the same sweep, detached on the GPU host (its checkout moved to HEAD)
        from dvc_invoke.config.pipelines import resolve
        from dvc_invoke.engines import ssh
        from dvc_invoke.flow.plan import plan

        ws = Workspace(c)
        # What the host would refuse, refused here: nothing is started.
        _refuse_unread(ws, plan(ws, resolve(c, ws.root, name)), sets)

        if not part and len(ssh.choose(c, host)) > 1:  # a group: the grid spread over it
            if not share or slurm:
                raise DvcInvokeError(
                    "--no-share: a sweep spread over hosts meets on the git remote"
                    " (dvc exp push), so it is always shared"
                    if not share
                    else f"--slurm with --host {host}: a group's hosts run the sweep on their"
                    " own DVC queues; for SLURM, name one login host (--host NAME --slurm)",
                    step="guards",
                )

            def command_for(base: str) -> str:
                return sweep_command(name, sets, jobs=jobs, exp_name=base, share=True, gpus=gpus)

            spread.start(
                c,
                name,
                sets,
                host,
                exp_name=exp_name,
                jobs=jobs,
                gpus=gpus,
                skip=list(skip),
                command_for=command_for,
            )
            return None
        # On a login host, --slurm submits the sweep there (start adds it, or --detach).
        words = [w for w in shlex.split(command)[1:] if w != "--slurm"]
        ssh.start(c, name, host, [*words, *_skips(skip)], slurm=slurm)
        return None
    described: dict[str, Any] = {"sets": list(sets), "jobs": jobs, "name": exp_name, "share": share}
    if share_of is not None:  # this host's share of a spread sweep: its experiments, named
        grid = dvcexp.grid(sets)
        described.update(
            part=list(share_of),
            grid=grid,
            names=[f"{exp_name}-{j}" for j in range(1, len(grid) + 1)],
        )
    request = Request(
        name, None, None, detach or slurm, command, tuple(skip), slurm, sweep=described
    )
    with RunContext(c) as ctx:
        collecting = _collecting(ctx.ws)
        if collecting:
            return _collect(ctx, request, collecting)
        ready = prepare(ctx, request)
        _refuse_unread(ctx.ws, ready.plan, sets)
        _refuse_unpushed(ready, command)
        ws, store = ctx.ws, Store(ctx.ws.root)
        if not ready.adopted:
            _refuse_others_queued(ctx.c, ws)
        if gpus and not ready.adopted:  # one worker per GPU (the record keeps which)
            # No more workers than experiments: a worker with none would idle.
            n = (
                len(spread.mine(len(described["grid"]), share_of))
                if share_of
                else len(dvcexp.grid(sets))
            )
            chosen = choose(ws, gpus)[: max(n, 1)]
            described["gpus"], described["jobs"] = chosen, len(chosen)
        if share_of is not None and not ready.adopted:  # the commit its refs are under
            described["commit"] = ready.state.commit
        if slurm and not ready.adopted:
            array.prepare(ws, ready, described, exp_name)
            described["planned"] = array.planned(described)
        if ws.dry:
            _dry(ws, ready, request, exp_name)
            return None
        if ready.adopted:
            report = store.adopt(ready.adopted, name, pgid=own_group(detached=True))
        else:
            report = started(ctx, request, ready, store)
            if slurm:  # its record holds its experiments (written with the submit)
                report = store.load(report.id)
                array.told(report)
                return report
            if detach:
                tell_detached(ready.plan.pipeline, report, slurm=False)
                return report
        with marked(report):  # DVC's workers carry the mark: a cancel finds them
            try:
                return Sweep(ws, ready, report, store).execute()
            finally:
                prune(ws, store)


def _collecting(ws: Workspace) -> str | None:
    """The SLURM sweep this process collects (its record's id), if it does."""
    run_id = os.environ.get(ENV_RUN)
    if not run_id:
        return None
    with contextlib.suppress(DvcInvokeError):
        sweep = Store(ws.root).load(run_id).sweep
        return run_id if sweep and sweep.get("array") else None
    return None


def _collect(ctx: RunContext, request: Request, run_id: str) -> RunReport:
    """The collector job of a SLURM sweep: none of the start's checks (edits,
    commits and pushes in the workspace since the submit change nothing of the
    sweep, made on its own commit in clones of its own), the experiments
    gathered, ranked and told."""
    from dvc_invoke.config.pipelines import resolve
    from dvc_invoke.flow.plan import plan

    c, ws, store = ctx.c, ctx.ws, Store(ctx.ws.root)
    os.environ.pop(ENV_RUN, None)
    p = resolve(c, ws.root, request.name)
    chain = notifiers.notifiers(c, ws.root, slack=p.slack, ends_with_reason=True)
    ready = Prepared(plan(ws, p), ws.git.state(), chain, run_id)
    report = store.adopt(run_id, p.name, pgid=own_group(detached=True))
    with marked(report):
        try:
            return Sweep(ws, ready, report, store).execute(collect=True)
        finally:
            prune(ws, store)


def _refuse_part(
    part: str | None, exp_name: str | None, share: bool, slurm: bool
) -> tuple[int, int] | None:
    """``--part i/k``: a share of a sweep spread over hosts, as the laptop starts it."""
    if part is None:
        return None
    share_of = spread.parse_part(part)
    if not exp_name or slurm or not share:
        raise DvcInvokeError(
            f"--part {part}: a share of a sweep spread over hosts takes --name, and is"
            " shared (no --no-share), on DVC's queue (no --slurm)",
            step="guards",
        )
    return share_of


def _skips(skip: tuple[str, ...] | list[str]) -> list[str]:
    return [word for check in skip for word in ("--skip", check)]


def _refuse_unread(ws: Workspace, run_plan: Plan, sets: list[str]) -> None:
    """A grid over a param no stage of the pipeline reads runs one experiment N times."""
    absent = dvcexp.absent(ws.root, sets)
    if absent:
        raise DvcInvokeError(
            f"no param {', '.join(absent)}: a new one is -S '+KEY=VALUE' (DVC's grammar);"
            " nothing was queued",
            step="guards",
        )
    read = dvcexp.params_read(ws.root, run_plan.graph.stages)
    unread = dvcexp.unread(sets, read)
    if unread:
        said = ", ".join(f"{f}:{', '.join(sorted(k))}" if k else f for f, k in read.items())
        raise DvcInvokeError(
            f"no stage of {run_plan.pipeline.name} reads {', '.join(unread)}"
            f" (it reads: {said or 'no params'}); nothing was queued",
            step="guards",
        )


def _refuse_unpushed(ready: Prepared, command: str) -> None:
    """Experiments shared on a commit the team does not have would be nobody's to apply."""
    state = ready.state
    if state.ahead > 0 and not os.environ.get(ENV_RUN):
        raise DvcInvokeError(
            f"HEAD is {state.ahead} commit{'s' if state.ahead != 1 else ''} ahead of"
            f" {state.upstream}: push it first, so the experiments' baseline is the team's;"
            " nothing was queued",
            step="guards",
            resume=f"git push, then {command}",
        )


def _refuse_others_queued(c: Any, ws: Workspace) -> None:
    """DVC's workers run every experiment queued here: ones queued by hand would
    run unannounced in the sweep (running ones are harmless: a worker that runs
    them takes the sweep's too, and the sweep watches its own by name)."""
    from dvc_invoke.flow.holding import free
    from dvc_invoke.flow.lost import tell_lost

    # A run alive here refuses the sweep now; one whose process died is lost.
    if not ws.dry:
        tell_lost(c, ws, free(Store(ws.root)))
    said = dvcexp.queue_states(ws.probe(f"{ws.dvc} queue status", in_process=False).stdout)
    waiting = sorted(n for n, state in said.items() if state == "Queued")
    # Queued by a sweep of ours that ended without running them (killed, lost):
    # nobody's any more, removed.
    ended = {
        e["name"]
        for r in Store(ws.root).all()
        if r.sweep is not None and r.ended
        for e in r.experiments
        if e.get("state") not in (dvcexp.SUCCESS, dvcexp.FAILED)
    }
    left = [n for n in waiting if n in ended]
    if left:
        console.warn(f"DVC's queue held {', '.join(left)} of an earlier sweep that ended: removed")
        ws.act(f"{ws.dvc} queue remove {quote_all(left)}", step="guards", in_process=False)
        waiting = [n for n in waiting if n not in ended]
    if waiting:
        raise DvcInvokeError(
            f"DVC's queue here holds experiments queued by hand: {', '.join(waiting[:5])}"
            f"{' ...' if len(waiting) > 5 else ''}; the sweep's workers would run them"
            " unannounced: run them first (dvc queue start), or remove them"
            " (dvc queue remove --queued); nothing was queued",
            step="guards",
        )


def _queue_line(ws: Workspace, ready: Prepared, sets: list[str], exp_name: str | None) -> str:
    words = ["exp", "run", "--queue"]
    for value in sets:
        words += ["-S", value]
    words += ["--name", exp_name] if exp_name else []
    return f"{ws.dvc} {quote_all(words + repro_targets(ready.plan))}"


def _dry(ws: Workspace, ready: Prepared, request: Request, exp_name: str | None) -> None:
    described = request.sweep or {}
    if request.slurm:  # the array and its collector, shown
        from dvc_invoke.engines.slurm import submit

        report = RunReport(pipeline=ready.plan.pipeline.name, command=request.command)
        report.id, report.sweep = "RUN-ID", dict(described)
        report.log = str(Store(ws.root).log_path("RUN-ID"))
        submit(ws, report, dict(ready.plan.pipeline.slurm or {}))
        console.result(True, "dry run: nothing was submitted")
        return
    pull(ws, ready.plan)
    ws.act(_queue_line(ws, ready, described.get("sets") or [], exp_name), step="queue")
    ws.act(f"{ws.dvc} queue start -j {described.get('jobs') or 1}", step="queue")
    console.result(True, "dry run: nothing was queued")


class Sweep:
    """One sweep as it executes here: queue, watch, rank, share, tell."""

    def __init__(self, ws: Workspace, ready: Prepared, report: RunReport, store: Store):
        self.ws, self.ready, self.report, self.store = ws, ready, report, store
        self.p: Pipeline = ready.plan.pipeline
        self.sweep: dict[str, Any] = report.sweep if report.sweep is not None else {}
        # A SLURM sweep's commit is the one its tasks ran on (HEAD may move since).
        self.commit = self.sweep.get("commit") or ready.state.commit
        self.log: IO[str] | None = None
        self.started_workers = time.time()
        self._gone_since: dict[str, float] = {}  # experiments whose process is gone, since
        self._requeued: set[str] = set()  # queued again after DVC lost their result

    def save(self, step: str | None = None) -> None:
        self.report.step = step if step is not None else self.report.step
        self.store.keep(self.report)

    def say(self, text: str) -> None:
        console.info(text)

    # -- the sweep ---------------------------------------------------------
    def execute(self, *, collect: bool = False) -> RunReport:
        """The sweep; with ``collect``, the end of one SLURM's array ran (`collect`)."""
        report = self.report
        keep_log = report.log is not None and not report.detached
        self.log = open(report.log, "a") if keep_log and report.log else None  # noqa: SIM115
        with contextlib.ExitStack() as stack, Interrupts() as interrupts:
            if self.log is not None:
                stack.enter_context(self.log)
                stack.enter_context(console.log_to(self.log))
            try:
                with self.ws.running(stops=interrupts, log=self.log):
                    if collect:
                        self._collect()
                    else:
                        self._steps(interrupts)
            except (DvcInvokeError, KeyboardInterrupt) as exc:
                self._failed(exc, interrupts)
        return report

    def _steps(self, interrupts: Interrupts) -> None:
        ws, report, sets = self.ws, self.report, self.sweep.get("sets") or []
        self.save("pull")
        console.step(self.p.name, "pull")
        pull(ws, self.ready.plan, resume=report.command)
        self.save("queue")
        console.step(self.p.name, "queue", " ".join(f"-S {s}" for s in sets))
        names = self._queue(sets)
        if not names:
            raise DvcInvokeError("DVC queued no experiment", step="queue", resume=report.command)
        report.experiments = [{"name": n, "state": dvcexp.QUEUED} for n in names]
        self.sweep["queued"] = names
        self.save("run")
        jobs = int(self.sweep.get("jobs") or 1)
        workers = f"{jobs} DVC worker{'s' if jobs != 1 else ''}"
        console.step(self.p.name, "run", f"{_count(len(names))} on {workers}")
        self._start_workers(jobs)
        self._watch(interrupts)
        self._end()

    def _queue(self, sets: list[str]) -> list[str]:
        """The sweep queued on DVC's queue: the grid, or this host's share of it
        (each experiment on its own, by the name the laptop gave it)."""
        ws, resume = self.ws, self.report.command
        if not self.sweep.get("part"):
            line = _queue_line(ws, self.ready, sets, self.sweep.get("name"))
            result = ws.act(line, step="queue", resume=resume, capture=True)
            return dvcexp.queued_names(result.stdout)
        grid, names = self.sweep["grid"], self.sweep["names"]
        queued = []
        for j in spread.mine(len(grid), tuple(self.sweep["part"])):
            line = _queue_line(ws, self.ready, grid[j], names[j])
            ws.act(line, step="queue", resume=resume, capture=True)
            queued.append(names[j])
        return queued

    def _watch(self, interrupts: Interrupts) -> None:
        """Until every experiment ended: DVC's word on each, read when its queue
        folder changed (or a worker's process is gone), at least every
        `SHOW_EVERY` seconds."""
        seen, shown_at, restarted = None, 0.0, False
        while True:
            if interrupts.received:
                raise interrupts.stopped("run", self.report.command) or Cancelled(
                    "interrupted", step="run"
                )
            now_seen = _queue_folder(self.ws)
            dead = [e for e in self.report.experiments if _died(e)]
            # A process gone: DVC's word on it, each second, until it records the end.
            every = 1.0 if dead else SHOW_EVERY
            if now_seen != seen or time.time() - shown_at > every:
                seen, shown_at = now_seen, time.time()
                found = self._read()
                self._update(found, dead)
                if all(e["state"] in dvcexp.DONE for e in self.report.experiments):
                    return
                if not restarted and self._stalled(found):
                    # Every worker died with experiments still queued: one more start.
                    restarted = True
                    jobs = int(self.sweep.get("jobs") or 1)
                    console.warn(
                        "DVC's workers are gone with experiments queued: starting them again"
                    )
                    self._start_workers(jobs)
            time.sleep(POLL)

    def _start_workers(self, jobs: int) -> None:
        """``dvc queue start -j N``, a process of its own (DVC forks its workers'
        daemons from it), what it prints kept in a file: a worker keeps the
        output it was started with open, and a pipe would never end."""
        said = self.store.dir / f"{self.report.id}.workers.out"
        out = shlex.quote(str(said))
        gpus = self.sweep.get("gpus") or []
        # DVC numbers its workers 1..N and starts those not running: worker i,
        # started alone with GPU i's CUDA_VISIBLE_DEVICES, keeps it.
        starts = [
            f"CUDA_VISIBLE_DEVICES={int(gpu)} {self.ws.dvc} queue start -j {i}"
            for i, gpu in enumerate(gpus, 1)
        ] or [f"{self.ws.dvc} queue start -j {jobs}"]
        try:
            for start in starts:
                self.ws.act(
                    f"{start} > {out} 2>&1 < /dev/null || {{ cat {out} >&2; exit 1; }}",
                    step="run",
                    resume=self.report.command,
                    in_process=False,
                )
                with contextlib.suppress(OSError):
                    console.info(said.read_text().strip())
        finally:
            said.unlink(missing_ok=True)

    def _read(self) -> dict[str, dvcexp.Experiment]:
        # A SLURM sweep's commit, wherever HEAD is now (work went on meanwhile).
        rev = str(self.commit) if self.sweep.get("commit") else None
        try:
            found = dvcexp.show(self.ws, rev=rev)
        except DvcInvokeError as exc:  # asked again next time
            console.warn(f"{exc.reason}: asking again")
            return {}
        for base in found:
            if base.rev == self.commit:
                self.sweep["baseline"] = {
                    "rev": base.rev,
                    "params": _only(base.params, self._keys()),
                    "metrics": base.metrics,
                }
                return {e.name: e for e in base.experiments}
        return {}

    def _keys(self) -> list[str]:
        return [f"{f}:{k}" for f, k in dvcexp.set_keys(self.sweep.get("sets") or [])]

    def _update(self, found: dict[str, dvcexp.Experiment], dead: list[dict[str, Any]]) -> None:
        changed = False
        for e in self.report.experiments:
            exp = found.get(e["name"])
            if exp is None or e["state"] in (dvcexp.SUCCESS, dvcexp.FAILED):
                continue
            state = exp.state
            if state == dvcexp.RUNNING and (e in dead or _gone(exp.pid)) and exp.returncode is None:
                # DVC records the end a moment after the process ends: lost only
                # when it still calls it running well after.
                since = self._gone_since.setdefault(e["name"], time.time())
                if time.time() - since >= LOST_AFTER:
                    state = dvcexp.LOST
            if state == e["state"] and e.get("pid") == exp.pid:
                continue
            if e["state"] == dvcexp.LOST and state == dvcexp.RUNNING:
                continue  # still DVC's stale word
            changed = True
            e.update(state=state, pid=exp.pid, log=exp.log, params=_only(exp.params, self._keys()))
            if state == dvcexp.SUCCESS:
                e["metrics"] = exp.metrics
                self.say(f"{e['name']} succeeded" + self._ranked_value(exp.metrics))
            elif state == dvcexp.FAILED:
                self._failure(e, exp)
                self.say(f"{e['name']} failed at {e['step']}: {e['reason']}")
            elif state == dvcexp.LOST:
                e.update(step="run", reason=f"its DVC worker (pid {exp.pid}) died while it ran")
                e["log_tail"] = read_tail(exp.log, 4000)
                self.say(f"{e['name']} lost: {e['reason']}")
            elif state == dvcexp.RUNNING:
                gpu = _gpu_of(exp.pid) if self.sweep.get("gpus") else None
                if gpu is not None:
                    e["gpu"] = gpu
                self.say(f"{e['name']} running" + (f" on GPU {gpu}" if gpu is not None else ""))
        changed = self._missing(found) or changed
        if changed:
            self.save()

    def _missing(self, found: dict[str, dvcexp.Experiment]) -> bool:
        """Experiments DVC no longer shows, though they did not end as far as we saw
        (DVC's queue finished one and kept no result of it): after `LOST_AFTER`
        seconds, its queue's word on them; lost unless it says they failed."""
        if not found:
            return False  # `dvc exp show` said nothing this time: nothing to conclude
        gone = [
            e
            for e in self.report.experiments
            if e["name"] not in found and e["state"] not in dvcexp.DONE
        ]
        now = time.time()
        late = [e for e in gone if now - self._gone_since.setdefault(e["name"], now) >= LOST_AFTER]
        if not late:
            return False
        said = dvcexp.queue_states(
            self.ws.probe(f"{self.ws.dvc} queue status", in_process=False).stdout
        )
        for e in late:
            word = said.get(e["name"], "not in its queue")
            self._gone_since.pop(e["name"], None)
            if word == "Success" and e["name"] not in self._requeued and e.get("params"):
                # DVC's worker stopped before it kept the result (its idle
                # monitor, under load): the experiment is queued again, once.
                self._requeue(e)
                continue
            if word == "Failed":
                e.update(state=dvcexp.FAILED, step="run", reason="failed (DVC's queue)")
                e["log_tail"] = read_tail(e.get("log"), 4000)
            else:
                e.update(
                    state=dvcexp.LOST,
                    step="run",
                    reason=f"DVC kept no result of it (its queue: {word}): run it again",
                )
            self.say(f"{e['name']} {e['state']}: {e['reason']}")
        return True

    def _ranked_value(self, metrics: dict[str, Any]) -> str:
        """`` (acc 0.91)``: the metric the sweep is ranked by (the first gate's),
        else the first."""
        by = sweeps.rank_by(self.p.gates, list(metrics))
        name = by[0] if by else next(iter(metrics), None)
        if name is None:
            return ""
        value = metrics[name]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f" ({name.split(':', 1)[-1]} {shown})"

    def _requeue(self, e: dict[str, Any]) -> None:
        self._requeued.add(e["name"])
        sets = [f"{key}={_value(value)}" for key, value in e["params"].items()]
        console.warn(
            f"{e['name']}: DVC kept no result of it (its queue says Success): queued again"
        )
        words = [
            "exp",
            "run",
            "--queue",
            *[w for s in sets for w in ("-S", s)],
            "--name",
            e["name"],
        ]
        self.ws.act(
            f"{self.ws.dvc} {quote_all(words + repro_targets(self.ready.plan))}",
            step="run",
            resume=self.report.command,
            capture=True,
        )
        e.update(state=dvcexp.QUEUED, pid=None)
        self._start_workers(int(self.sweep.get("jobs") or 1))

    def _failure(self, e: dict[str, Any], exp: dvcexp.Experiment) -> None:
        tail = read_tail(exp.log, 4000) or ""
        stage = FAILED_RE.findall(tail)
        errors = ERROR_RE.findall(tail)
        e["step"] = stage[-1] if stage else "run"
        e["reason"] = errors[-1].strip() if errors else f"exited with {exp.returncode}"
        logs = f"{tasknames.command('repro.logs')} --run {self.report.id} --exp {e['name']}"
        e["reason"] += f" (its log: {logs})"
        e["log_tail"] = tail

    def _stalled(self, found: dict[str, dvcexp.Experiment]) -> bool:
        states = [e["state"] for e in self.report.experiments]
        if dvcexp.RUNNING in states or dvcexp.QUEUED not in states:
            self.started_workers = time.time()
            return False
        if time.time() - self.started_workers < STALLED:
            return False  # workers take a while to start, and between two experiments
        status = self.ws.probe(f"{self.ws.dvc} queue status", in_process=False)
        m = re.search(r"Worker status: (\d+) active, (\d+) idle", status.stdout or "")
        return m is not None and m.group(1) == m.group(2) == "0"

    def _collect(self) -> None:
        """In the collector job, once every task of the sweep's SLURM array ended:
        the experiments shared on the git remote fetched, each task's end in
        SLURM's words (`dvc_invoke.flow.array.ended`), then the sweep's end."""
        from dvc_invoke.engines import slurm

        report, job = self.report, str(self.sweep.get("array"))
        self.save("collect")
        console.step(self.p.name, "collect", f"SLURM array {job}")
        tasks = slurm.array_tasks(job) or {}
        shared = array.pull_shared(self.ws, report)
        found = self._read()
        for _ in range(2):  # DVC did not answer (its 30 s limit, under load): ask again
            if all(name in found for name in shared):
                break
            found = self._read()
        if not all(name in found for name in shared):
            # Not "lost": they are on the git remote, and here after the pull.
            raise DvcInvokeError(
                "`dvc exp show` did not show the experiments its tasks shared", step="collect"
            )
        for e in report.experiments:
            task = tasks.get(int(e.get("task", -1)))
            clone = array.clone_path(self.store, report.id or "", e["name"])
            array.ended(report, e, found.get(e["name"]), task, clone)
            self.say(
                f"{e['name']} {sweeps.STATE_WORDS.get(e['state'], e['state'])}"
                + (f": {e['reason']}" if e.get("reason") else "")
            )
        with contextlib.suppress(OSError):  # the sweep's folder, when no clone is kept in it
            (self.store.dir / "sweeps" / (report.id or "")).rmdir()
        asked = (self.store.load(report.id).sweep or {}).get("cancel")
        self._end(share=False, cancelled=bool(asked))

    # -- its end -------------------------------------------------------------
    def _end(self, *, share: bool | None = None, cancelled: bool = False) -> None:
        report, sweep = self.report, self.sweep
        done = [e["name"] for e in report.experiments if e["state"] == dvcexp.SUCCESS]
        if sweep.get("part"):
            # A share of a spread sweep: shared, then told on the git remote; the
            # share that finds all told tells the whole table.
            self.save("share")
            if done:
                self._share(done)
            share = False
            whole = spread.tell_part(self.ws, report, self._git_remote())
            if whole is not None:
                console.info(f"every share of {sweep['name']} told: the table of all")
                # This host's own as it keeps them (their logs, for repro.logs --exp).
                own = {e["name"]: e for e in report.experiments}
                report.experiments = [own.get(e["name"], e) for e in whole]
                sweep["collected"] = True
                done = [e["name"] for e in whole if e["state"] == dvcexp.SUCCESS]
                if done:
                    sweep["shared"] = (
                        f"{_count(len(done))} pushed to {self._git_remote()} by their hosts"
                        " (dvc exp push)"
                    )
        top = sweeps.rank(report, self.p.gates or ())
        self.save("tell")
        if top is not None:
            self._plots(top["name"])
        table = report.sweep_table()
        if table:
            console.table(*table)
        if done and (sweep.get("share") if share is None else share):
            # Shared before told: the message says where the team finds them (a
            # failure to share is the sweep's, told with its table).
            self._share(done)
        if cancelled:
            cancel = tasknames.command("repro.cancel")
            report.end("cancelled", reason=f"cancelled with {cancel}", resume=self._resume())
        elif done:
            report.end("succeeded")
        else:
            # Each experiment's log is told on its own (Slack: one reply each).
            report.end("failed", reason="no experiment succeeded", resume=self._resume())
        report.step = None if done or cancelled else "run"
        notifiers.deliver(self.ready.chain, report)
        self.save()
        if not done and not cancelled:
            raise DvcInvokeError("no experiment succeeded", step="run", resume=self._resume())

    def _resume(self, said: str | None = None) -> str | None:
        """What picks the sweep up: for a SLURM sweep, gathering what its tasks
        shared (run again, its names would clash with theirs); else ``said``, or
        the sweep again."""
        if self.sweep.get("array"):
            from dvc_invoke.engines.slurm import sweep_resume

            return sweep_resume(self.report)
        if self.sweep.get("part"):  # a share: the table is told where it was spread from
            return sweeps.share_resume(self.report)
        return said or self.report.command

    def _plots(self, best: str) -> None:
        """The plots the best experiment changed against the baseline, drawn for
        whom posts pictures (never fails the sweep)."""
        from dvc_invoke.adapters.dvc import plots

        files = self.ready.plan.graph.plot_files
        if not self.ws.settings.plots or not files or not self.commit or not self.report.id:
            return
        draw = any(getattr(n, "posts_pictures", False) for n in self.ready.chain)
        folder = self.store.dir / "plots" / self.report.id
        try:
            found = plots.changed(self.ws, files, self.commit, folder, draw=draw, new=best)
        except Exception as exc:  # noqa: BLE001 - pictures are a bonus, never the sweep's end
            console.warn(f"could not compare {best}'s plots: {exc}")
            return
        self.report.plots, self.report.plots_html = found.get("plots", []), found.get("html")

    def _share(self, names: list[str]) -> None:
        """``dvc exp push`` of the experiments that succeeded, to the branch's
        git remote (their data to the DVC remote); a failure is one line and the
        command that shares them."""
        remote = self._git_remote()
        push = f"{self.ws.dvc} exp push {quote_all([remote, *names])}"
        console.step(self.p.name, "share", f"{_count(len(names))} to {remote}")
        self.ws.act(push, step="share", resume=push, network=True)
        there = {n for base, n in self.ws.git.experiments(remote) if base == self.commit}
        missing = [n for n in names if n not in there]
        if missing:
            raise DvcInvokeError(
                f"{remote} does not hold the experiments {', '.join(missing)} after dvc exp push",
                step="share",
                resume=push,
            )
        self.sweep["shared"] = f"{_count(len(names))} pushed to {remote} (dvc exp push)"
        self.save()

    def _git_remote(self) -> str:
        upstream = self.ready.state.upstream or ""
        return upstream.split("/", 1)[0] if "/" in upstream else "origin"

    def _failed(self, exc: DvcInvokeError | KeyboardInterrupt, interrupts: Interrupts) -> None:
        report = self.report
        if isinstance(exc, KeyboardInterrupt):
            exc = interrupts.stopped(report.step or "run", report.command) or Cancelled(
                "interrupted (SIGINT)", step=report.step, resume=report.command
            )
        if report.ended:  # told already: "no experiment succeeded"
            raise exc from None
        if isinstance(exc, Cancelled) and not self.sweep.get("array"):
            self._stop_experiments()  # DVC's queue here (a SLURM array is SLURM's to stop)
        spread.told_part_anyway(
            self.ws, report, self._git_remote()
        )  # a share of a spread sweep: told, for the table
        if self.log is not None:
            self.log.flush()
        status = "cancelled" if isinstance(exc, Cancelled) else "failed"
        report.step = exc.step or report.step
        report.end(
            status,
            reason=exc.reason,
            resume=self._resume(exc.resume),
            log_tail=read_tail(report.log) or exc.log,
        )
        notifiers.deliver(self.ready.chain, report)
        self.save()
        raise exc from None

    def _stop_experiments(self) -> None:
        """The sweep's queued experiments removed, its running ones killed, DVC's
        workers stopped: nothing of it goes on. Those that ended meanwhile are
        recorded as they ended; a worker that took a queued one while this ran
        is caught by the next round."""
        dvc, mine = self.ws.dvc, {e["name"] for e in self.report.experiments}
        pids: set[int] = set()
        killed: set[str] = set()  # by this cancel: cancelled, whatever DVC then calls them
        with Interrupts():  # a second signal does not cut the clean-up short
            for _ in range(3):
                found = {n: x for n, x in self._read().items() if n in mine and n not in killed}
                self._update(found, [])
                if not found:  # DVC said nothing: what the record holds
                    found = {
                        e["name"]: dvcexp.Experiment(
                            e["name"], "", "", e["state"], pid=e.get("pid")
                        )
                        for e in self.report.experiments
                    }
                queued = [n for n, x in found.items() if x.state == dvcexp.QUEUED]
                running = [x for x in found.values() if x.state == dvcexp.RUNNING]
                if not queued and not running:
                    break
                if queued:
                    self.ws.probe(f"{dvc} queue remove {quote_all(queued)}", in_process=False)
                if running:
                    # The stage's own processes first: once DVC's are killed they
                    # are orphans, nobody's children, and would train on for hours.
                    pids |= _trees([x.pid for x in running if x.pid])
                    names = quote_all([x.name for x in running])
                    self.ws.probe(f"{dvc} queue kill --force {names}", in_process=False)
                    killed |= {x.name for x in running}
            self.ws.probe(f"{dvc} queue stop --kill", in_process=False)
            # What DVC's kill left: each experiment's own process, by the pid DVC recorded.
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
            deadline = time.time() + 10
            while time.time() < deadline and any(not _gone(p) for p in pids):
                time.sleep(0.1)
        for e in self.report.experiments:
            if e["state"] in (dvcexp.QUEUED, dvcexp.RUNNING) or e["name"] in killed:
                e.update(state="cancelled", step=None, reason=None, log_tail=None)


def _queue_folder(ws: Workspace) -> tuple[Any, ...]:
    """What changes in DVC's queue folder when an experiment starts or ends (a
    hint to read DVC's word again, never the word itself)."""
    base = ws.root / ".dvc" / "tmp" / "exps"
    seen = []
    for sub in ("celery/result", "run"):
        folder = base / sub
        with contextlib.suppress(OSError):
            seen.append((sub, folder.stat().st_mtime_ns))
            for entry in os.scandir(folder):
                with contextlib.suppress(OSError):
                    seen.append((entry.name, entry.stat().st_mtime_ns))
                    if entry.is_dir():
                        for inner in os.scandir(entry.path):
                            seen.append((inner.name, inner.stat().st_mtime_ns))
    return tuple(sorted(seen))


def _trees(pids: list[int]) -> set[int]:
    """``pids`` and every process they started, recursively."""
    import psutil

    found = set(pids)
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
    return found


def _gone(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    try:  # a zombie is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return False


def _died(e: dict[str, Any]) -> bool:
    return e.get("state") == dvcexp.RUNNING and _gone(e.get("pid"))


def _only(values: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The values the sweep set: at or under its ``-S`` keys."""
    return {k: v for k, v in values.items() if any(k == w or k.startswith(w + ".") for w in keys)}


def _value(value: Any) -> str:
    """A param's value as ``-S`` takes it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value)


def _gpu_of(pid: int | None) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` process ``pid`` runs with (its worker's)."""
    try:
        with open(f"/proc/{int(pid or 0)}/environ", "rb") as handle:
            env = handle.read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"CUDA_VISIBLE_DEVICES="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return None


def _count(n: int) -> str:
    return f"{n} experiment{'s' if n != 1 else ''}"
