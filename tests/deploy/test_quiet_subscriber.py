"""A subscriber that matched nothing while events were filtered: /healthz and `check` say so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
SECRET = "quiet-secret-5"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def test_quiet_subscriber_is_a_healthz_warning_and_a_check_line(tmp_path):
    from bridge.testing.simulator import AmiSimulator
    from bridge.outbox.db import upgrade
    from bridge.testing.fake_erp import FakeErp

    db_url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(db_url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["AMI_SECRET"] = SECRET
    with AmiSimulator("asterisk20", users={"bridge": SECRET}, time_scale=0.02) as sim, FakeErp() as sink:
        config = tmp_path / "bridge.toml"
        config.write_text(f"""
[database]
url = "{db_url}"
[[ami]]
name = "pbx1"
port = {sim.port}
username = "bridge"
secret = "${{AMI_SECRET}}"
[[subscriber]]
name = "calls"
url = "{sink.url}"
[[subscriber]]
name = "quiet"
url = "{sink.url}"
mode = "raw"
filter = "Extension: 7777777"
[metrics]
listen = "127.0.0.1:{port}"
""", encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(config)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60      # while the process lives: startup under load takes long
            while (healthz(port) or {}).get("status") != "ok" and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            assert healthz(port) == {"status": "ok", "problems": []}     # nothing filtered yet
            sim.run_scenario("answered", caller="202", callee="902", wait=True)
            sim.flood(2000, 400, match_ratio=0.0)
            deadline = time.monotonic() + 20
            while "warnings" not in (healthz(port) or {}) and time.monotonic() < deadline:
                time.sleep(0.1)
            answer = healthz(port)
            assert answer["status"] == "ok" and len(answer["warnings"]) == 1, answer
            assert answer["warnings"][0].startswith("subscriber quiet: no event matched its filters since start")
            check = subprocess.run([sys.executable, "-m", "bridge", "check", "-c", str(config)], cwd=ROOT,
                                   env=env, capture_output=True, text=True, timeout=60)
            assert "WARN running bridge: subscriber quiet: no event matched" in check.stdout, check.stdout
            assert "subscriber calls:" not in "".join(answer["warnings"])
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
