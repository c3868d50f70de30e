"""GPU hosts over SSH: start a pipeline's run on a host, watch, follow and cancel it there.

The laptop runs the local guards (a clean workspace, its commit on the
upstream, where the host fetches it), then, through the system OpenSSH
client (``~/.ssh/config``, ProxyJump and the agent work as the user set them
up), asks the host: clone the project to the host's path if absent, refuse a
checkout with changes or one a run holds, fetch and check out the laptop's
exact commit, and start the run detached there (``--detach``, or ``--slurm``
on a login node). The host runs with its own ``.env`` and DVC credentials;
nothing secret leaves the laptop. ``repro.status/logs/cancel --host`` run on
the host's records.

Every remote command line is built here from validated names and quoted
values, and runs through ``c.run``: ``inv --dry`` prints them all.
On the host, ``python -m dvc_invoke host probe|checkout`` (`host_main`) answer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit

from dvc_invoke import console, tasknames
from dvc_invoke.adapters.shell import Workspace, quote_all
from dvc_invoke.config.settings import Host, is_dry, settings
from dvc_invoke.errors import DvcInvokeError

# What ssh says when it never reached the host's shell: its own exit code.
SSH_FAILED = 255
# `host checkout`'s exit code when a run holds the checkout or another start
# reserved it (EX_TEMPFAIL): nothing of ours to release; a group tries the next.
HOST_TAKEN = 75
# A host whose Python lacks dvc-invoke (or invoke): the line to look for.
_NO_MODULE = re.compile(r"No module named '?(dvc_invoke|invoke|dvc)\b")


class Taken(DvcInvokeError):
    """The host's checkout is a run's, or about to be: `HOST_TAKEN`."""

    exit_code = HOST_TAKEN


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


def _remote_path(path: str) -> str:
    """``path`` as a shell word on the host: ``~/x`` is the remote user's home."""
    if path == "~" or path.startswith("~/"):
        rest = path[2:]
        return '"$HOME"' + (f"/{shlex.quote(rest)}" if rest else "")
    return shlex.quote(path)


def _clone(url: str, path: str) -> str:
    """Clone into a folder of its own, then rename it into place: two starts that
    both found no checkout never clone into one folder; the second's is dropped."""
    folder, part = _remote_path(path), _remote_path(path + ".part") + '-"$$"'
    return (
        f"git clone -q {shlex.quote(url)} {part}"
        f" && {{ mv -T {part} {folder} 2>/dev/null || rm -rf {part}; }}"
    )


def _python(host: Host, *args: str) -> str:
    """The host's Python with ``args``, as a shell line (``~/`` is the remote user's home)."""
    py = _remote_path(host.python) if "/" in host.python else shlex.quote(host.python)
    return " ".join([py, quote_all(list(args))]) if args else py


def _in_checkout(host: Host, prefix: str, line: str) -> str:
    """``line`` run in the host's project folder, its Python's folder first on PATH
    (a virtualenv's ``dvc`` and ``python``, for the stages too).

    bash reads ``~/.bashrc`` when it thinks sshd started it (``SSH_CLIENT`` is
    set and it is a top-level shell): every ``bash -c`` of the run would, and
    a ``pyenv init`` or ``conda init`` there puts its own ``python`` first
    again. The run's commands are not ssh's: the variables go."""
    where = _remote_path(host.path + ("/" + prefix.rstrip("/") if prefix else ""))
    path = ""
    if "/" in host.python:
        folder = host.python.rsplit("/", 1)[0] or "/"
        path = f'PATH={_remote_path(folder)}:"$PATH" '
    return f"cd {where} && unset SSH_CLIENT SSH2_CLIENT && {path}{line}"


class Remote:
    """One host, through the ssh client the project configured."""

    def __init__(self, c: Any, host: Host):
        self.c = c
        self.host = host

    def _ssh(self, *, tty: bool = False) -> str:
        words = list(settings(self.c).ssh) + ["-o", "BatchMode=yes"]
        words += ["-t"] if tty else []
        words += ["-p", self.host.port] if self.host.port else []
        return quote_all(words + ["--", self.host.target])

    def run(
        self,
        line: str,
        *,
        capture: bool = True,
        tty: bool = False,
        echo: bool = True,
        read_only: bool = False,
    ) -> Any:
        """Run ``line`` (a shell line) on the host; ssh's own failure is one line.
        A ``read_only`` line runs under ``inv --dry`` too, as local probes do."""
        cmd = f"{self._ssh(tty=tty)} {shlex.quote(line)}"
        options: dict[str, Any] = {"dry": False} if read_only else {}
        res = self.c.run(
            cmd,
            warn=True,
            hide="both" if capture else None,  # "both", not True, which turns echo off
            echo=echo and settings(self.c).echo,
            echo_format=console.echo_format(self.c.config.run.echo_format),
            in_stream=False if not tty else None,
            **options,
        )
        if res.exited == SSH_FAILED:
            said = [ln for ln in (res.stderr or "").splitlines() if ln.strip()]
            if not said:  # ssh says why it failed; silent, it was interrupted (Ctrl-C)
                raise Exit(code=130)
            port = f"-p {self.host.port} " if self.host.port else ""
            raise DvcInvokeError(
                f"cannot reach host {self.host.name} ({self.host.ssh}) over ssh:"
                f" {said[-1]}; check that `ssh {port}{self.host.target} true` works from"
                f" here (keys, ~/.ssh/config)",
                step="host",
            )
        missing = _NO_MODULE.search(res.stderr or "")
        if res.failed and missing:
            raise DvcInvokeError(self._missing(missing.group(1)), step="host")
        return res

    def _missing(self, module: str) -> str:
        return (
            f"host {self.host.name}: {self.host.python} has no {module}:"
            f" install dvc-invoke there (pip install from a clone of it, or its wheel), or set"
            f" dvc_invoke.hosts.{self.host.name}.python to the Python that has it"
        )

    def python(self, prefix: str, *args: str, capture: bool = True, tty: bool = False) -> Any:
        line = _in_checkout(self.host, prefix, _python(self.host, *args))
        return self.run(line, capture=capture, tty=tty)

    def probe(self, prefix: str) -> Probe:
        """Ask the host about its checkout; an unreachable host is a probe with a problem."""
        py = _python(self.host)
        inside = _in_checkout(
            self.host, prefix, _python(self.host, "-m", "dvc_invoke", "host", "probe")
        )
        folder = _remote_path(self.host.path)
        line = (
            f"if [ -d {folder}/.git ]; then {inside};"
            f" else {py} -c 'import dvc_invoke' && echo '{{\"absent\": true}}'; fi"
        )
        try:
            res = self.run(line, echo=False, read_only=True)
        except DvcInvokeError as exc:
            return Probe(self.host, problem=exc.reason)
        try:
            said = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            last = (res.stderr or res.stdout or "").strip().splitlines()
            reason = last[-1] if last else f"exited with {res.exited}"
            return Probe(self.host, problem=f"host {self.host.name}: {reason}")
        if said.get("missing"):
            return Probe(self.host, problem=self._missing(said["missing"]))
        return Probe(
            self.host,
            absent=bool(said.get("absent")),
            held=said.get("held"),
            changed=said.get("changed"),
            gpus=said.get("gpus"),
            busy_gpus=int(said.get("busy_gpus") or 0),
            reserved=said.get("reserved"),
        )


# -- the laptop's side ------------------------------------------------------------


def start(c: Any, name: str, host_name: str, task_args: list[str], *, slurm: bool) -> None:
    """Start pipeline ``name``'s run on a host (or a group's first free host)."""
    from dvc_invoke.config.pipelines import resolve

    ws = Workspace(c)
    resolve(c, ws.root, name)  # an unknown pipeline is refused here, not over there
    hosts = choose(c, host_name)
    branch, commit, url = _pushed(ws)
    while True:
        chosen = _pick(c, hosts, host_name, ws.git.prefix, name)
        host = chosen.host
        if chosen.gpus is not None and chosen.busy_gpus >= chosen.gpus:
            console.warn(f"all {chosen.gpus} GPUs of {host.name} are in use; starting anyway")
        checkout = _python(host, "-m", "dvc_invoke", "host", "checkout", branch, commit)
        run = _python(host, "-m", "invoke", *task_args) + (" --slurm" if slurm else " --detach")
        folder = _remote_path(host.path)
        res = Remote(c, host).run(
            f"{{ [ -d {folder}/.git ] || {_clone(url, host.path)}; }}"
            f" && {_in_checkout(host, ws.git.prefix, checkout)}"
            f" && {_in_checkout(host, ws.git.prefix, run)}"
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
            # A run refused before it claimed the checkout leaves it reserved: freed now.
            release = _in_checkout(
                host, ws.git.prefix, _python(host, "-m", "dvc_invoke", "host", "release")
            )
            with contextlib.suppress(DvcInvokeError):
                Remote(c, host).run(f"[ ! -d {folder} ] || {{ {release}; }}", echo=False)
        resume = f"{tasknames.program()} {quote_all(task_args)} --host {shlex.quote(host_name)}"
        raise DvcInvokeError(f"host {host.name}: {_said(res)}", step="host", resume=resume)
    for line in res.stdout.splitlines():  # the host's warnings (a stale upstream, say)
        if line.startswith("! "):
            console.warn(f"{host.name}: {line[2:]}")
    run_id = _run_id(res.stdout)
    where = f"{host.name} ({host.path})"
    if run_id is None:
        console.result(True, f"{name} started on {where}")
        sys.stdout.write(res.stdout)
        return
    how = "submitted to SLURM from" if slurm else "running on"
    console.result(True, f"{name} is {how} {where} as run {run_id}")
    logs, cancel = tasknames.command("repro.logs"), tasknames.command("repro.cancel")
    console.info(f"follow:  {logs} --run {run_id} --follow --host {host.name}")
    console.info(f"cancel:  {cancel} --run {run_id} --host {host.name}")


def _pushed(ws: Workspace) -> tuple[str, str, str]:
    """The branch, the commit and the URL a host fetches them from: the laptop's
    workspace clean, on a branch, neither ahead of its upstream nor behind it."""
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
        ws.act(f"git fetch -q {shlex.quote(remote_name)}", step="guards", network=True)
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
    url = ws.probe(f"git remote get-url {shlex.quote(remote_name)}").stdout.strip()
    return branch, commit, without_credentials(url)


def without_credentials(url: str) -> str:
    """``url`` without the user and password an http(s) URL may carry (a token,
    often): the host clones with credentials of its own, and nothing secret is
    echoed, shown by ``--dry`` or copied to the host."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _pick(c: Any, hosts: list[Host], asked: str, prefix: str, pipeline: str) -> Probe:
    """The first host that is free; a single host's refusal is its own line."""
    probes = []
    for host in hosts:
        probe = Remote(c, host).probe(prefix)
        if len(hosts) == 1 and (probe.problem or probe.held or probe.reserved or probe.changed):
            raise DvcInvokeError(_refusal(probe, pipeline), step="host")
        if len(hosts) == 1 or probe.free:
            return probe
        console.info(f"{host.name}: {probe.why_not()}; trying the next host")
        probes.append(probe)
    said = "; ".join(f"{p.host.name}: {p.why_not()}" for p in probes)
    raise DvcInvokeError(f"no free host in {asked}: {said}", step="host")


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
        logs, cancel = tasknames.command("repro.logs"), tasknames.command("repro.cancel")
        return (
            f"host {name}: run {run_id} ({probe.held['pipeline']}) holds {probe.host.path}:"
            f" follow it with `{logs} --run {run_id} --follow --host {name}`, or stop it with"
            f" `{cancel} --run {run_id} --host {name}`"
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
            line = lines[-1]
            if line.startswith("dvc-invoke: "):
                line = line[len("dvc-invoke: ") :].split("; then run: ", 1)[0]
            return line
    return f"exited with {res.exited}"


def _run_id(out: str) -> str | None:
    found = re.findall(r"\brun (\d{8}-\d{6}-[A-Za-z0-9_.-]+-[0-9a-f]{4})\b", out)
    return found[-1] if found else None


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
    remote = Remote(c, conf.hosts[host_name])
    # The task as the project's tasks.py names it: the host has the same tasks.py.
    name = tasknames.command(task).split(" ", 1)[1]
    # Its output comes here: coloured as this console is (ssh passes on no variable).
    colour = "FORCE_COLOR=1" if console.colour() else "NO_COLOR=1"
    inv = _python(conf.hosts[host_name], "-m", "invoke", name, *args)
    line = _in_checkout(conf.hosts[host_name], ws.git.prefix, f"env {colour} {inv}")
    res = remote.run(line, capture=False, tty=tty)
    if res.failed and not is_dry(c):
        raise Exit(code=res.exited or 1)  # the host's own line is above


# -- the host's side: python -m dvc_invoke host probe|checkout ------------------


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
    state = ws.git.state(step="host")
    remote = "origin"
    if state.branch:
        target = ws.git.upstream_target(state.branch)
        remote = target[0] if target else remote
    ws.act(f"git fetch -q {shlex.quote(remote)}", step="host", network=True)
    if ws.probe(f"git rev-parse -q --verify {shlex.quote(commit + '^{commit}')}").failed:
        raise DvcInvokeError(f"commit {commit[:7]} is not on {remote}", step="host")
    if ws.probe(f"git rev-parse -q --verify {shlex.quote('refs/heads/' + branch)}").ok:
        ws.act(f"git checkout -q {shlex.quote(branch)}", step="host")
    else:
        ws.act(f"git checkout -q -b {shlex.quote(branch)} {shlex.quote(commit)}", step="host")
        upstream = f"{remote}/{branch}"
        ws.probe(f"git branch -q --set-upstream-to={shlex.quote(upstream)}")
    res = ws.probe(f"git merge -q --ff-only {shlex.quote(commit)}")
    head = ws.git.head()
    if res.failed or head != commit:
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
