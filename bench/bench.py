"""dvc-invoke against the hand-written ritual, side by side, in one run.

    python bench/bench.py [--quick] [--runs N] [--json PATH] [--cases 1,2,...,12]

Every case runs its contenders alternately on generated projects (real git,
real dvc, a bare origin and a local DVC remote in a temporary folder), and
prints medians, the ratio of each pair and the target. Nothing here is a
test: the machines are shared and noisy, so the numbers are read, not
asserted. ``--quick`` shrinks the projects and data to check the script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from invoke import Context

from dvc_invoke.cli import sandbox

PY = sys.executable
# Every contender runs as from a normal install: Python may cache bytecode
# (a shell that forbids it would charge whoever is not pre-compiled).
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "DVC_NO_ANALYTICS": "1",
    "PATH": os.path.dirname(PY) + os.pathsep + os.environ.get("PATH", ""),
}

# The seed's Makefile, as a script. On a fresh clone it only works with one more
# pull: its `dvc repro --force metrics/dvc.yaml` retrains the model too (DESIGN
# fact 2), which needs the training data. (`dvc pull -R model`, as the seed
# wrote it, pulls nothing here: DESIGN fact 1; the model is named directly.)
SEED_SCRIPT = """\
set -e
git diff --quiet HEAD
dvc pull -q model/model.json
dvc pull -q -R dataset/testset
dvc pull -q dataset/train.csv
dvc repro -q --force metrics/dvc.yaml
git add metrics
git commit -q -m "[DVC] Update model metrics" || true
dvc push -q -R metrics
git push -q
"""


@dataclass
class Case:
    name: str
    contenders: list[str]
    times: dict[str, list[float]] = field(default_factory=dict)
    target: str = ""
    ratio_max: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def median(self, who: str) -> float:
        return statistics.median(self.times[who])

    @property
    def ratio(self) -> float:
        a, b = self.contenders
        return self.median(a) / self.median(b)

    @property
    def passed(self) -> bool | None:
        return None if self.ratio_max is None else self.ratio <= self.ratio_max


def alternate(contenders: list[str], i: int) -> list[str]:
    """The contenders in turn, first one then the other going first (warm caches)."""
    return contenders if i % 2 == 0 else contenders[::-1]


def run(cmd: list[str] | str, cwd: Path, check: bool = True, **kw) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        env=ENV,
        check=check,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        shell=isinstance(cmd, str),
        **kw,
    )
    return time.perf_counter() - start


def fresh_copy(template: sandbox.Sandbox, where: Path) -> sandbox.Sandbox:
    shutil.copytree(template.base, where, symlinks=True)
    sb = sandbox.Sandbox(where, where / "origin.git", where / "dvc-remote", where / "project")
    subprocess.run(
        ["git", "remote", "set-url", "origin", str(sb.origin)], cwd=sb.project, check=True
    )
    return sb


def teammate(template: sandbox.Sandbox, where: Path) -> Path:
    """A fresh clone of a fresh copy: data only on the remote, as on a new GPU box."""
    sb = fresh_copy(template, where)
    return sandbox.clone(Context(), sb, where / "gpu-box")


# -- the cases -----------------------------------------------------------------------


def case_full_flow(tmp: Path, runs: int, template: sandbox.Sandbox) -> Case:
    case = Case(
        "1. full flow vs the seed's script",
        ["inv metrics", "seed script"],
        target="ratio <= 1.10",
        ratio_max=1.10,
    )
    case.times = {c: [] for c in case.contenders}
    for i in range(runs):
        for who in alternate(case.contenders, i):
            clone = teammate(template, tmp / f"flow-{i}-{who.replace(' ', '-')}")
            if who == "inv metrics":
                case.times[who].append(run([PY, "-m", "invoke", "metrics"], clone))
            else:
                case.times[who].append(run(SEED_SCRIPT, clone, executable="/bin/bash"))
    return case


def case_startup(tmp: Path, runs: int) -> Case:
    case = Case(
        "2. inv --list: five collections vs bare invoke",
        ["dvc-invoke", "bare invoke"],
        target="ratio <= 1.15",
        ratio_max=1.15,
    )
    ours, bare = tmp / "startup-ours", tmp / "startup-bare"
    ours.mkdir()
    bare.mkdir()
    (ours / "tasks.py").write_text(sandbox.TASKS_PY)
    (bare / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef hello(c):\n    pass\n")
    case.times = {c: [] for c in case.contenders}
    for folder in (ours, bare):  # untimed: bytecode caches, as after a first use
        run([PY, "-m", "invoke", "--list"], folder)
    folders = {"dvc-invoke": ours, "bare invoke": bare}
    for i in range(runs * 3):
        for who in alternate(case.contenders, i):
            case.times[who].append(run([PY, "-m", "invoke", "--list"], folders[who]))
    return case


def case_detach(tmp: Path, runs: int, template: sandbox.Sandbox) -> Case:
    case = Case(
        "3. --detach returns vs the same flow's guards",
        ["repro --detach", "guards"],
        target="detach <= guards + 0.5 s",
    )
    sb = fresh_copy(template, tmp / "detach")
    case.times = {c: [] for c in case.contenders}
    commands = {
        "repro --detach": ["repro", "--pipeline", "training", "--detach"],
        "guards": ["guards", "--pipeline", "training"],
    }
    for i in range(runs):
        for who in alternate(case.contenders, i):
            case.times[who].append(run([PY, "-m", "invoke", *commands[who]], sb.project))
            if who == "repro --detach":  # let it end, untimed
                run([PY, "-m", "invoke", "repro.logs", "--follow"], sb.project)
    gap = case.median("repro --detach") - case.median("guards")
    case.extra["detach - guards (s)"] = round(gap, 3)
    case.extra["pass"] = gap <= 0.5
    return case


def _scaled_project(root: Path, pipelines: int, stages: int, files_per_stage: int) -> Path:
    """A DVC project with ``pipelines`` pipelines of ``stages`` chained stages, each
    stage writing ``files_per_stage`` outputs: never run, only read."""
    root.mkdir(parents=True)
    c = Context()
    with c.cd(str(root)):
        c.run(
            "git init -q -b main && dvc init -q && dvc config core.analytics false",
            hide=True,
            env=ENV,
        )
    (root / "data.txt").write_text("seed\n")
    for p in range(pipelines):
        folder = root / f"p{p:03d}"
        folder.mkdir()
        lines = ["stages:"]
        for s in range(stages):
            dep = "../data.txt" if s == 0 else f"s{s - 1:04d}/f0000"
            outs = "\n".join(f"      - s{s:04d}/f{f:04d}" for f in range(files_per_stage))
            lines.append(f"  s{s:04d}:\n    cmd: echo\n    deps:\n      - {dep}\n    outs:\n{outs}")
        (folder / "dvc.yaml").write_text("\n".join(lines) + "\n")
    return root


def case_scale(tmp: Path, runs: int, quick: bool) -> list[Case]:
    sizes = (
        [(1, 50, 10), (1, 500, 10), (50, 10, 1), (200, 10, 1)]
        if not quick
        else [(1, 20, 5), (1, 100, 5), (10, 5, 1), (40, 5, 1)]
    )
    cases = []
    resolve = textwrap.dedent(
        """\
        import resource, sys
        from invoke import Context
        from dvc_invoke import flow
        from dvc_invoke.config.pipelines import Pipeline
        from dvc_invoke.adapters.shell import Workspace
        ws = Workspace(Context())
        plan = flow.plan(ws, Pipeline("p", sys.argv[1]))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(plan.graph.stages), len(plan.push), rss)
        """
    )
    for pipelines, stages, files in sizes:
        root = _scaled_project(
            tmp / f"scale-{pipelines}x{stages}x{files}", pipelines, stages, files
        )
        dvcfile = "p000/dvc.yaml"
        case = Case(
            f"4. resolve pull/push sets: {pipelines} pipeline(s) x {stages} stages x {files} outs",
            ["plan (dvc-invoke)", "dvc status"],
            target="ratio < 2.0, linear",
            ratio_max=2.0,
        )
        case.times = {c: [] for c in case.contenders}
        commands = {
            "plan (dvc-invoke)": [PY, "-c", resolve, dvcfile],
            "dvc status": [PY, "-m", "dvc", "status", "-q", dvcfile],
        }
        for i in range(runs):
            for who in alternate(case.contenders, i):
                # `dvc status -q` exits 1 when stages changed (they never ran): not an error.
                case.times[who].append(run(commands[who], root, check=who != "dvc status"))
        out = subprocess.run(
            [PY, "-c", resolve, dvcfile],
            cwd=root,
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        case.extra = {
            "stages": int(out[0]),
            "outputs": int(out[1]),
            "max RSS (MiB)": round(int(out[2]) / 1024, 1),
        }
        cases.append(case)
    # Growth with the pipeline's size (stages, outputs), and with the number of
    # other pipelines in the project: 1.0 is linear, below is sub-linear.
    for (small, large), size in (
        ((cases[0], cases[1]), cases[1].extra["outputs"] / cases[0].extra["outputs"]),
        ((cases[2], cases[3]), sizes[3][0] / sizes[2][0]),
    ):
        growth = large.median("plan (dvc-invoke)") / small.median("plan (dvc-invoke)")
        large.extra["time growth / size growth"] = round(growth / size, 3)
    return cases


def case_data(tmp: Path, runs: int, mib: int) -> Case:
    """Pulling inputs of which half are already in the local cache: bytes read."""
    case = Case(
        f"5. pull {mib} MiB, half cached: bytes read",
        ["inv data.pull", "dvc pull"],
        target="no more read than dvc pull alone",
        ratio_max=1.05,
    )
    base = tmp / "data-template"
    sb = sandbox.create(Context(), base, trained=True)
    big = sb.project / "dataset" / "big"
    big.mkdir()
    chunk = 8 * 1024 * 1024
    for i in range(max(2, mib // 8)):
        (big / f"part-{i:04d}.bin").write_bytes(os.urandom(chunk))
    # The training pipeline reads it: its inputs are derived from the DAG.
    training_yaml = sb.project / "training" / "dvc.yaml"
    training_yaml.write_text(
        training_yaml.read_text().replace(
            "    - ../dataset/train.csv\n", "    - ../dataset/train.csv\n    - ../dataset/big\n", 1
        )
    )
    c = Context()
    with c.cd(str(sb.project)):
        c.run(
            f"{PY} -m dvc add -q dataset/big && git add -A && git commit -qm big && "
            f"{PY} -m dvc push -q && git push -q",
            hide=True,
            env=ENV,
        )
    case.times = {c: [] for c in case.contenders}
    read: dict[str, list[int]] = {c: [] for c in case.contenders}
    for i in range(runs):
        for who in alternate(case.contenders, i):
            clone = teammate(sb, tmp / f"data-{i}-{who.replace(' ', '-')}")
            _half_cache(sb.project, clone)
            if who == "inv data.pull":
                cmd = [PY, "-m", "invoke", "data.pull", "--pipeline", "training"]
            else:
                cmd = [PY, "-m", "dvc", "pull", "-q", "dataset/train.csv", "dataset/big"]
            seconds, nbytes = _measured(cmd, clone)
            pulled = list((clone / "dataset" / "big").glob("*.bin"))
            assert len(pulled) == len(list(big.glob("*.bin"))), f"{who} did not pull it all"
            case.times[who].append(seconds)
            read[who].append(nbytes)
            shutil.rmtree(clone.parent)
    case.extra = {
        f"MiB read by {w}": round(statistics.median(v) / 2**20, 1) for w, v in read.items()
    }
    ours, theirs = (statistics.median(read[w]) for w in case.contenders)
    case.extra["bytes ratio"] = round(ours / theirs, 3)
    case.extra["pass"] = ours / theirs <= 1.05
    return case


def case_fresh_clone(tmp: Path, runs: int) -> Case:
    """A fresh clone with nothing changed, DVC's get-started layout: what it costs
    to find the pipeline up to date (time, and bytes the process tree read)."""
    case = Case(
        "7. fresh clone, nothing changed: up to date",
        ["inv train", "dvc repro --pull"],
        target="ratio <= 1.0; no stage runs",
        ratio_max=1.0,
    )
    base = tmp / "fresh-template"
    sb = sandbox.create_canonical(Context(), base, trained=True)
    case.times = {c: [] for c in case.contenders}
    read: dict[str, list[int]] = {c: [] for c in case.contenders}
    cached: dict[str, list[int]] = {c: [] for c in case.contenders}
    commands = {
        "inv train": [PY, "-m", "invoke", "train", "--skip", "slack"],
        "dvc repro --pull": [PY, "-m", "dvc", "repro", "--pull"],
    }
    for i in range(runs):
        for who in alternate(case.contenders, i):
            clone = teammate(sb, tmp / f"fresh-{i}-{who.split()[0]}")
            trace = clone.parent / "stages-run.txt"
            ENV["SANDBOX_TRACE"] = str(trace)
            try:
                seconds, nbytes = _measured(commands[who], clone)
            finally:
                del ENV["SANDBOX_TRACE"]
            assert not trace.exists(), f"{who} ran a stage: {trace.read_text()}"
            case.times[who].append(seconds)
            read[who].append(nbytes)
            objects = (clone / ".dvc" / "cache").rglob("*")
            cached[who].append(sum(p.stat().st_size for p in objects if p.is_file()))
            shutil.rmtree(clone.parent)
    case.extra = {
        f"KiB of data pulled by {w}": round(statistics.median(v) / 2**10, 1)
        for w, v in cached.items()
    }
    case.extra |= {
        f"MiB read by {w} (processes included)": round(statistics.median(v) / 2**20, 2)
        for w, v in read.items()
    }
    ours, theirs = (statistics.median(read[w]) for w in case.contenders)
    case.extra["bytes ratio"] = round(ours / theirs, 3)
    return case


# What `inv train` runs on DVC's get-started layout when nothing changed, typed
# by hand: the guard, the fetch its preflight makes, the pull of the
# pipeline's inputs and the repro of its stages (it commits nothing, pushes
# nothing: nor does this).
RAW_NOOP = """\
set -e
git status --porcelain --untracked-files=no
git fetch -q origin
dvc pull data/data.csv
dvc repro --single-item dvc.yaml
git status --porcelain --untracked-files=no
"""


def case_same_commands(tmp: Path, runs: int) -> Case:
    """The whole flow (guards, preflight, pull, repro, publish check) against the
    git and dvc commands it runs, run raw, on a pipeline with nothing to do."""
    case = Case(
        "8. the flow vs its own commands run raw, nothing to do",
        ["inv train", "raw commands"],
        target="ratio <= 0.80",
        ratio_max=0.80,
    )
    sb = fresh_copy(
        sandbox.create_canonical(Context(), tmp / "noop-template", trained=True), tmp / "noop"
    )
    case.times = {c: [] for c in case.contenders}
    trace = sb.base / "stages-run.txt"
    ENV["SANDBOX_TRACE"] = str(trace)
    try:
        for i in range(runs):
            for who in alternate(case.contenders, i):
                if who == "inv train":
                    seconds = run([PY, "-m", "invoke", "train", "--skip", "slack"], sb.project)
                else:
                    seconds = run(RAW_NOOP, sb.project, executable="/bin/bash")
                case.times[who].append(seconds)
    finally:
        del ENV["SANDBOX_TRACE"]
    assert not trace.exists(), f"a stage ran: {trace.read_text()}"
    return case


# Runs a command with its output to a pipe drained at once (a terminal that keeps
# up): what the stage prints costs the same for both contenders downstream.
_DRAINED = """\
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
while os.read(proc.stdout.fileno(), 1 << 20):
    pass
sys.exit(proc.wait())
"""

# `inv ARGS`, then the flow's own peak RSS (KiB: its process alone) written to a file.
_FLOW_RSS = """\
import atexit, resource, sys
where = sys.argv.pop(1)
atexit.register(lambda: open(where, "w").write(
    str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
from invoke.main import program
program.run(["inv", *sys.argv[1:]])
"""


def case_loud_stage(tmp: Path, runs: int, mib: int, template: sandbox.Sandbox) -> Case:
    """A stage that prints ``mib`` MiB (a line per step, as a training logs):
    ``inv repro`` against plain ``dvc repro``, both to a drained pipe; and what
    the output costs the flow in memory (its peak against a quiet stage's)."""
    case = Case(
        f"9. a stage printing {mib} MiB: inv repro vs dvc repro",
        ["inv repro", "dvc repro"],
        target="ratio <= 1.10; extra RSS <= 100 MiB",
        ratio_max=1.10,
    )
    sb = fresh_copy(template, tmp / "loud")
    rss = tmp / "loud-rss"
    flow = [PY, "-c", _FLOW_RSS, str(rss), "repro", "--pipeline", "training", "--force"]
    commands = {
        "inv repro": [*flow, "--skip", "slack"],
        "dvc repro": [PY, "-m", "dvc", "repro", "--force", "training/dvc.yaml"],
    }

    def peak(printed: float) -> float:
        ENV["SANDBOX_PRINT"] = f"train:{printed}"
        try:
            run([PY, "-c", _DRAINED, *commands["inv repro"]], sb.project)
        finally:
            del ENV["SANDBOX_PRINT"]
        return int(rss.read_text()) / 1024

    quiet = peak(0.01)  # untimed: the flow's own memory, with nothing printed
    case.times = {c: [] for c in case.contenders}
    loud = []
    ENV["SANDBOX_PRINT"] = f"train:{mib}"
    try:
        for i in range(runs):
            for who in alternate(case.contenders, i):
                seconds = run([PY, "-c", _DRAINED, *commands[who]], sb.project)
                case.times[who].append(seconds)
                if who == "inv repro":
                    loud.append(int(rss.read_text()) / 1024)
    finally:
        del ENV["SANDBOX_PRINT"]
    extra = statistics.median(loud) - quiet
    case.extra = {
        "flow peak RSS, quiet stage (MiB)": round(quiet, 1),
        f"flow peak RSS, {mib} MiB printed (MiB)": round(statistics.median(loud), 1),
        "extra peak RSS (MiB)": round(extra, 1),
        "pass": case.ratio <= 1.10 and extra <= 100,
    }
    return case


def _half_cache(source: Path, clone: Path) -> None:
    objects = sorted(p for p in (source / ".dvc" / "cache").rglob("*") if p.is_file())
    for path in objects[::2]:
        dest = clone / ".dvc" / "cache" / path.relative_to(source / ".dvc" / "cache")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


_LAUNCHER = """\
import subprocess, sys
code = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(open("/proc/self/io").read())
sys.exit(code)
"""


def _measured(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time, and bytes the whole process tree read.

    Linux adds a reaped child's I/O to its parent's, so a launcher that runs
    the command and waits reads the tree's total in its own /proc/self/io
    (sampling each process instead would count a child twice).
    """
    start = time.perf_counter()
    out = subprocess.run(
        [PY, "-c", _LAUNCHER, *cmd], cwd=cwd, env=ENV, capture_output=True, text=True, check=True
    ).stdout
    seconds = time.perf_counter() - start
    fields = dict(line.split(": ") for line in out.splitlines() if ": " in line)
    return seconds, int(fields["rchar"])


# -- reporting -----------------------------------------------------------------------


def _wide_project(base: Path, stages: int) -> Path:
    """One root dvc.yaml of ``stages`` chained stages, published to a bare origin
    and a local DVC remote; never run. Each stage writes when it starts to
    ``$FIRST_STAGE``: the first line is the moment the run began its work."""
    base.mkdir(parents=True)
    origin, remote, root = base / "origin.git", base / "dvc-remote", base / "project"
    remote.mkdir()
    c = Context()
    c.run(f"git init -q --bare -b main {origin} && git init -q -b main {root}", hide=True)
    sandbox.identify(c, root)
    lines = ["stages:"]
    for s in range(stages):
        dep = "data.txt" if s == 0 else f"s{s - 1:04d}.txt"
        lines.append(
            f"  s{s:04d}:\n"
            f'    cmd: date +%s.%N >> "$FIRST_STAGE" && cp {dep} s{s:04d}.txt\n'
            f"    deps:\n      - {dep}\n    outs:\n      - s{s:04d}.txt"
        )
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")
    (root / "data.txt").write_text("seed\n")
    (root / "tasks.py").write_text(
        "from invoke import Collection\n"
        "from dvc_invoke import data, guards, notify, publish, repro\n\n"
        "ns = Collection(guards, data, repro, publish, notify)\n"
    )
    with c.cd(str(root)):
        c.run(
            f"dvc init -q && dvc config core.analytics false && dvc remote add -q -d local {remote}"
            f" && git remote add origin {origin} && git add -A && git commit -q -m start"
            " && git push -q -u origin main",
            hide=True,
            env=ENV,
        )
    return root


def _time_to_first_stage(cmd: list[str], base: Path, where: Path) -> float:
    """Seconds from starting ``cmd`` in a copy of ``base`` to its first stage's start."""
    shutil.copytree(base, where, symlinks=True)
    root = where / "project"
    run(["git", "remote", "set-url", "origin", str(where / "origin.git")], root)
    remote = str(where / "dvc-remote")
    run([PY, "-m", "dvc", "remote", "modify", "--local", "local", "url", remote], root)
    marker = where / "first-stage"
    start = time.time()
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env={**ENV, "FIRST_STAGE": str(marker)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not (marker.exists() and marker.read_text().strip()):
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} ended before its first stage")
            time.sleep(0.02)
        return float(marker.read_text().split()[0]) - start
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def case_wide(tmp: Path, runs: int, quick: bool) -> Case:
    stages = 200 if quick else 2000
    base = tmp / "wide"
    _wide_project(base, stages)
    case = Case(
        f"6. time to the first stage: one dvc.yaml of {stages} stages",
        ["inv repro", "dvc repro"],
        target="ratio <= 1.2",
        ratio_max=1.2,
    )
    commands = {
        "inv repro": [PY, "-m", "invoke", "repro", "--pipeline", "dvc.yaml"],
        "dvc repro": [PY, "-m", "dvc", "repro"],
    }
    case.times = {c: [] for c in case.contenders}
    for i in range(runs):
        for who in alternate(case.contenders, i):
            where = tmp / f"wide-{i}-{who.replace(' ', '-')}"
            case.times[who].append(_time_to_first_stage(commands[who], base, where))
    return case


def _many_records(root: Path, count: int) -> None:
    """``count`` ended runs' records and logs, as the run store writes them."""
    from dvc_invoke.runs.record import RunReport
    from dvc_invoke.runs.store import Store

    store = Store(root)
    store.dir.mkdir(parents=True, exist_ok=True)
    start = time.time() - count * 600
    for n in range(count):
        pipeline = ("metrics", "training")[n % 2]
        report = RunReport(pipeline=pipeline, command=f"inv {pipeline}", started_at=start + n * 600)
        report.id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(report.started_at))}-{n:05d}"
        report.log = str(store.log_path(report.id))
        report.end("succeeded" if n % 7 else "failed", reason=None if n % 7 else "a stage failed")
        report.commit_before, report.commit_after = "a" * 40, "b" * 40
        report.metrics = [
            {"name": "acc", "kind": "metric", "old": 0.5, "new": 0.6, "path": "m.json"}
        ]
        data = json.dumps(report.to_dict(), indent=2, sort_keys=True).encode()
        store._write(store.record_path(report.id), data, sync=False)  # save, less the fsync
        Path(report.log).write_text("a run's log\n")


def case_status(tmp: Path, runs: int, template: sandbox.Sandbox, count: int) -> Case:
    case = Case(
        f"10. inv repro.status: {count:,} run records vs none",
        [f"{count:,} records", "no records"],
        target=f"{count:,} records <= 0.5 s",
    )
    many, none = (
        fresh_copy(template, tmp / "status-many"),
        fresh_copy(template, tmp / "status-none"),
    )
    _many_records(many.project, count)
    folders = {case.contenders[0]: many.project, case.contenders[1]: none.project}
    cmd = [PY, "-m", "invoke", "repro.status"]
    for folder in folders.values():  # untimed: bytecode, and the store's cache of the records
        run(cmd, folder)
    case.times = {c: [] for c in case.contenders}
    cpu: dict[str, list[float]] = {c: [] for c in case.contenders}
    for i in range(runs * 2):
        for who in alternate(case.contenders, i):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            case.times[who].append(run(cmd, folders[who]))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[who].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    many_, none_ = case.contenders
    took = case.median(many_)
    case.extra[f"{count:,} records (s)"] = round(took, 3)
    case.extra["records - none (s)"] = round(took - case.median(none_), 3)
    # CPU time, which a shared machine's load does not stretch as it does the wall clock.
    case.extra["CPU, records (s)"] = round(statistics.median(cpu[many_]), 3)
    case.extra["CPU, none (s)"] = round(statistics.median(cpu[none_]), 3)
    case.extra["pass"] = took <= 0.5
    return case


# A pipeline of one stage (~1.5 s) that reads two params: a grid of 4 x 2.
SWEEP_SETS = ["train.lr=1,2,3,4", "train.n=1,2"]
SWEEP_FILES = {
    "params.yaml": "train:\n  lr: 1\n  n: 1\n",
    "sweep/fit.py": textwrap.dedent(
        """\
        import json
        import os
        import time

        import yaml

        train = yaml.safe_load(open("../params.yaml"))["train"]
        time.sleep(float(os.environ.get("SWEEP_FIT_SECONDS", "1.5")))  # a short training
        with open("metrics.json", "w") as f:
            json.dump({"loss": round(1 / (train["lr"] * train["n"]), 6)}, f)
        """
    ),
    "sweep/dvc.yaml": textwrap.dedent(
        """\
        stages:
          fit:
            cmd: python fit.py
            deps:
            - fit.py
            params:
            - ../params.yaml:
              - train.lr
              - train.n
            metrics:
            - metrics.json:
                cache: false
        """
    ),
}


class _TimedSlack:
    """The stand-in Slack, with the moment each request arrived."""

    def __init__(self) -> None:
        from dvc_invoke.testing.slack import SlackServer

        self.server = SlackServer()
        self.received: list[tuple[float, str]] = []
        handle = self.server._handle

        def timed(h, body):
            self.received.append((time.time(), h.path.split("?")[0].rsplit("/", 1)[-1]))
            handle(h, body)

        self.server._handle = timed

    def last_message(self) -> float:
        """When the last chat.postMessage or chat.update arrived."""
        return max(t for t, method in self.received if method.startswith("chat."))


def _sweep_template(template: sandbox.Sandbox, where: Path) -> sandbox.Sandbox:
    """The sandbox with a pipeline ``sweep`` to sweep and the exp collection,
    committed, run and published (the guards pass)."""
    sb = fresh_copy(template, where)
    for rel, text in SWEEP_FILES.items():
        (sb.project / rel).parent.mkdir(parents=True, exist_ok=True)
        (sb.project / rel).write_text(text)
    tasks = sb.project / "tasks.py"
    with_exp = (
        tasks.read_text()
        .replace("import data, guards,", "import data, exp, guards,")
        .replace("guards, data, repro,", "guards, data, exp, repro,")
    )
    assert with_exp.count("exp") >= 2, "the sandbox's tasks.py changed: add exp by hand"
    tasks.write_text(with_exp)
    c = Context()
    with c.cd(str(sb.project)):
        c.run(
            f"{PY} -m dvc repro -q sweep/dvc.yaml && git add -A && git commit -qm sweep && "
            f"{PY} -m dvc push -q && git push -q",
            hide=True,
            env=ENV,
        )
    return sb


def _last_experiment_end(project: Path) -> float:
    """When the last experiment's process ended: DVC writes its returncode to
    ``.dvc/tmp/exps/run/REV/REV.json`` then."""
    ends = [p.stat().st_mtime for p in (project / ".dvc" / "tmp" / "exps" / "run").glob("*/*.json")]
    assert len(ends) == 8, f"{len(ends)} experiments ended, not 8"
    return max(ends)


def _bare_sweep(project: Path, jobs: int = 2) -> float:
    """``dvc exp run --queue`` and ``dvc queue start``, then ``dvc queue status``
    each 0.5 s until nothing is queued or running: the wall time."""
    sets = " ".join(f"-S {s}" for s in SWEEP_SETS)
    start = time.perf_counter()
    run(
        f"{PY} -m dvc exp run -q --queue {sets} sweep/dvc.yaml"
        f" && {PY} -m dvc queue start -j {jobs}",
        project,
    )
    while True:
        status = subprocess.run(
            [PY, "-m", "dvc", "queue", "status"],
            cwd=project,
            env=ENV,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = [line.split() for line in status.splitlines()]
        if not any(("Queued" in r or "Running" in r) for r in rows):
            return time.perf_counter() - start
        time.sleep(0.5)


def _stop_workers(project: Path) -> None:
    """Untimed: DVC's workers of a finished sweep stopped and gone (none idles
    beside the next sweep, or writes in a folder being removed)."""
    import psutil

    run([PY, "-m", "dvc", "queue", "stop"], project, check=False)

    def inside(proc: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return Path(proc.cwd()).is_relative_to(project)
        return False

    deadline = time.time() + 60
    while time.time() < deadline and any(inside(p) for p in psutil.process_iter()):
        time.sleep(0.2)


def case_sweep(tmp: Path, runs: int, template: sandbox.Sandbox) -> Case:
    """A sweep of 8 experiments on DVC's queue with 2 workers: ``inv exp.run``
    (guards, queue, watch, rank, Slack) against DVC's commands alone, and
    how long after the last experiment ended the Slack message came."""
    case = Case(
        "11. inv exp.run: 8 experiments on 2 DVC workers vs dvc exp run --queue"
        " + dvc queue start -j 2",
        ["dvc-invoke", "bare dvc"],
        target="ratio <= 1.05; Slack < 2 s after the last experiment",
        ratio_max=1.05,
    )
    base = _sweep_template(template, tmp / "sweep-template")
    cmd = [PY, "-m", "invoke", "exp.run", "--pipeline", "sweep"]
    cmd += [w for s in SWEEP_SETS for w in ("-S", s)] + ["--jobs", "2", "--no-share"]
    case.times = {c: [] for c in case.contenders}
    latency: list[float] = []
    for i in range(runs):
        for who in alternate(case.contenders, i):
            sb = fresh_copy(base, tmp / f"sweep-{i}-{who.replace(' ', '-')}")
            if who == "dvc-invoke":
                slack = _TimedSlack()
                with slack.server:
                    ENV.update(slack.server.web_api_env())
                    try:
                        case.times[who].append(run(cmd, sb.project))
                    finally:
                        for key in slack.server.web_api_env():
                            del ENV[key]
                latency.append(slack.last_message() - _last_experiment_end(sb.project))
            else:
                case.times[who].append(_bare_sweep(sb.project))
                _last_experiment_end(sb.project)  # all 8 ran
            _stop_workers(sb.project)
            shutil.rmtree(sb.base)
    took = statistics.median(latency)
    case.extra["Slack after the last experiment (s)"] = round(took, 3)
    case.extra["Slack latency, each run (s)"] = [round(x, 2) for x in latency]
    case.extra["pass"] = case.ratio <= 1.05 and took < 2.0
    return case


FIT_SECONDS = 5.0  # each experiment of the SLURM case
SLOTS = 4  # SLURM tasks at once


def case_sweep_slurm(tmp: Path, runs: int, template: sandbox.Sandbox) -> Case | None:
    """8 experiments of 5 s on 4 SLURM task slots (a real one-node cluster, the
    test suite's recipe): from ``inv exp.run --slurm`` to the table on Slack,
    against the ideal (2 rounds of the slowest experiment); and DVC's own queue
    with 4 workers on this machine, the same 8."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from slurm_cluster import Cluster, available

    why = available()
    if why:
        print(f"case 12 skipped: {why}", file=sys.stderr)
        return None
    case = Case(
        f"12. inv exp.run --slurm: 8 experiments of {FIT_SECONDS:g} s on {SLOTS} SLURM slots"
        " vs the ideal (2 rounds)",
        ["dvc-invoke", "ideal"],
        target="ratio <= 1.3",
        ratio_max=1.3,
    )
    cluster = Cluster(tmp / "slurm", "bench").start()
    ENV.update(cluster.env, SWEEP_FIT_SECONDS=str(FIT_SECONDS))
    try:
        base = _sweep_template(template, tmp / "sweep-slurm-template")
        cmd = [PY, "-m", "invoke", "exp.run", "--pipeline", "sweep", "--slurm"]
        cmd += [w for s in SWEEP_SETS for w in ("-S", s)] + ["--jobs", str(SLOTS)]
        ideal = 2 * FIT_SECONDS
        case.times = {"dvc-invoke": [], "ideal": [], "dvc queue -j 4": [], "bare sbatch array": []}
        for i in range(runs):
            sb = fresh_copy(base, tmp / f"sweep-slurm-{i}")
            slack = _TimedSlack()
            with slack.server:
                ENV.update(slack.server.web_api_env())
                start = time.time()
                run(cmd, sb.project)
                deadline = time.time() + 600
                while time.time() < deadline and not [
                    u for u in slack.server.calls("chat.update") if "sweep succeeded" in u.text
                ]:
                    time.sleep(0.1)
                case.times["dvc-invoke"].append(slack.last_message() - start)
                for key in slack.server.web_api_env():
                    del ENV[key]
            case.times["ideal"].append(ideal)
            case.times["bare sbatch array"].append(_bare_array(cluster, tmp / f"bare-{i}"))
            shutil.rmtree(sb.base)
            sb = fresh_copy(base, tmp / f"sweep-queue-{i}")
            case.times["dvc queue -j 4"].append(_bare_sweep(sb.project, jobs=SLOTS))
            _stop_workers(sb.project)
            shutil.rmtree(sb.base)
    finally:
        cluster.stop()
        for key in (*cluster.env, "SWEEP_FIT_SECONDS"):
            ENV.pop(key, None)
            os.environ.pop(key, None)
    took = case.median("dvc-invoke")
    case.extra["overhead per experiment (s)"] = round((took - ideal) * SLOTS / 8, 2)
    bare = case.median("bare sbatch array")
    case.extra["bare sbatch array of sleep 5 + afterany job (s)"] = round(bare, 2)
    case.extra["overhead per experiment beyond SLURM's own (s)"] = round(
        (took - bare) * SLOTS / 8, 2
    )
    case.extra["dvc queue -j 4 on this machine (s)"] = round(case.median("dvc queue -j 4"), 2)
    case.extra["vs dvc queue -j 4"] = round(took / case.median("dvc queue -j 4"), 2)
    case.extra["each run (s)"] = [round(x, 2) for x in case.times["dvc-invoke"]]
    return case


def _bare_array(cluster, folder: Path) -> float:
    """SLURM alone: an array of 8 ``sleep 5`` tasks, 4 at once, and a job after
    it (``afterany``), from ``sbatch`` to the end of that job."""
    folder.mkdir(parents=True)
    done = folder / "done"
    start = time.time()
    array = cluster.run(
        "sbatch",
        "--parsable",
        f"--array=0-7%{SLOTS}",
        "--output=/dev/null",
        "--wrap",
        f"sleep {FIT_SECONDS:g}",
    ).stdout.strip()
    cluster.run(
        "sbatch",
        "--parsable",
        f"--dependency=afterany:{array}",
        "--output=/dev/null",
        "--wrap",
        f"touch {shlex.quote(str(done))}",
    )
    while not done.exists():
        time.sleep(0.05)
    return time.time() - start


def report(cases: list[Case], path: Path | None) -> None:
    rows = []
    for case in cases:
        a, b = case.contenders
        passed = case.extra.get("pass", case.passed)
        rows.append(
            [
                case.name,
                f"{a} {case.median(a):.3f}s",
                f"{b} {case.median(b):.3f}s",
                f"{case.ratio:.2f}",
                case.target,
                {True: "pass", False: "FAIL", None: "-"}[passed],
            ]
        )
    widths = [
        max(len(str(r[i])) for r in rows + [["case", "", "", "ratio", "target", ""]])
        for i in range(6)
    ]
    for row in [["case", "contender A", "contender B", "ratio", "target", "result"], *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    for case in cases:
        if case.extra:
            print(f"   {case.name}: " + ", ".join(f"{k} {v}" for k, v in case.extra.items()))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "cases": [
                dict(asdict(c), ratio=c.ratio, medians={w: c.median(w) for w in c.contenders})
                for c in cases
            ],
        }
        path.write_text(json.dumps(data, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small projects and data")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default="1,2,3,4,5,6,7,8,9,10,11,12")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--data-mib", type=int, default=1024)
    args = parser.parse_args(argv)
    wanted = {int(x) for x in args.cases.split(",")}
    runs = 2 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="dvc-invoke-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(ENV)
        template = sandbox.create(Context(), tmp / "template", trained=True)
        cases: list[Case] = []
        if 1 in wanted:
            cases.append(case_full_flow(tmp, runs, template))
        if 2 in wanted:
            cases.append(case_startup(tmp, runs))
        if 3 in wanted:
            cases.append(case_detach(tmp, runs, template))
        if 4 in wanted:
            cases += case_scale(tmp, runs, args.quick)
        if 6 in wanted:
            cases.append(case_wide(tmp, runs, args.quick))
        if 7 in wanted:
            cases.append(case_fresh_clone(tmp, runs))
        if 8 in wanted:
            cases.append(case_same_commands(tmp, runs))
        if 9 in wanted:
            cases.append(case_loud_stage(tmp, runs, 20 if args.quick else 200, template))
        if 10 in wanted:
            cases.append(case_status(tmp, runs, template, 1000 if args.quick else 10000))
        if 11 in wanted:
            cases.append(case_sweep(tmp, runs, template))
        if 12 in wanted:
            found = case_sweep_slurm(tmp, runs, template)
            cases += [found] if found else []
        if 5 in wanted:
            cases.append(
                case_data(tmp, runs if not args.quick else 1, 32 if args.quick else args.data_mib)
            )
        report(cases, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
