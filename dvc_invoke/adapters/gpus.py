"""The GPUs of this machine and which are free, as ``nvidia-smi`` says.

A GPU is free when no compute process uses it (``--query-compute-apps`` lists
none on its uuid). ``nvidia-smi`` is looked for on PATH, then where NVIDIA's
containers put it (``/usr/local/nvidia/bin``); a machine without it has no GPU
to give out.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from typing import Any

from dvc_invoke.errors import DvcInvokeError

ELSEWHERE = ("/usr/local/nvidia/bin", "/usr/bin")


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    busy: bool


def nvidia_smi() -> str | None:
    found = shutil.which("nvidia-smi")
    if found:
        return found
    for folder in ELSEWHERE:
        path = os.path.join(folder, "nvidia-smi")
        if os.access(path, os.X_OK):
            return path
    return None


def gpus(ws: Any) -> list[Gpu]:
    """Every GPU here, each busy or not; ``[]`` without ``nvidia-smi``."""
    smi = nvidia_smi()
    if smi is None:
        return []
    cards = ws.probe(
        f"{shlex.quote(smi)} --query-gpu=index,uuid,name --format=csv,noheader,nounits",
        in_process=False,
    )
    if not cards.ok:
        why = (cards.stderr or cards.stdout or "").strip().splitlines()
        raise DvcInvokeError(
            f"nvidia-smi failed: {why[-1] if why else f'exit {cards.exited}'}", step="guards"
        )
    apps = ws.probe(
        f"{shlex.quote(smi)} --query-compute-apps=gpu_uuid,pid,used_memory"
        " --format=csv,noheader,nounits",
        in_process=False,
    )
    used = {line.split(",")[0].strip() for line in (apps.stdout or "").splitlines() if line.strip()}
    found = []
    for line in (cards.stdout or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            found.append(Gpu(int(parts[0]), parts[1], parts[2], parts[1] in used))
    return found


def choose(ws: Any, wanted: str) -> list[int]:
    """The GPUs ``--gpus`` names: ``all`` (the free ones) or ``0,1,...``."""
    if wanted == "all":
        cards = gpus(ws)
        if not cards:
            raise DvcInvokeError(
                "--gpus all: no GPU here (nvidia-smi is not on PATH nor in /usr/local/nvidia/bin)",
                step="guards",
            )
        free = [g.index for g in cards if not g.busy]
        if not free:
            busy = ", ".join(f"{g.index} ({g.name})" for g in cards)
            raise DvcInvokeError(
                f"--gpus all: no free GPU here, each runs a process: {busy}", step="guards"
            )
        return free
    if not re.fullmatch(r"\d+(,\d+)*", wanted):
        raise DvcInvokeError(f"--gpus {wanted!r}: say all, or indexes: 0,1,2", step="guards")
    chosen = list(dict.fromkeys(int(i) for i in wanted.split(",")))
    here = {g.index for g in gpus(ws)}
    missing = [i for i in chosen if here and i not in here]
    if missing:
        raise DvcInvokeError(
            f"--gpus {wanted}: no GPU {', '.join(map(str, missing))} here"
            f" (GPUs: {', '.join(map(str, sorted(here)))})",
            step="guards",
        )
    return chosen
