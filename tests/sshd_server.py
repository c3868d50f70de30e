"""A real OpenSSH server on 127.0.0.1 for the tests: GPU hosts reached over SSH.

One ``sshd`` on a free port with generated host and client keys; an
``ssh_config`` with one alias per "host" (each host is a checkout of its own
on this machine), passed to the client with ``-F`` so aliases work as in a
user's ``~/.ssh/config``. sshd gives each session a clean environment:
``SetEnv`` hands it what the test session isolates (git and DVC config).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from helpers import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

# The variables each ssh session gets, as the test session has them.
PASSED = (
    "DVC_NO_ANALYTICS",
    "DVC_SITE_CACHE_DIR",
    "DVC_GLOBAL_CONFIG_DIR",
    "DVC_SYSTEM_CONFIG_DIR",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
    "GIT_TERMINAL_PROMPT",
    "NO_PROXY",
    "PATH",
)


def available() -> str | None:
    """Why no sshd can run here, or None."""
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not os.path.exists(tool):
            return "OpenSSH (openssh-server, openssh-client) is not installed"
    return None


class Sshd:
    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.client_key = base / "id_ed25519"
        self.ssh_config = base / "ssh_config"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, aliases: tuple[str, ...] = ("gpu-1", "gpu-2"), env: dict | None = None) -> Sshd:
        b = self.base
        b.mkdir(parents=True, exist_ok=True)
        for key in (b / "host_key", self.client_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        shutil.copy(f"{self.client_key}.pub", b / "authorized_keys")
        os.chmod(b / "authorized_keys", 0o600)
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation needs it
        passed = {k: v for k, v in {**os.environ, **(env or {})}.items() if k in PASSED}
        passed.update({k: v for k, v in (env or {}).items() if k not in PASSED})
        set_env = " ".join(f'"{k}={v}"' for k, v in passed.items())
        config = b / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {b / 'host_key'}\n"
            f"AuthorizedKeysFile {b / 'authorized_keys'}\nPidFile {b / 'sshd.pid'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "StrictModes no\nUsePAM no\nLogLevel ERROR\nSubsystem sftp internal-sftp\n"
            f"SetEnv {set_env}\n"
        )
        self._launch()
        common = (
            f"  HostName 127.0.0.1\n  Port {self.port}\n  User {os.environ.get('USER') or 'root'}\n"
            f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
            "  BatchMode yes\n"
        )
        self.ssh_config.write_text("".join(f"Host {alias}\n{common}" for alias in aliases))
        self.aliases = aliases
        return self._answering()

    def _launch(self) -> None:
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.base / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "sshd.log", "ab"),  # noqa: SIM115 - open for sshd's life
        )

    def resume(self) -> Sshd:
        """The same server again, after `stop` (an outage): same port, keys and hosts."""
        self._launch()
        return self._answering()

    def _answering(self) -> Sshd:
        b, aliases = self.base, self.aliases
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            res = subprocess.run(
                ["ssh", "-F", str(self.ssh_config), aliases[0], "true"],
                capture_output=True,
                timeout=20,
            )
            if res.returncode == 0:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sshd did not start: {(b / 'sshd.log').read_text()[-2000:]}")

    @property
    def ssh(self) -> str:
        """The ssh command line a project sets as ``dvc_invoke.ssh``."""
        return f"ssh -F {self.ssh_config}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
