"""Chaos: `python -m bridge run` SIGKILLed at random points mid-flood and restarted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.audit import audit, outbox_rows, seq_of
from bridge.testing.helpers import wait_until
from tests.chaos.rig import AMI_SECRET, FILTER, Rig, scale

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, ami_port: int, sink_url: str, db_url: str) -> Path:
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
level = "WARNING"
""", encoding="utf-8")
    return path


class BridgeProcess:
    """The real CLI in a child process, started and SIGKILLed by the test."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config, self.log_path = config, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["AMI_SECRET"] = AMI_SECRET
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(self.config)],
                                         cwd=ROOT, env=env, stdout=log, stderr=log)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def newest_session(rig: Rig) -> int:
    return max((s.number for s in rig.sim.sessions), default=0)


def logged_in_after(rig: Rig, number: int) -> bool:
    return any(s.number > number and s.logged_in for s in rig.sim.sessions)


class _ProcessRig(Rig):
    """The rig with the bridge in a child process instead of in-process."""

    def start_bridge(self) -> None:
        from bridge.outbox.db import upgrade

        upgrade(self.db_url)
        config = write_config(self.tmp_path / "bridge.toml", self.port, self.sink.url, self.db_url)
        self.bridge = BridgeProcess(config, self.tmp_path / "bridge.log")
        self.restart()

    def restart(self) -> None:
        before = newest_session(self)
        self.bridge.start()
        assert wait_until(lambda: logged_in_after(self, before), 20.0), self.log_tail()

    def stop_bridge(self) -> None:
        if getattr(self, "bridge", None) is not None:
            self.bridge.terminate()

    def log_tail(self) -> str:
        return (self.tmp_path / "bridge.log").read_text(errors="replace")[-3000:]


def test_no_accepted_event_lost_when_bridge_is_sigkilled_at_random_points(tmp_path):
    kills = scale(3, 10)
    rng = random.Random(11)
    with _ProcessRig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1500)) as rig:
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 1.5))          # mid-flood, mid-commit, mid-POST: anywhere
            rig.bridge.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            rig.restart()
        rig.stream.stop()
        tail = rig.stream.emit_now(20)                 # the restarted bridge receives new events
        drained = rig.drain(tail)
        result = audit("bridge SIGKILL+restart", f"{kills} SIGKILLs", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=False)
        code = rig.bridge.terminate()
    accepted_seqs = {seq_of(r["payload"]) for r in outbox_rows(rig.db_url)}
    assert set(tail) <= accepted_seqs
    assert code == 0, rig.log_tail()
    assert drained, result.problems
    assert result.lost == 0 and not result.problems, result.problems
