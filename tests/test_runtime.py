"""bridge/runtime.py: the real `python -m bridge run` against the simulator and a local sink."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bridge.config import AmiConfig, Config, DatabaseConfig, MetricsConfig, SubscriberConfig
from bridge.errors import SchemaError
from bridge.testing.helpers import wait_until

ROOT = Path(__file__).parent.parent
WAIT_S = 20.0
# A fresh `python -m bridge run` imports SQLAlchemy, spyne, lxml … before its health server exists:
# ~2 s on an idle 2-core machine, several times that under a parallel suite. A dead process ends the
# wait at once (wait_healthy), so this bound only matters for a bridge that is slow, not broken.
STARTUP_WAIT_S = 60.0
AMI_SECRET = "rt-secret-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def soap_ping(port: int, user: str, password: str) -> int:
    """POST GetActiveCalls over real HTTP; the HTTP status."""
    import base64

    body = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            '<GetActiveCalls xmlns="urn:asterisk-bridge"/></soap:Body></soap:Envelope>').encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/bridge", data=body, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:asterisk-bridge#Bridge:GetActiveCalls"',
        "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code




def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def outbox_rows(db_url: str) -> list[dict]:
    from bridge.outbox import queries
    from bridge.outbox.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return queries.list_rows(conn, limit=1_000_000)
    finally:
        engine.dispose()


@pytest.fixture
def sim():
    from bridge.testing.simulator import AmiSimulator

    with AmiSimulator("asterisk20", users={"bridge": AMI_SECRET}, time_scale=0.02) as simulator:
        yield simulator


@pytest.fixture
def sink():
    from bridge.testing.fake_erp import FakeErp

    with FakeErp() as receiver:
        yield receiver


@pytest.fixture
def migrated_sqlite(tmp_path):
    from bridge.outbox.db import upgrade

    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    return url


def write_config(tmp_path: Path, sim, sink, db_url: str, metrics_port: int, soap_port: int) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(f"""
[database]
url = "{db_url}"
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
filter = "902"
retry_base = "200ms"
[logging]
level = "INFO"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[soap]
listen = "127.0.0.1:{soap_port}"
[soap.users]
"1c" = "soap-pw-1c"
""", encoding="utf-8")
    return path


def start_bridge(config: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["AMI_SECRET"] = AMI_SECRET
    return subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_healthy(proc: subprocess.Popen, base: str) -> None:
    """Until /healthz answers 200; fails at once with the bridge's stderr if the process exits."""
    wait_until(lambda: proc.poll() is not None or http_get(base + "/healthz")[0] == 200, STARTUP_WAIT_S, 0.05)
    if proc.poll() is not None:
        err = proc.communicate()[1]
        pytest.fail(f"the bridge exited with {proc.returncode} before /healthz answered: {err[-3000:]}")
    assert http_get(base + "/healthz")[0] == 200, http_get(base + "/healthz")


@pytest.mark.slow  # a bridge process, seconds of traffic
def test_run_delivers_reports_health_and_drains_everything_on_sigterm(tmp_path, sim, sink, migrated_sqlite):
    port, soap_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_bridge(write_config(tmp_path, sim, sink, migrated_sqlite, port, soap_port))
    try:
        wait_healthy(proc, base)
        assert json.loads(http_get(base + "/healthz")[1]) == {"status": "ok", "problems": []}

        sim.run_scenario("answered", caller="202", callee="902", wait=True)
        assert sink.wait_for(lambda s: any(b"CallEnded" in r.body for r in s.delivered()), WAIT_S)
        assert wait_until(lambda: metric(http_get(base + "/metrics")[1], "bridge_deliveries_total",
                                         subscriber="erp") >= len(sink.delivered_ids()))
        text = http_get(base + "/metrics")[1]
        assert metric(text, "bridge_ami_events_received_total", server="pbx1") > 0
        assert metric(text, "bridge_events_accepted_total", server="pbx1", kind="normalized") >= 2
        assert metric(text, "bridge_events_accepted_total", server="pbx1", kind="raw") >= 1
        assert metric(text, "bridge_ami_link_up", server="pbx1") == 1
        assert metric(text, "bridge_delivery_latency_seconds_count", subscriber="erp") >= 1

        assert soap_ping(soap_port, "1c", "soap-pw-1c") == 200
        assert soap_ping(soap_port, "1c", "wrong") == 401
        text = http_get(base + "/metrics")[1]
        assert metric(text, "bridge_soap_requests_total", operation="GetActiveCalls", result="ok") == 1
        assert metric(text, "bridge_soap_requests_total", operation="GetActiveCalls", result="rejected") == 1

        # Sized so the 15 s shutdown drain (runtime.DRAIN_TIMEOUT_S) can deliver all of it.
        flood = sim.flood(500, 2000, match_ratio=0.2, block=False)
        assert sink.wait_for(lambda s: len(s.delivered()) > 100, WAIT_S)
        assert flood.is_alive()                     # mid-flood: the simulator is still sending
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        flood.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    rows = outbox_rows(migrated_sqlite)
    statuses = {r["status"] for r in rows}
    assert statuses == {"delivered"}, (statuses, err[-2000:])       # nothing pending, nothing dead
    accepted = {r["event_uuid"] for r in rows}
    assert accepted <= sink.delivered_ids()                           # every accepted event delivered
    assert len(accepted) > 100
    assert AMI_SECRET not in err and "soap-pw-1c" not in err


def test_runtime_refuses_unmigrated_database_naming_the_upgrade_command(tmp_path):
    from bridge.runtime import Runtime

    config = Config(database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'fresh.db'}"),
                    ami=(AmiConfig(name="pbx1", username="bridge", secret="x"),))
    with pytest.raises(SchemaError, match="asterisk-bridge db upgrade"):
        Runtime(config).start()


def test_healthz_is_503_with_reason_when_ami_link_is_down(tmp_path, migrated_sqlite, sink):
    from bridge.runtime import Runtime

    closed = free_port()
    config = Config(database=DatabaseConfig(url=migrated_sqlite),
                    ami=(AmiConfig(name="pbx9", port=closed, username="bridge", secret="x",
                                   reconnect_base_s=0.1, reconnect_cap_s=0.2),),
                    subscribers=(SubscriberConfig(name="erp", url=sink.url),),
                    metrics=MetricsConfig(listen="127.0.0.1:0"))
    runtime = Runtime(config).start()
    try:
        url = f"http://127.0.0.1:{runtime.health_server.port}/healthz"
        status, body = http_get(url)
        assert status == 503
        problems = json.loads(body)["problems"]
        assert len(problems) == 1 and problems[0].startswith("ami pbx9: not logged in")
        assert metric(http_get(url.replace("healthz", "metrics"))[1], "bridge_ami_link_up", server="pbx9") == 0
        assert metric(http_get(url.replace("healthz", "metrics"))[1], "bridge_outbox_pending", subscriber="erp") == 0
    finally:
        runtime.stop()


def test_auto_upgrade_migrates_and_delivers_when_asked(db_url, sim, sink):
    from bridge.runtime import Runtime

    config = Config(database=DatabaseConfig(url=db_url),
                    ami=(AmiConfig(name="pbx1", port=sim.port, username="bridge", secret=AMI_SECRET),),
                    subscribers=(SubscriberConfig(name="erp", url=sink.url, mode="normalized"),))
    runtime = Runtime(config, auto_upgrade=True).start()
    try:
        assert runtime.clients[0].wait_connected(WAIT_S)
        sim.run_scenario("busy", wait=True)
        assert sink.wait_for(lambda s: any(b"CallEnded" in r.body for r in s.delivered()), WAIT_S)
    finally:
        runtime.stop()
