"""Chaos: hostile peers while the bridge carries a flood (issue #12) — slow SOAP clients, big
bodies (SOAP requests and ERP answers), trickled bodies (SOAP requests and ERP answers), and
binary garbage from the AMI side. Same audit as every scenario (lost = 0, order, no duplicates
with different bodies), plus: the SOAP Ping answers during the attack, and this process's RSS
stays under a ceiling."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from bridge.config import Config, DatabaseConfig, MetricsConfig, SoapConfig
from bridge.testing import fake_erp as sink_modes
from tests.chaos.audit import audit
from tests.chaos.rig import Rig, ami_config, scale, subscriber_config

RSS_CEILING_MIB = 200          # growth of this process (bridge + simulator + sink) during the run
# The attacker runs in this process too (it shares the GIL with the bridge), so the Ping bound
# is looser here than in tests/hostile, where the bridge has a process of its own (1 s).
PING_CEILING_S = 2.0
SOAP_USER, SOAP_PASSWORD = "1c", "chaos-soap-pass"
PING = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="urn:asterisk-bridge">'
        b"<soap:Body><m:Ping/></soap:Body></soap:Envelope>")


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


class HostileRig(Rig):
    """The chaos rig with the SOAP service and /healthz up (short request deadline)."""

    def config(self) -> Config:
        return Config(database=DatabaseConfig(url=self.db_url, queue_max_bytes=16 * 1024 * 1024),
                      ami=(ami_config(self.port, **self.ami_kw),),
                      subscribers=(subscriber_config(self.sink.url, **self.sub_kw),),
                      soap=SoapConfig(listen="127.0.0.1:0", users={SOAP_USER: SOAP_PASSWORD},
                                      request_timeout_s=1.0),
                      metrics=MetricsConfig(listen="127.0.0.1:0"))

    @property
    def soap(self) -> tuple[str, int]:
        return ("127.0.0.1", self.runtime.soap_server.port)

    @property
    def metrics(self) -> tuple[str, int]:
        return ("127.0.0.1", self.runtime.health_server.port)

    def ping_s(self) -> float:
        import base64
        import http.client

        auth = "Basic " + base64.b64encode(f"{SOAP_USER}:{SOAP_PASSWORD}".encode()).decode()
        started = time.monotonic()
        conn = http.client.HTTPConnection(*self.soap, timeout=10)
        try:
            conn.request("POST", "/bridge", PING, {"Content-Type": "text/xml", "Authorization": auth})
            assert conn.getresponse().status == 200
        finally:
            conn.close()
        return time.monotonic() - started


def _slow_clients(rig: HostileRig, stop: threading.Event) -> None:
    socks = []
    for where, n in ((rig.soap, 24), (rig.metrics, 8)):
        for _ in range(n):
            s = socket.create_connection(where)
            s.sendall(b"POST /bridge HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
    while not stop.wait(0.3):
        for s in socks:
            try:
                s.sendall(b"X-Drip: y\r\n")
            except OSError:
                pass
    for s in socks:
        s.close()


def _big_bodies(rig: HostileRig, stop: threading.Event) -> None:
    while not stop.is_set():
        for head in (b"POST /bridge HTTP/1.1\r\nHost: x\r\nX-Junk: ",
                     b"POST /bridge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n25800000\r\n"):
            try:
                with socket.create_connection(rig.soap, timeout=3) as s:
                    s.sendall(head)
                    for _ in range(32):                      # 2 MiB
                        s.sendall(b"a" * 65536)
                    s.recv(1024)
            except OSError:
                pass


def _trickled_bodies(rig: HostileRig, stop: threading.Event) -> None:
    socks = []
    while not stop.wait(0.2):
        try:
            s = socket.create_connection(rig.soap, timeout=3)
            s.sendall(b"POST /bridge HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 200000\r\n\r\n<")
            socks.append(s)
        except OSError:
            pass
        for s in socks:
            try:
                s.sendall(b"<")
            except OSError:
                pass
    for s in socks:
        s.close()


def _garbage(rig: HostileRig, stop: threading.Event) -> None:
    rng = random.Random(7)
    junk = [bytes(b for b in rng.randbytes(32 * 1024) if b not in (10, 13)) for _ in range(16)]
    i = 0
    while not stop.is_set():
        for session in rig.sim.sessions:
            if session.logged_in:
                session.send(b"Event: Garbage\r\nPrivilege: user,all\r\nData: " + junk[i % 16] + b"\r\n\r\n")
        i += 1
        time.sleep(0.002)


# scenario → (SOAP/AMI attacker, ERP sink mode during the fault or None)
SCENARIOS = {
    "slow-client": (_slow_clients, None),
    "big-body": (_big_bodies, sink_modes.BIG),
    "trickle-body": (_trickled_bodies, sink_modes.TRICKLE),
    "garbage-AMI": (_garbage, None),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_accepted_event_delivered_when_peers_are_hostile(tmp_path, name):
    attacker, sink_mode = SCENARIOS[name]
    episodes = scale(2, 6)
    fault_s, healthy_s = scale(1.5, 5.0), scale(0.5, 2.0)
    sub_kw = {"read_timeout_s": 0.5}
    with HostileRig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1000),
                    sub_kw=sub_kw) as rig:
        baseline, peak, pings = _rss_kib(), 0, []
        for _ in range(episodes):
            time.sleep(healthy_s)
            stop = threading.Event()
            thread = threading.Thread(target=attacker, args=(rig, stop), daemon=True)
            thread.start()
            if sink_mode is not None:
                rig.sink.set_mode(sink_mode)
            deadline = time.monotonic() + fault_s
            while time.monotonic() < deadline:
                pings.append(rig.ping_s())
                peak = max(peak, _rss_kib())
                time.sleep(0.2)
            rig.sink.set_mode(sink_modes.OK)
            stop.set()
            thread.join(10)
        failed = sum(1 for r in rig.sink.receipts if r.answered != sink_modes.OK)
        drained = rig.drain()
        growth_mib = (peak - baseline) // 1024
        faults = (f"{episodes}x {fault_s:g}s {name}; Ping max {max(pings) * 1000:.0f} ms; "
                  f"RSS +{growth_mib} MiB (ceiling {RSS_CEILING_MIB})"
                  + (f"; {failed} failed POSTs" if sink_mode else ""))
        result = audit(f"hostile {name}", faults, rig.db_url, rig.sink, rig.stream, expect_all_offered=True)
        link_breaks = rig.client.stats.disconnects
    assert drained, result.problems
    assert result.lost == 0 and not result.problems, result.problems
    assert max(pings) < PING_CEILING_S, f"a Ping took {max(pings):.2f} s during the attack"
    assert growth_mib < RSS_CEILING_MIB
    assert link_breaks == 0
    assert sink_mode is None or failed > 0, "the ERP fault was never hit"
