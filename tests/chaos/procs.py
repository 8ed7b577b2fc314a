"""The real CLI (`python -m bridge run -c CONFIG`) in child processes, for the chaos scenarios
that kill, pause or stop the bridge itself (test_crash, test_failover)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.chaos.rig import AMI_SECRET, FILTER

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, ami_port: int, sink_url: str, db_url: str, *, extra: str = "",
                 level: str = "WARNING") -> Path:
    """The chaos bridge's TOML: one AMI server "pbx1", one raw subscriber with the chaos filter.
    `extra` is appended as is (e.g. a [metrics] table whose listen comes from the environment)."""
    path.write_text(f"""
[database]
url = "{db_url}"
[[ami]]
name = "pbx1"
port = {ami_port}
username = "bridge"
secret = "${{AMI_SECRET}}"
reconnect_base = "100ms"
reconnect_cap = "500ms"
[[subscriber]]
name = "erp"
url = "{sink_url}"
mode = "raw"
filter = "{FILTER}"
retry_base = "50ms"
retry_cap = "500ms"
read_timeout = "1s"
[logging]
level = "{level}"
{extra}""", encoding="utf-8")
    return path


class BridgeProcess:
    """One bridge process, started, SIGKILLed, SIGSTOPped/SIGCONTed and SIGTERMed by the test.
    `env` adds variables to the child's environment (the test's own BRIDGE_* never leak in)."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.log_path = config, log_path
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["AMI_SECRET"] = AMI_SECRET
        env.update(self.env)
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(self.config)],
                                         cwd=ROOT, env=env, stdout=log, stderr=log)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def terminate(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGCONT)      # a paused process would never see the SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
