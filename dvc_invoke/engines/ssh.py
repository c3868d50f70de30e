"""GPU hosts over SSH, the laptop's side: start a run on a host, watch, follow, cancel it.

The laptop runs the local guards (a clean workspace, its commit on the
upstream, where the host fetches it), chooses the host (one, or a group's
first free one), then asks it: clone the project to the host's path if
absent, refuse a checkout with changes or one a run holds, fetch and check
out the laptop's exact commit, and start the run detached there
(``--detach``, or ``--slurm`` on a login node). The host runs with its own
``.env`` and DVC credentials; nothing secret leaves the laptop.
``repro.status/logs/cancel --host`` run on the host's records.

Every remote command runs through ``c.run``: ``inv --dry`` prints them all.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from dataclasses import dataclass
from typing import Any

from invoke.exceptions import Exit

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.git import clone_line, without_credentials
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.adapters.ssh import Remote, in_checkout, missing_module, python_line, remote_path
from dvc_invoke.config.settings import Host, is_dry, settings
from dvc_invoke.engines.ssh_agent import ENV_TELL, HOST_TAKEN, started
from dvc_invoke.errors import DvcInvokeError, what_failed


@dataclass
class Probe:
    """What a host said of its checkout: absent, held by a run, changed, its GPUs."""

    host: Host
    absent: bool = False
    held: dict[str, str] | None = None
    changed: list[str] | None = None
    gpus: int | None = None  # None: no nvidia-smi there
    busy_gpus: int = 0
    reserved: float | None = None  # seconds since another start took the checkout
    problem: str | None = None  # unreachable, no dvc-invoke: one line

    @property
    def free(self) -> bool:
        no_gpu_free = self.gpus is not None and self.busy_gpus >= self.gpus
        return not (self.problem or self.held or self.reserved or self.changed or no_gpu_free)

    def why_not(self) -> str:
        if self.problem:
            return self.problem
        if self.held:
            return f"run {self.held['id']} ({self.held['pipeline']}) holds its checkout"
        if self.reserved is not None:
            return f"a run is being started there ({self.reserved:.0f}s ago)"
        if self.changed:
            return f"its checkout has changes ({', '.join(self.changed[:3])})"
        return f"all {self.gpus} GPUs are in use"


def choose(c: Any, name: str) -> list[Host]:
    """The hosts ``--host NAME`` means: one host, or a group's members in order."""
    conf = settings(c)
    if name in conf.hosts:
        return [conf.hosts[name]]
    if name in conf.host_groups:
        return [conf.hosts[member] for member in conf.host_groups[name]]
    known = sorted(conf.hosts) + sorted(conf.host_groups)
    raise DvcInvokeError(
        f"unknown host {name!r}: configure it under dvc_invoke.hosts (or host_groups)"
        f" in invoke.yaml (known: {', '.join(known) or 'none'})",
        step="guards",
    )


def probe(c: Any, host: Host, prefix: str) -> Probe:
    """Ask the host about its checkout; an unreachable host is a probe with a problem."""
    py = python_line(host)
    inside = in_checkout(host, prefix, python_line(host, "-m", "dvc_invoke", "host", "probe"))
    folder = remote_path(host.path)
    line = (
        f"if [ -d {folder}/.git ]; then {inside};"
        f" else {py} -c 'import dvc_invoke' && echo '{{\"absent\": true}}'; fi"
    )
    try:
        res = Remote(c, host).run(line, echo=False, read_only=True)
    except DvcInvokeError as exc:
        return Probe(host, problem=exc.reason)
    try:
        said = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (res.stderr or res.stdout or "").strip().splitlines()
        reason = last[-1] if last else f"exited with {res.exited}"
        return Probe(host, problem=f"host {host.name}: {reason}")
    if said.get("missing"):
        return Probe(host, problem=missing_module(host, said["missing"]))
    return Probe(
        host,
        absent=bool(said.get("absent")),
        held=said.get("held"),
        changed=said.get("changed"),
        gpus=said.get("gpus"),
        busy_gpus=int(said.get("busy_gpus") or 0),
        reserved=said.get("reserved"),
    )


def _clone(url: str, path: str) -> str:
    """Clone into a folder of its own, then rename it into place: two starts that
    both found no checkout never clone into one folder; the second's is dropped."""
    folder, part = remote_path(path), remote_path(path + ".part") + '-"$$"'
    return f"{clone_line(url, part)} && {{ mv -T {part} {folder} 2>/dev/null || rm -rf {part}; }}"


def start(c: Any, name: str, host_name: str, task_args: list[str], *, slurm: bool) -> None:
    """Start pipeline ``name``'s run on a host (or a group's first free host)."""
    from dvc_invoke.config.pipelines import resolve

    ws = Workspace(c)
    resolve(c, ws.root, name)  # an unknown pipeline is refused here, not over there
    hosts = choose(c, host_name)
    branch, commit, url = pushed(ws)
    while True:
        chosen = _pick(c, hosts, host_name, ws.git.prefix, name)
        host = chosen.host
        if chosen.gpus is not None and chosen.busy_gpus >= chosen.gpus:
            console.warn(f"all {chosen.gpus} GPUs of {host.name} are in use; starting anyway")
        res = Remote(c, host).run(
            _start_line(host, ws.git.prefix, url, branch, commit, task_args, slurm)
        )
        if is_dry(c):  # shown, not run
            return
        if res.exited == HOST_TAKEN and len(hosts) > 1:
            # Another start took it between the probe and the checkout: the next one.
            console.info(f"{host.name}: taken by another start a moment ago; trying the next host")
            hosts = [h for h in hosts if h is not host]
            continue
        break
    if res.failed:
        if res.exited != HOST_TAKEN:
            _release(c, host, ws.git.prefix)
        resume = f"{tasknames.program()} {quote_all(task_args)} --host {shlex.quote(host_name)}"
        raise DvcInvokeError(f"host {host.name}: {_said(res)}", step="host", resume=resume)
    _tell_started(name, host, res.stdout, slurm=slurm)


def launch(
    c: Any, host: Host, prefix: str, pushed: tuple[str, str, str], task_args: list[str]
) -> str | None:
    """Start ``task_args`` detached on ``host`` (found free) at the laptop's pushed
    ``(branch, commit, url)``; the run's id there (None under ``--dry``). A host
    that refuses is one line (its checkout released, unless another start took it)."""
    branch, commit, url = pushed
    res = Remote(c, host).run(_start_line(host, prefix, url, branch, commit, task_args, False))
    if is_dry(c):
        return None
    if res.failed:
        if res.exited != HOST_TAKEN:
            _release(c, host, prefix)
        raise DvcInvokeError(f"host {host.name}: {_said(res)}", step="host")
    for line in res.stdout.splitlines():
        if line.startswith("! "):
            console.warn(f"{host.name}: {line[2:]}")
    said = started(res.stdout)
    return said["run"] if said else None


def _start_line(
    host: Host,
    prefix: str,
    url: str,
    branch: str,
    commit: str,
    task_args: list[str],
    slurm: bool,
) -> str:
    """The host's shell line: a clone if it has none, its checkout at ``commit``, the
    run started detached (or submitted), telling its id in one line (`ENV_TELL`)."""
    checkout = python_line(host, "-m", "dvc_invoke", "host", "checkout", branch, commit)
    run = python_line(host, "-m", "invoke", *task_args) + (" --slurm" if slurm else " --detach")
    folder = remote_path(host.path)
    return (
        f"{{ [ -d {folder}/.git ] || {_clone(url, host.path)}; }}"
        f" && {in_checkout(host, prefix, checkout)}"
        f" && {in_checkout(host, prefix, f'env {ENV_TELL}=1 {run}')}"
    )


def _release(c: Any, host: Host, prefix: str) -> None:
    """A run refused before it claimed the checkout leaves it reserved: freed now."""
    release = in_checkout(host, prefix, python_line(host, "-m", "dvc_invoke", "host", "release"))
    folder = remote_path(host.path)
    with contextlib.suppress(DvcInvokeError):
        Remote(c, host).run(f"[ ! -d {folder} ] || {{ {release}; }}", echo=False)


def _tell_started(name: str, host: Host, out: str, *, slurm: bool) -> None:
    """What the host said of the run it started: its warnings, the run's id, how to follow it."""
    for line in out.splitlines():  # the host's warnings (a stale upstream, say)
        if line.startswith("! "):
            console.warn(f"{host.name}: {line[2:]}")
    said = started(out)
    where = f"{host.name} ({host.path})"
    if said is None:
        console.result(True, f"{name} started on {where}")
        sys.stdout.write(out)
        return
    run_id = said["run"]
    how = "submitted to SLURM from" if slurm else "running on"
    console.result(True, f"{name} is {how} {where} as run {run_id}")
    console.info(f"follow:  {tasknames.follow(run_id, host=host.name)}")
    console.info(f"cancel:  {tasknames.cancel(run_id, host=host.name)}")


def pushed(ws: Workspace) -> tuple[str, str, str]:
    """The branch, the commit and the URL a host fetches them from: the laptop's
    workspace clean, on a branch, neither ahead of its upstream nor behind it."""
    git = ws.git
    state = ws.git.state()
    if state.changed:
        raise DvcInvokeError(
            f"the workspace has changes the host would not run ({', '.join(state.changed[:5])}):"
            " commit and push them, or stash them, first",
            step="guards",
        )
    if not state.branch or not state.commit:
        raise DvcInvokeError(
            "a host runs a branch: check out the branch to run (HEAD is detached)", step="guards"
        )
    target = ws.git.upstream_target(state.branch)
    if target is None or not state.upstream:
        raise DvcInvokeError(
            f"branch {state.branch} has no upstream for the host to fetch it from:"
            f" git push -u origin {shlex.quote(state.branch)}",
            step="guards",
        )
    remote_name, _ = target
    if not ws.dry:
        git.fetch(remote_name, step="guards")
        state = ws.git.state()
    branch, commit = state.branch or "", state.commit or ""
    if state.behind:
        raise DvcInvokeError(
            f"branch {branch} is {state.behind} commit(s) behind {state.upstream}: git pull"
            " first, so that the host runs what the team has (its checkout only moves forward)",
            step="guards",
        )
    if state.ahead:
        raise DvcInvokeError(
            f"commit {commit[:7]} is not on {state.upstream} yet, where the host fetches"
            f" it: git push first",
            step="guards",
        )
    return branch, commit, without_credentials(git.remote_url(remote_name))


def _pick(c: Any, hosts: list[Host], asked: str, prefix: str, pipeline: str) -> Probe:
    """The first host that is free; a single host's refusal is its own line."""
    probes = []
    for host in hosts:
        said = probe(c, host, prefix)
        if len(hosts) == 1 and (said.problem or said.held or said.reserved or said.changed):
            raise DvcInvokeError(_refusal(said, pipeline), step="host")
        if len(hosts) == 1 or said.free:
            return said
        console.info(f"{host.name}: {said.why_not()}; trying the next host")
        probes.append(said)
    refused = "; ".join(f"{p.host.name}: {p.why_not()}" for p in probes)
    raise DvcInvokeError(f"no free host in {asked}: {refused}", step="host")


def _refusal(probe: Probe, pipeline: str) -> str:
    name = probe.host.name
    if probe.problem:
        return probe.problem
    if probe.reserved is not None:
        return (
            f"host {name}: a run is being started there ({probe.reserved:.0f}s ago); try again"
            f" in a moment, or see `{tasknames.command('repro.status')} --host {name}`"
        )
    if probe.held:
        run_id = probe.held["id"]
        return (
            f"host {name}: run {run_id} ({probe.held['pipeline']}) holds {probe.host.path}:"
            f" follow it with `{tasknames.follow(run_id, host=name)}`, or stop it with"
            f" `{tasknames.cancel(run_id, host=name)}`"
        )
    discard = tasknames.command("repro.discard")
    return (
        f"host {name}: the checkout at {probe.host.path} has changes"
        f" ({', '.join((probe.changed or [])[:5])}): what a failed or cancelled run left goes"
        f" with `{discard} --pipeline {shlex.quote(pipeline)} --host {name}`; else commit or"
        " discard them there"
    )


def _said(res: Any) -> str:
    """The line the host's command ended with (our one-line errors, git's, dvc's);
    one of ours loses its prefix and its resume hint (the laptop's has --host)."""
    for text in (res.stderr, res.stdout):
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        if lines:
            return what_failed(lines[-1]) or lines[-1]
    return f"exited with {res.exited}"


def on_host(c: Any, host_name: str, task: str, args: list[str], *, tty: bool = False) -> None:
    """Run one of the ``repro`` tasks (status, logs, cancel) on a host, its output here."""
    conf = settings(c)
    if host_name not in conf.hosts:
        raise DvcInvokeError(
            f"--host {host_name}: name one host, not a group (hosts: {', '.join(conf.hosts)})"
            if host_name in conf.host_groups
            else f"unknown host {host_name!r}: configure it under dvc_invoke.hosts in invoke.yaml"
            f" (known: {', '.join(sorted(conf.hosts)) or 'none'})",
            step="host",
        )
    ws = Workspace(c)
    host = conf.hosts[host_name]
    # The task as the project's tasks.py names it: the host has the same tasks.py.
    name = tasknames.command(task).split(" ", 1)[1]
    # Its output comes here: coloured as this console is (ssh passes on no variable).
    colour = "FORCE_COLOR=1" if console.colour() else "NO_COLOR=1"
    inv = python_line(host, "-m", "invoke", name, *args)
    line = in_checkout(host, ws.git.prefix, f"env {colour} {inv}")
    res = Remote(c, host).run(line, capture=False, tty=tty)
    if res.failed and not is_dry(c):
        raise Exit(code=res.exited or 1)  # the host's own line is above
