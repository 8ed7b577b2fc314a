"""Real processes: the leader is frozen with SIGSTOP past its lease; a standby takes over, and the
frozen node, once resumed, knows it lost the lease and writes nothing more (fencing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge.outbox.db import make_engine, upgrade
from bridge.testing.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pause-secret-9d2"
WAIT_S = 30.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(tmp_path: Path, name: str, pg_url: str, sim, sink) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = tmp_path / f"{name}.toml"
    config.write_text(f"""
[database]
url = "{pg_url}"
[[ami]]
name = "pbx1"
port = {sim.port}
username = "bridge"
secret = "${{AMI_SECRET}}"
reconnect_base = "100ms"
[[subscriber]]
name = "erp"
url = "{sink.url}"
mode = "both"
[ha]
node_id = "{name}"
lease = "1s"
renew = "200ms"
[metrics]
listen = "127.0.0.1:{port}"
""", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["AMI_SECRET"] = SECRET
    log = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(config)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    return proc, port


def role(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    except OSError:
        return None
    return body.get("ha", {}).get("servers", {}).get("pbx1", {}).get("role")


def lease_holder(engine) -> tuple[str, int] | None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT node, token FROM ha_lease WHERE server = 'pbx1' "
                                "AND expires_at > clock_timestamp()")).first()
    return tuple(row) if row else None


@pytest.mark.slow
def test_paused_leader_loses_the_lease_and_does_not_write_after_resuming(tmp_path, pg_url):
    from bridge.testing.fake_erp import FakeErp
    from bridge.testing.simulator import AmiSimulator

    upgrade(pg_url)
    engine = make_engine(pg_url)
    procs = []
    with AmiSimulator("asterisk20", users={"bridge": SECRET}, time_scale=0.02, timestamp_events=True) as sim, \
            FakeErp() as sink:
        try:
            a, a_port = start_node(tmp_path, "node-a", pg_url, sim, sink)
            procs.append(a)
            assert wait_until(lambda: lease_holder(engine) == ("node-a", 1), WAIT_S)
            b, b_port = start_node(tmp_path, "node-b", pg_url, sim, sink)
            procs.append(b)
            assert wait_until(lambda: role(b_port) == "standby", WAIT_S)
            a.send_signal(signal.SIGSTOP)
            assert wait_until(lambda: lease_holder(engine) == ("node-b", 2), WAIT_S)
            sim.run_scenario("answered", wait=True)        # A's socket holds these while frozen
            a.send_signal(signal.SIGCONT)
            assert wait_until(lambda: role(a_port) == "standby", WAIT_S)
            assert lease_holder(engine) == ("node-b", 2)
            sim.run_scenario("busy", wait=True)
            assert wait_until(lambda: sum(b"CallEnded" in r.body for r in sink.delivered()) >= 2, WAIT_S)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    with engine.connect() as conn:
        ids = Counter(r[0] for r in conn.execute(text("SELECT event_uuid FROM outbox")))
    engine.dispose()
    assert ids and max(ids.values()) == 1
    a_log = (tmp_path / "node-a.log").read_text()
    assert "ha: pbx1: leadership lost" in a_log or "outbox commit refused" in a_log
    # Once resumed, node A never led again: it took the lease once (token 1), B took token 2 and kept it.
    assert a_log.count("ha: pbx1: this node (node-a) leads now, token 1;") == 1
    assert a_log.count("leads now") == 1
