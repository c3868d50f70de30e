"""The experiments of a commit, ranked (``inv exp.show``), and one of them published
as a run (``inv exp.publish``): ``dvc exp apply``, then exactly the flow's publish.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.dvc import experiments as dvcexp
from dvc_invoke.adapters.shell import Workspace
from dvc_invoke.config.gates import Gate
from dvc_invoke.config.pipelines import Pipeline, resolve
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.flow import notifiers
from dvc_invoke.flow.checks import check, preflight
from dvc_invoke.flow.context import RunContext
from dvc_invoke.flow.holding import free
from dvc_invoke.flow.lost import tell_lost
from dvc_invoke.flow.plan import plan
from dvc_invoke.flow.publishing import publish
from dvc_invoke.runs import sweep as sweeps
from dvc_invoke.runs.metrics import Change, regressions
from dvc_invoke.runs.record import RunReport, short
from dvc_invoke.runs.store import Store


def read(ws: Workspace, *, all_commits: bool = False) -> list[dvcexp.Baseline]:
    """``dvc exp show --json`` (of every commit with ``all_commits``), read as a
    sweep reads it (`dvc_invoke.adapters.dvc.experiments.show`)."""
    return dvcexp.show(ws, all_commits=all_commits)


def rows(base: dvcexp.Baseline) -> list[dict[str, Any]]:
    """A baseline's experiments as a sweep's record keeps them: the params they
    changed against the baseline, their metrics."""
    changed = {k for e in base.experiments for k, v in e.params.items() if base.params.get(k) != v}
    return [
        {
            "name": e.name,
            "state": e.state,
            "params": {k: v for k, v in e.params.items() if k in changed},
            "metrics": e.metrics,
        }
        for e in base.experiments
    ]


def _ranking(
    found: list[dict[str, Any]],
    gates: tuple[Gate, ...],
    sort: str | None,
    direction: str | None,
) -> tuple[str, str] | None:
    keys = list(dict.fromkeys(k for e in found for k in e.get("metrics") or {}))
    by = sweeps.rank_by(gates, keys, sort=sort, direction=direction)
    if sort and by is None:
        raise DvcInvokeError(
            f"--sort {sort}: no experiment has that metric (metrics: {', '.join(keys) or 'none'})",
            step="exp",
        )
    return by


def show(
    c: Any,
    pipeline: str | None = None,
    *,
    sort: str | None = None,
    direction: str | None = None,
    all_commits: bool = False,
) -> None:
    """``inv exp.show``: the experiments of HEAD (of every commit with
    ``all_commits``), ranked as a sweep's table is, their baseline first."""
    from dvc_invoke.flow import spread

    ws = Workspace(c)
    gates = resolve(c, ws.root, pipeline).gates or () if pipeline else ()
    spread.gather(c, ws)  # sweeps spread over hosts from here: told, or waited for
    head = ws.git.head()
    shown = 0
    for base in read(ws, all_commits=all_commits):
        if not base.experiments or (not all_commits and base.rev != head):
            continue
        found = rows(base)
        by = _ranking(found, gates, sort, direction)
        baseline = {"rev": base.rev, "params": base.params, "metrics": base.metrics}
        headers, table = sweeps.table(found, baseline, gates, by)
        named = base.name and not base.rev.startswith(base.name)  # a branch, not the rev again
        console.info(
            f"experiments on {base.name} ({short(base.rev)}):"
            if named
            else f"experiments on {short(base.rev)}:"
        )
        console.table(headers, table)
        shown += 1
    if not shown:
        where = "any commit" if all_commits else f"HEAD ({short(head)})"
        which = shlex.quote(pipeline) if pipeline else "NAME"
        console.info(
            f"no experiments on {where}: run some with {tasknames.command('exp.run')}"
            f" --pipeline {which} -S 'KEY=A,B', fetch a teammate's with `dvc exp pull origin"
            " --rev COMMIT` (`dvc exp list origin --all-commits` lists them)"
            + ("" if all_commits else ", or see every commit's: --all")
        )


def publish_experiment(
    c: Any,
    name: str | None,
    *,
    pipeline: str,
    best: bool = False,
    accept: bool = False,
    message: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
) -> RunReport | None:
    """``inv exp.publish``: experiment ``name`` (or the best of HEAD's) published as a run."""
    if bool(name) == best:
        raise DvcInvokeError(
            "say which experiment to publish: --name NAME, or --best", step="guards"
        )
    with RunContext(c) as ctx:
        return _publish(ctx, name, pipeline, best, accept, message, sort, direction)


def _command(pipeline: str, name: str | None, accept: bool, sort: str | None) -> str:
    words = [tasknames.command("exp.publish"), f"--name {shlex.quote(name)}" if name else "--best"]
    words += ["--pipeline", shlex.quote(pipeline)]
    words += ["--sort", shlex.quote(sort)] if sort else []
    return " ".join(words + (["--accept"] if accept else []))


def _publish(
    ctx: RunContext,
    name: str | None,
    pipeline: str,
    best: bool,
    accept: bool,
    message: str | None,
    sort: str | None,
    direction: str | None,
) -> RunReport | None:
    c, ws = ctx.c, ctx.ws
    p = resolve(c, ws.root, pipeline)
    command = _command(p.name, name, accept, sort)
    store = Store(ws.root)
    if not ws.dry:
        tell_lost(c, ws, free(store))  # never under a run that is still writing
        from dvc_invoke.flow import spread

        spread.gather(c, ws)  # a sweep spread over hosts from here: its experiments fetched
    run_plan = plan(ws, p)
    state = check(ws, p, resume=command, own=run_plan.graph.git_paths(), graph_=run_plan.graph)
    state = preflight(ws, run_plan, state, resume=command)
    base = next((b for b in read(ws) if b.rev == state.commit), None)
    exp = _chosen(ws, p, base, name, best, accept, sort, direction, command, state.commit)
    assert base is not None
    changes = _changes(base, exp)
    if not accept:
        _gate(p, exp, changes, command)
    console.step(p.name, "apply", exp.name)
    _apply(ws, exp.name, state, command)
    also = tuple(ws.git.changed_paths(run_plan.graph.depends_on))
    said = message or f"[DVC] Publish experiment {exp.name} ({p.name})"
    run_plan = dataclasses.replace(run_plan, pipeline=dataclasses.replace(p, message=said))
    console.step(p.name, "publish", exp.name)
    chain = notifiers.notifiers(c, ws.root, slack=p.slack)
    done = publish(ws, run_plan, always_push=True, accept=True, also=also, rerun=command)
    if ws.dry:
        return None
    report = RunReport(pipeline=p.name, command=command, slack=dict(p.slack) if p.slack else None)
    report.experiment = exp.name
    report.branch, report.commit_before = state.branch, state.commit
    report.committed, report.git_pushed = done.committed, done.git_pushed
    report.pushed, report.commit_after = list(done.pushed), done.commit
    report.metrics = [ch.to_dict() for ch in changes if ch.changed]
    report.end("succeeded")
    with store.lock():
        store.register(report)
    notifiers.deliver(chain, report)
    return report


def _apply(ws: Workspace, name: str, state: Any, command: str) -> None:
    """``dvc exp apply NAME``, its outputs fetched first when the git remote has it
    (one made elsewhere, fetched with ``--no-cache``, has none here: DVC's apply
    would stop half-way); an apply that fails leaves the workspace as it was."""
    upstream = state.upstream or ""
    remote = upstream.split("/", 1)[0] if "/" in upstream else "origin"
    if not ws.dry and (state.commit, name) in set(ws.git.experiments(remote)):
        pull = f"{ws.dvc} exp pull {shlex.quote(remote)} {shlex.quote(name)}"
        ws.act(pull, step="apply", resume=command, network=True, in_process=False)
    try:
        ws.act(f"{ws.dvc} exp apply {shlex.quote(name)}", step="apply", resume=command)
    except DvcInvokeError as exc:
        # The workspace was clean and in step with HEAD (the checks): put back.
        ws.probe("git checkout -- .")
        ws.probe(f"{ws.dvc} checkout --quiet", in_process=False)
        raise DvcInvokeError(
            f"{exc.reason}; the workspace was put back as it was", step="apply", resume=exc.resume
        ) from None


def _chosen(
    ws: Workspace,
    p: Pipeline,
    base: dvcexp.Baseline | None,
    name: str | None,
    best: bool,
    accept: bool,
    sort: str | None,
    direction: str | None,
    command: str,
    head: str | None,
) -> dvcexp.Experiment:
    """The experiment to publish: of HEAD's, by name or the best; one made on
    another commit is refused, never applied over newer code."""
    mine = [e for e in (base.experiments if base else []) if e.state == dvcexp.SUCCESS]
    if best:
        return _best(p, mine, sort, direction, base.metrics if base else {}, accept)
    assert name is not None
    hits = [e for e in mine if e.name == name or e.rev.startswith(name) and len(name) >= 7]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise DvcInvokeError(
            f"experiment {name} is ambiguous: {', '.join(e.name for e in hits)}", step="guards"
        )
    failed = [e for e in (base.experiments if base else []) if e.name == name]
    if failed:
        raise DvcInvokeError(
            f"experiment {name} {failed[0].state}: only a succeeded one can be published",
            step="guards",
        )
    elsewhere = sorted({b for b, n in ws.git.experiments() if n == name and b != head})
    if elsewhere:
        made_on = ", ".join(short(b) for b in elsewhere)
        raise DvcInvokeError(
            f"experiment {name} was made on {made_on}, not on HEAD ({short(head)}):"
            " applied here it would undo what came since; nothing was applied",
            step="guards",
            resume=f"{tasknames.command('exp.run')} --pipeline {shlex.quote(p.name)}"
            f" -S ... --name {shlex.quote(name)} (its params, on HEAD)",
        )
    known = ", ".join(e.name for e in mine) or "none"
    raise DvcInvokeError(
        f"no experiment {name} on HEAD ({short(head)}; experiments: {known});"
        f" a teammate's: `dvc exp pull origin {shlex.quote(name)}` first",
        step="guards",
    )


def _best(
    p: Pipeline,
    mine: list[dvcexp.Experiment],
    sort: str | None,
    direction: str | None,
    published: dict[str, Any],
    accept: bool,
) -> dvcexp.Experiment:
    """The best of HEAD's experiments, and better than what the branch published
    (unless ``accept``): a tie would publish a commit that moves nothing."""
    found = [{"name": e.name, "state": e.state, "metrics": e.metrics} for e in mine]
    if not found:
        raise DvcInvokeError(
            "no succeeded experiment on HEAD to publish (a teammate's: `dvc exp pull origin`"
            " fetches HEAD's from origin)",
            step="guards",
        )
    by = _ranking(found, p.gates or (), sort, direction)
    top = sweeps.best(found, by)
    if top is None:
        raise DvcInvokeError(
            f"--best: nothing to rank by: {p.name} has no gate and no --sort METRIC was given",
            step="guards",
        )
    assert by is not None
    metric, way = by
    new, old = top["metrics"].get(metric), published.get(metric)
    better = not isinstance(old, (int, float)) or (new > old if way == "max" else new < old)
    if not better and not accept:
        raise DvcInvokeError(
            f"the best experiment, {top['name']}, is no better than what the branch published"
            f" ({metric}: {old:.6g} → {new:.6g}); nothing was applied",
            step="gate",
            resume=f"{_command(p.name, None, True, sort)} (to publish it anyway)",
        )
    return next(e for e in mine if e.name == top["name"])


def _changes(base: dvcexp.Baseline, exp: dvcexp.Experiment) -> list[Change]:
    """What the experiment changes against what HEAD published: metrics, then params."""
    found = [
        Change(k, base.metrics.get(k), exp.metrics.get(k))
        for k in dict.fromkeys([*base.metrics, *exp.metrics])
    ]
    found += [
        Change(k, base.params.get(k), v, kind="param")
        for k, v in exp.params.items()
        if base.params.get(k) != v
    ]
    return found


def _gate(p: Pipeline, exp: dvcexp.Experiment, changes: list[Change], command: str) -> None:
    problems = regressions(p.gates or (), changes)
    if problems:
        raise DvcInvokeError(
            f"experiment {exp.name} is worse than what the branch published: "
            + "; ".join(problems)
            + "; nothing was applied",
            step="gate",
            resume=f"{command} --accept",
        )
