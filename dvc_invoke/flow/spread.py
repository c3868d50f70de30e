"""One sweep spread over a group's free GPU hosts (``inv exp.run --host GROUP``).

No agent or queue of our own: the git remote is where the hosts meet.

- The laptop (`start`) runs the checks a host run has (a clean workspace, its
  commit pushed), expands the grid as DVC does, fixes the experiments' names
  (``NAME-1..N``), asks every host of the group whether it is free (as a run's
  host is chosen, GPUs included) and gives each free one its share, experiment
  *j* to host *j mod k*: ``inv exp.run ... --name NAME --part i/k`` started
  detached there, a sweep on that host's DVC queue (``--gpus`` pins its workers).
  A host that is unreachable or busy gets no share; the others take it.
- Each part (`tell_part`), when its experiments ended, shares them (``dvc exp
  push``), then pushes what became of them as a ref of its own,
  ``refs/dvc-invoke/sweeps/COMMIT/NAME/part-i`` (a commit on no branch
  holding ``sweep.json``). The part that
  finds all k parts there creates ``.../collected`` (a push that creates a ref
  is refused when another host created it first) and tells the whole table:
  on its console, in its log, on Slack; the others tell their own share.
- The laptop's next ``inv exp.show`` (`gather`) reads the refs: a part whose
  host is gone (unreachable, or its run ended without telling its part) has
  its experiments marked lost with the host's name, and once no part is still
  running the laptop collects and tells the table itself.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import socket
import time
from pathlib import Path
from typing import Any

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.dvc import experiments as dvcexp
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.errors import DvcInvokeError
from dvc_invoke.runs import sweep as sweeps
from dvc_invoke.runs.record import RunReport, short
from dvc_invoke.runs.store import Store

REFS = "refs/dvc-invoke/sweeps"
PART_RE = re.compile(r"^([1-9][0-9]*)/([1-9][0-9]*)$")
FILE = "sweep.json"  # what each of the sweep's refs holds
TAIL = 2000
# Seconds between the laptop's looks at a host that did not answer, before it is gone.
RETRY_PROBE = (2.0, 5.0)  # characters of a failed experiment's log a part tells


def parse_part(text: str) -> tuple[int, int]:
    """``--part i/k``: this host's share, the i-th of k."""
    m = PART_RE.match(text or "")
    if not m or int(m.group(1)) > int(m.group(2)):
        raise DvcInvokeError(
            f"--part {text!r}: say i/k, the i-th share of k (1 <= i <= k)", step="guards"
        )
    return int(m.group(1)), int(m.group(2))


def mine(n: int, part: tuple[int, int]) -> list[int]:
    """The experiments (0-based, in the grid's order) of share ``i`` of ``k``."""
    i, k = part
    return list(range(i - 1, n, k))


def ref_root(commit: str, base: str) -> str:
    return f"{REFS}/{commit}/{base}"


def _folder(ws: Workspace) -> Path:
    return Store(ws.root).dir / "spreads"


# -- the laptop: the sweep spread ---------------------------------------------


def start(
    c: Any,
    name: str,
    sets: list[str],
    group: str,
    *,
    exp_name: str | None,
    jobs: int,
    gpus: str | None,
    skip: list[str],
    command_for: Any,
) -> None:
    """Spread pipeline ``name``'s sweep over the free hosts of ``group``; each
    host runs ``command_for(NAME)`` (the sweep's ``inv`` line) with its share."""
    from dvc_invoke.config.pipelines import resolve
    from dvc_invoke.engines import ssh
    from dvc_invoke.flow.array import fixed_names

    ws = Workspace(c)
    resolve(c, ws.root, name)  # an unknown pipeline is refused here, not over there
    hosts = ssh.choose(c, group)
    pushed = ssh.pushed(ws)
    branch, commit = pushed[0], pushed[1]
    grid = dvcexp.grid(sets)
    target = ws.git.upstream_target(branch)
    remote = target[0] if target else "origin"
    names = fixed_names(ws, name, exp_name, len(grid), commit, remote)
    base = names[0].rsplit("-", 1)[0]
    told = ws.probe(f"git ls-remote {quote_all([remote, ref_root(commit, base) + '/*'])}")
    if told.stdout.strip():  # its shares would find the earlier one's told already
        raise DvcInvokeError(
            f"a sweep named {base} was spread on this commit before ({remote} holds"
            f" {ref_root(commit, base)}): choose another --name; nothing was started",
            step="guards",
        )
    free = []
    for host in hosts:
        probed = ssh.probe(c, host, ws.git.prefix)
        if probed.free:
            free.append(probed.host)
        else:
            console.info(f"{host.name}: {probed.why_not()}; the other hosts take its share")
    if not free:
        raise DvcInvokeError(f"no free host in {group}: nothing was started", step="host")
    k = min(len(free), len(grid))
    command = command_for(base)
    spread: dict[str, Any] = {
        "pipeline": name,
        "base": base,
        "commit": commit,
        "remote": remote,
        "group": group,
        "grid": grid,
        "names": names,
        "command": command,
        "started": time.time(),
        "parts": [],
    }
    path = _folder(ws) / f"{commit[:12]}-{base}.json"
    refused: list[tuple[str, str]] = []  # (what, the line that starts it again)
    for i, host in enumerate(free[:k], 1):
        part = f"{i}/{k}"
        args = [*shlex.split(command)[1:], "--part", part]
        args += [w for check in skip for w in ("--skip", check)]
        share = [names[j] for j in mine(len(grid), (i, k))]
        try:
            run_id = ssh.launch(c, host, ws.git.prefix, pushed, args)
        except DvcInvokeError as exc:
            # Kept as not started: `inv exp.show` calls its experiments lost,
            # unless it is started again (the line below) and tells them.
            again = f"{tasknames.program()} {quote_all(args)} --host {shlex.quote(host.name)}"
            refused.append((f"share {part} did not start: {exc.reason}", again))
            run_id = None
            if ws.dry:
                continue
        if ws.dry:  # shown, not run
            console.info(f"share {part} ({', '.join(share)}) on {host.name}")
            continue
        spread["parts"].append({"part": i, "host": host.name, "run": run_id, "names": share})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spread, indent=1))
        if run_id is None:
            continue
        console.result(
            True,
            f"share {part} ({len(share)} experiment{'s' if len(share) != 1 else ''}:"
            f" {', '.join(share)}) running on {host.name} as run {run_id}",
        )
        console.info(f"  follow:  {tasknames.follow(run_id, host=host.name)}")
        console.info(f"  cancel:  {tasknames.cancel(run_id, host=host.name)}")
    if ws.dry:
        console.result(True, "dry run: nothing was started")
        return
    if refused:
        others = [p for p in spread["parts"] if p["run"]]
        said = "; ".join(what for what, _ in refused)
        if others:
            said += f" (the others run on; `{tasknames.command('exp.show')}` tells the table)"
        raise DvcInvokeError(said, step="host", resume=refused[0][1])
    console.info(
        f"{name} sweep {base}: {len(grid)} experiments over {k} host{'s' if k != 1 else ''};"
        " the last host to finish tells the table; gone hosts are found, and the table"
        f" told, by `{tasknames.command('exp.show')}`"
    )


# -- a part's end, on its host ---------------------------------------------------


def tell_part(ws: Workspace, report: RunReport, remote: str) -> list[dict[str, Any]] | None:
    """This share's experiments told on the git remote; every share's when this
    part is the one that collects the sweep (None when it is not)."""
    sweep = report.sweep or {}
    i, k = sweep["part"]
    root = ref_root(str(sweep["commit"]), str(sweep["name"]))
    said = _share_told(report)
    _push(ws, remote, said, f"{root}/part-{i}", create=False)
    parts = _parts(ws, remote, root)
    if parts is not None and "collected" in parts:
        late = _late(report, parts["collected"])
        if late:  # told without this share (its host seemed gone): they are on origin
            console.warn(
                f"the table of {sweep['name']} was told without this share (its host seemed"
                f" gone): {', '.join(late)} succeeded and are on {remote}:"
                f" dvc exp pull {remote} {' '.join(late)}"
            )
        return None
    if parts is None or len(_shares(parts)) < k:
        waiting = k - len(_shares(parts or {}))
        if waiting:
            console.info(f"share {i}/{k} told; {waiting} share(s) of {sweep['name']} still running")
        return None
    merged = _merged(sweep.get("names") or [], _shares(parts))
    whole = {
        "by": socket.gethostname(),
        "part": i,
        "baseline": said["baseline"],
        "experiments": merged,
    }
    if not _push(ws, remote, whole, f"{root}/collected", create=True):
        return None  # another host told it
    others = [
        e["name"]
        for e in merged
        if e["state"] == dvcexp.SUCCESS and e["name"] not in {x["name"] for x in report.experiments}
    ]
    if others:  # here too, for `inv exp.show` and `exp.publish` on this host
        with contextlib.suppress(DvcInvokeError):
            ws.act(
                f"{ws.dvc} exp pull --no-cache {quote_all([remote, *others])}",
                step="collect",
                network=True,
                capture=True,
            )
    return merged


def _late(report: RunReport, collected: dict[str, Any]) -> list[str]:
    """This share's experiments that succeeded though the sweep's table calls them lost."""
    told = {e.get("name"): e.get("state") for e in collected.get("experiments") or ()}
    return [
        e["name"]
        for e in report.experiments
        if e["state"] == dvcexp.SUCCESS and told.get(e["name"]) != dvcexp.SUCCESS
    ]


def told_part_anyway(ws: Workspace, report: RunReport, remote: str) -> None:
    """A share that failed or was cancelled tells what became of its
    experiments, so that the sweep's table can be told without it."""
    sweep = report.sweep or {}
    if not sweep.get("part"):
        return
    root = ref_root(str(sweep["commit"]), str(sweep["name"]))
    try:
        _push(ws, remote, _share_told(report), f"{root}/part-{sweep['part'][0]}", create=False)
    except DvcInvokeError as exc:
        console.warn(f"could not tell share {sweep['part'][0]} on the git remote: {exc.reason}")


def _share_told(report: RunReport) -> dict[str, Any]:
    """What a share tells of itself: its experiments' ends, its baseline."""
    sweep = report.sweep or {}
    return {
        "part": sweep["part"][0],
        "of": sweep["part"][1],
        "machine": socket.gethostname(),
        "run": report.id,
        "baseline": sweep.get("baseline"),
        "experiments": [_told(e) for e in report.experiments],
    }


def _told(e: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "state", "step", "reason", "params", "metrics", "gpu")
    told = {k: e[k] for k in keep if e.get(k) is not None}
    if e.get("log_tail"):
        told["log_tail"] = str(e["log_tail"])[-TAIL:]
    if told.get("state") in (dvcexp.QUEUED, dvcexp.RUNNING):
        told["state"] = "cancelled"
    return told


def _push(ws: Workspace, remote: str, data: dict[str, Any], ref: str, *, create: bool) -> bool:
    """``data`` at ``ref`` on ``remote`` (`_commit`); with ``create``, only if no one
    created the ref first (False then)."""
    folder = Store(ws.root).dir / "spreads"
    folder.mkdir(parents=True, exist_ok=True)
    said = folder / f"{ref.rsplit('/', 2)[-2]}-{ref.rsplit('/', 1)[-1]}.out.json"
    said.write_text(json.dumps(data))
    try:
        commit = _commit(ws, said, ref)
    finally:
        said.unlink(missing_ok=True)
    lease = f"--force-with-lease={ref}:" if create else "--force"
    push = f"git push -q --no-verify {lease} {quote_all([remote, f'{commit}:{ref}'])}"
    if create:
        if ws.probe(push).ok:
            return True
        there = ws.probe(f"git ls-remote {quote_all([remote, ref])}").stdout.strip()
        if not there:
            console.warn(f"could not create {ref} on {remote}; `inv exp.show` tells the table")
        return False
    ws.act(push, step="share", network=True, capture=True, touches=False)
    return True


def _commit(ws: Workspace, path: Path, ref: str) -> str:
    """A commit of its own holding ``path`` as ``sweep.json`` (no parent, on no
    branch): refs of other objects than commits break ``dvc exp pull``."""
    blob = ws.probe(f"git hash-object -w {quote_all([str(path)])}").stdout.strip()
    tree = ws.probe(f"printf '100644 blob %s\\t{FILE}\\n' {blob} | git mktree").stdout.strip()
    who = "-c user.name=dvc-invoke -c user.email=dvc-invoke@localhost"
    message = quote_all([f"dvc-invoke: {ref.removeprefix(REFS + '/')}"])
    commit = ws.probe(f"git {who} commit-tree --no-gpg-sign {tree} -m {message}").stdout.strip()
    if not (blob and tree and commit):
        raise DvcInvokeError(f"git could not store {ref}", step="share")
    return str(commit)


def _parts(ws: Workspace, remote: str, root: str) -> dict[str, dict[str, Any]] | None:
    """The sweep's refs on ``remote``: ``part-i`` and ``collected``, read (None
    when the remote did not answer)."""
    fetched = ws.probe(f"git fetch -q --no-tags {quote_all([remote, f'+{root}/*:{root}/*'])}")
    if not fetched.ok:
        console.warn(f"could not read {root} on {remote}: {fetched.stderr.strip()[-200:]}")
        return None
    listed = ws.probe(f"git for-each-ref --format='%(refname) %(objectname)' {root}/")
    found: dict[str, dict[str, Any]] = {}
    for line in (listed.stdout or "").splitlines():
        ref, _, commit = line.partition(" ")
        text = ws.probe(f"git cat-file blob {commit}:{FILE}").stdout
        with contextlib.suppress(ValueError):
            found[ref.rsplit("/", 1)[-1]] = json.loads(text)
    return found


def _shares(parts: dict[str, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(v.get("part", 0)): v for k, v in parts.items() if k.startswith("part-")}


def _merged(names: list[str], shares: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    told = {e["name"]: e for share in shares.values() for e in share.get("experiments") or ()}
    return [told[n] for n in names if n in told]


# -- the laptop: gathering --------------------------------------------------------


def pending(root: Path) -> list[str]:
    """One line per sweep spread over hosts from here and not told yet: where
    its shares run, and what tells its table (no network: the laptop's notes)."""
    folder = Store(root).dir / "spreads"
    lines = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if path.name.endswith(".out.json"):
            continue
        try:
            spread = json.loads(path.read_text())
            if spread.get("told"):
                late = ", ".join(str(i) for i in spread["told"]["late"])
                lines.append(
                    f"sweep {spread['base']} ({spread['pipeline']}): told here without share(s)"
                    f" {late} (their host did not answer); `{tasknames.command('exp.show')}`"
                    " picks them up if they tell late"
                )
                continue
            where = ", ".join(
                f"{p['host']} (run {p['run']})" if p["run"] else f"{p['host']} (not started)"
                for p in spread["parts"]
            )
            lines.append(
                f"sweep {spread['base']} ({spread['pipeline']}, {len(spread['names'])}"
                f" experiments) spread over {where}: each host's with"
                f" `{tasknames.command('repro.status')} --host HOST`; the table, when told,"
                f" with `{tasknames.command('exp.show')}`"
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return lines


def gather(c: Any, ws: Workspace) -> None:
    """Each spread sweep started here and not told yet: told, or waited for
    (under ``--dry``, nothing: telling pushes a ref and posts to Slack)."""
    folder = _folder(ws)
    if ws.dry:
        return
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if path.name.endswith(".out.json"):
            continue
        try:
            spread = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        done = _late_shares(c, ws, spread) if spread.get("told") else _gather(c, ws, spread)
        if done:
            path.unlink(missing_ok=True)
        elif spread.get("told"):  # told here, some share may still tell late
            path.write_text(json.dumps(spread, indent=1))


def _gather(c: Any, ws: Workspace, spread: dict[str, Any]) -> bool:
    """True when the sweep has been told (here or by one of its hosts)."""
    from dvc_invoke.config.settings import settings
    from dvc_invoke.engines import ssh

    base, remote = spread["base"], spread["remote"]
    root = ref_root(spread["commit"], base)
    parts = _parts(ws, remote, root)
    if parts is None:
        return False
    shares = _shares(parts)
    collected = parts.get("collected")
    hosts = settings(c).hosts
    if collected is None:
        waiting, lost = [], {}
        for part in spread["parts"]:
            if part["part"] in shares:
                continue
            if not part["run"]:
                lost[part["part"]] = f"it did not start on {part['host']}"
                continue
            host = hosts.get(part["host"])
            said = ssh.probe(c, host, ws.git.prefix) if host else None
            for pause in RETRY_PROBE:  # a blip of the network is not a host gone
                if host is None or said is None or not said.problem:
                    break
                time.sleep(pause)
                said = ssh.probe(c, host, ws.git.prefix)
            if said is not None and said.held and said.held.get("id") == part["run"]:
                waiting.append(part)
            elif said is None or said.problem:
                why = said.problem if said else "not configured here any more"
                lost[part["part"]] = f"host {part['host']} is gone ({why})"
            else:
                lost[part["part"]] = (
                    f"its run {part['run']} on {part['host']} ended without telling its share"
                )
        if waiting:
            for part in waiting:
                console.info(
                    f"sweep {base}: share {part['part']} still running on {part['host']}"
                    f" (run {part['run']}): {tasknames.follow(part['run'], host=part['host'])}"
                )
            return False
        for part in spread["parts"]:
            if part["part"] in lost:
                shares[part["part"]] = {
                    "part": part["part"],
                    "experiments": [
                        {
                            "name": n,
                            "state": dvcexp.LOST,
                            "step": "run",
                            "reason": lost[part["part"]],
                            "params": _params_of(spread, n),
                        }
                        for n in part["names"]
                    ],
                }
                console.warn(f"sweep {base}: share {part['part']}: {lost[part['part']]}")
        baseline = next((s.get("baseline") for s in shares.values() if s.get("baseline")), None)
        merged = _merged(spread["names"], shares)
        whole = {"by": socket.gethostname(), "baseline": baseline, "experiments": merged}
        if _push(ws, remote, whole, f"{root}/collected", create=True):
            told_id = _tell(c, ws, spread, whole)
            _pull(ws, remote, merged)
            # A host that did not answer may come back and tell its share late.
            late = [i for i, why in lost.items() if why.startswith("host ")]
            if late:
                spread["told"] = {"run": told_id, "late": late}
                return False
            return True
        parts = _parts(ws, remote, root) or {}
        collected = parts.get("collected")
        if collected is None:
            return False
    told = collected.get("experiments") or []
    by = {part["part"]: part["host"] for part in spread["parts"]}.get(collected.get("part"))
    console.info(
        f"sweep {base} ({short(spread['commit'])}): told by {by or collected.get('by')}: "
        + sweeps.summary(told, None)
    )
    _pull(ws, remote, told)
    return True


def _late_shares(c: Any, ws: Workspace, spread: dict[str, Any]) -> bool:
    """A sweep told here without shares whose host did not answer: a share told
    since (its host came back) joins the sweep's record, its experiments are
    fetched, the team is told. True when no share is awaited any more."""
    from dvc_invoke.config.pipelines import resolve
    from dvc_invoke.flow import notifiers

    told, remote, base = spread["told"], spread["remote"], spread["base"]
    parts = _parts(ws, remote, ref_root(spread["commit"], base))
    if parts is None:
        return False
    shares = _shares(parts)
    arrived = [i for i in told["late"] if i in shares]
    if not arrived:
        return False
    store = Store(ws.root)
    try:
        report = store.load(told["run"])
    except DvcInvokeError:  # pruned since: nothing to amend
        return True
    came = {e["name"]: e for i in arrived for e in shares[i].get("experiments") or ()}
    report.experiments = [came.get(e["name"], e) for e in report.experiments]
    p = resolve(c, ws.root, spread["pipeline"])
    sweeps.rank(report, p.gates or ())
    if any(e["state"] == dvcexp.SUCCESS for e in report.experiments):
        report.status, report.reason, report.resume = "succeeded", None, None
    hosts = {part["part"]: part["host"] for part in spread["parts"]}
    said = (
        f"{p.name} sweep {base}: share{'s' if len(arrived) > 1 else ''}"
        f" {', '.join(str(i) for i in arrived)} told late by"
        f" {', '.join(hosts.get(i, '?') for i in arrived)}: "
        + sweeps.summary(list(came.values()), None)
        + f"; now {sweeps.summary(report.experiments, (report.sweep or {}).get('best'))}"
    )
    console.info(said)
    table = report.sweep_table()
    if table:
        console.table(*table)
    store.save(report)
    _pull(ws, remote, list(came.values()))
    for notifier in notifiers.notifiers(c, ws.root, slack=p.slack):
        if notifier.remote:
            notifier.send(said)
    told["late"] = [i for i in told["late"] if i not in arrived]
    return not told["late"]


def _params_of(spread: dict[str, Any], name: str) -> dict[str, Any]:
    from dvc_invoke.flow.array import _params

    index = spread["names"].index(name)
    return _params(spread["grid"][index])


def _pull(ws: Workspace, remote: str, experiments: list[dict[str, Any]]) -> None:
    """The experiments that succeeded, fetched here (their refs, not their data)."""
    done = [e["name"] for e in experiments if e.get("state") == dvcexp.SUCCESS]
    if done:
        pull = f"{ws.dvc} exp pull --no-cache {quote_all([remote, *done])}"
        res = ws.probe(pull, in_process=False)
        if not res.ok:
            console.warn(f"could not fetch the sweep's experiments: {pull}")


def _tell(c: Any, ws: Workspace, spread: dict[str, Any], whole: dict[str, Any]) -> str:
    """The table of a sweep whose hosts did not all tell it: here, on Slack, kept
    as a run record of this workspace."""
    from dvc_invoke.config.pipelines import resolve
    from dvc_invoke.flow import notifiers
    from dvc_invoke.runs.store import new_id

    p = resolve(c, ws.root, spread["pipeline"])
    report = RunReport(pipeline=p.name, command=spread["command"])
    report.id, report.slack = new_id(p.name), dict(p.slack or {}) or None
    report.started_at = float(spread.get("started") or report.started_at)
    report.experiments = whole["experiments"]
    report.sweep = {
        "sets": [],
        "name": spread["base"],
        "commit": spread["commit"],
        "baseline": whole.get("baseline"),
        "hosts": [part["host"] for part in spread["parts"]],
    }
    sweeps.rank(report, p.gates or ())
    done = any(e["state"] == dvcexp.SUCCESS for e in report.experiments)
    if done:
        report.end("succeeded")
    else:
        report.end("failed", reason="no experiment succeeded", resume=spread["command"])
    table = report.sweep_table()
    console.info(f"sweep {spread['base']} ({short(spread['commit'])}), told here:")
    if table:
        console.table(*table)
    chain = [n for n in notifiers.notifiers(c, ws.root, slack=p.slack) if n.remote]
    notifiers.deliver(chain, report)
    Store(ws.root).save(report)
    return str(report.id)
