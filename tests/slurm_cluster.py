"""A real one-node SLURM cluster on this machine, for the tests (SLURM 22.05, Debian 12).

munged (shared by every cluster here), then ``slurmctld`` and ``slurmd``
with a configuration of their own in a temporary folder: their own ports,
state and spool, and a node name of their own, so that each test worker
runs a cluster beside the others'. ``proctrack/linuxproc`` and
``task/none`` need no cgroups. Jobs run as the submitting user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from helpers import free_port

CONF = """\
ClusterName={name}
FirstJobId={first_job}
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ReturnToService=2
MinJobAge=600
KillWait=5
SlurmdParameters=config_overrides
NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={d_port} CPUs=4 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def available() -> str | None:
    """Why a cluster cannot run here, or None."""
    for program in ("munged", "slurmctld", "slurmd", "sbatch"):
        if not shutil.which(program):
            return f"{program} is not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a test cluster runs its daemons as root"
    return None


def _munged() -> None:
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
        return
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["munged", "--force"], check=True)


class Cluster:
    def __init__(self, folder: Path, name: str):
        self.dir = folder
        self.conf = folder / "slurm.conf"
        self.node = name
        (folder / "state").mkdir(parents=True)
        (folder / "spool").mkdir()
        self.conf.write_text(
            CONF.format(
                name=name,
                host=socket.gethostname(),
                node=name,
                ctld_port=free_port(),
                d_port=free_port(),
                d=folder,
                # Job ids of their own: a test stops its job's processes by id.
                first_job=1000 + 1000 * (sum(map(ord, name)) % 97),
            )
        )

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, env={**os.environ, **self.env}, capture_output=True, text=True)

    def start(self) -> Cluster:
        _munged()
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True)
        subprocess.run(["slurmd", "-f", str(self.conf), "-N", self.node], check=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if "idle" in self.run("sinfo", "-h", "-o", "%t").stdout:
                return self
            time.sleep(0.3)
        log = (self.dir / "slurmctld.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the test cluster did not come up:\n{log}")

    def state(self, job: str) -> str:
        out = self.run("scontrol", "show", "job", "-o", job).stdout
        fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
        return fields.get("JobState", "")

    def stop(self) -> None:
        for daemon in ("slurmd", "slurmctld"):
            pidfile = self.dir / f"{daemon}.pid"
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
