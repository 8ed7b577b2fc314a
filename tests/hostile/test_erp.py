"""A hostile ERP against the bridge's deliveries and `asterisk-bridge check` (issue #12: 4, 5, 6, 7,
8, 16, 18). One bridge process and one HostileErp for the module; each test switches the ERP's
behaviour, sends a few events from the AMI simulator, looks at the outbox rows, then lets the ERP
behave and checks that every accepted event was acknowledged (lost = 0)."""

from __future__ import annotations

import itertools
import shutil
import ssl
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from tests.hostile.conftest import AMI_SECRET, ERP_PASSWORD, SIGNING_SECRET, BridgeProcess
from tests.hostile.erp import HostileErp, wait_for

_seq = itertools.count(1)


def erp_subscriber(url: str, **kw) -> dict:
    return {"name": "erp", "url": url, "mode": "raw", "events": ["UserEvent"], "username": "erp",
            "password": ERP_PASSWORD, "signing_secret": SIGNING_SECRET, "retry_base": "50ms",
            "retry_cap": "500ms", "probe_cap": "500ms", "connect_timeout": "1s", "read_timeout": "1s", **kw}


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from bridge.testing.simulator import AmiSimulator

    sim = AmiSimulator("asterisk20", users={"bridge": AMI_SECRET}).start()
    erp = HostileErp().start()
    bridge = BridgeProcess(tmp_path_factory.mktemp("erp"), sim.port, subscribers=[erp_subscriber(erp.url)])
    try:
        bridge.start()
        yield sim, erp, bridge
    finally:
        bridge.stop()
        erp.stop()
        sim.stop()


def emit(sim, n: int) -> list[str]:
    """n UserEvents of distinct calls; returns their Uniqueids (the rows' order_key)."""
    keys = []
    for _ in range(n):
        key = f"1764220000.{next(_seq)}"
        sim.emit([("Event", "UserEvent"), ("Privilege", "user,all"), ("UserEvent", "Hostile"),
                  ("Uniqueid", key), ("Linkedid", key)])
        keys.append(key)
    return keys


def rows_of(bridge, keys) -> list[dict]:
    return [r for r in bridge.outbox() if r["order_key"] in set(keys)]


def settle(bridge, erp, keys) -> None:
    """The ERP behaves again: every accepted row of `keys` must be acknowledged (lost = 0)."""
    erp.mode = "ok"
    assert wait_for(lambda: len(rows_of(bridge, keys)) == len(keys), 10), "events were not accepted"
    assert wait_for(lambda: all(r["status"] == "delivered" for r in rows_of(bridge, keys)), 15), \
        [(r["status"], r["last_error"]) for r in rows_of(bridge, keys)]
    acked = set(erp.acked)
    lost = [r["event_uuid"] for r in rows_of(bridge, keys) if r["event_uuid"] not in acked]
    assert lost == []


def test_a_huge_erp_answer_is_not_read_into_memory(rig):
    # Finding 4: a 10 GB answer was read whole (resp.content): RSS past 6 GiB.
    sim, erp, bridge = rig
    before = bridge.rss_kib()
    erp.mode = "huge"
    keys = emit(sim, 3)
    assert wait_for(lambda: any((r["attempts"] or 0) >= 2 for r in rows_of(bridge, keys)), 15)
    peak = bridge.rss_kib()
    rows = rows_of(bridge, keys)
    assert all(r["status"] == "pending" for r in rows)
    assert any("larger than" in (r["last_error"] or "") for r in rows)
    print(f"figures: huge ERP answer RSS +{(peak - before) // 1024} MiB")
    assert peak - before < 48 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"
    settle(bridge, erp, keys)


def test_a_trickling_erp_answer_is_cut_at_the_deadline(rig):
    # Finding 5: one byte every 2 s defeated read_timeout (per read): both workers stuck for
    # good, every row pending with 0 attempts and no last_error. Deadline here: 1 s + 1 s.
    sim, erp, bridge = rig
    erp.mode = "trickle"
    keys = emit(sim, 1)
    assert wait_for(lambda: len(rows_of(bridge, keys)) == 1
                    and all("within 2 s" in (r["last_error"] or "") for r in rows_of(bridge, keys)), 10)
    assert bridge.healthz()[0] == 200
    settle(bridge, erp, keys)


@pytest.mark.parametrize("retry_after", ["999999999999", "99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_huge_retry_after_is_clamped_and_never_kills_rows(rig, retry_after):
    # Finding 6: 999999999999 raised OverflowError (rows re-sent every lease, never dying,
    # jamming their batch); 99999999999 made rows dead after one attempt.
    sim, erp, bridge = rig
    erp.mode, erp.retry_after = "retry_after", retry_after
    keys = emit(sim, 3)
    assert wait_for(lambda: len(rows_of(bridge, keys)) == 3
                    and all((r["attempts"] or 0) >= 1 for r in rows_of(bridge, keys)), 10)
    rows = rows_of(bridge, keys)
    assert all(r["status"] == "pending" and "HTTP 503" in (r["last_error"] or "") for r in rows)
    latest = datetime.now(timezone.utc) + timedelta(seconds=5)       # retry_cap is 0.5 s
    assert all(_utc(r["next_attempt_at"]) <= latest for r in rows)
    settle(bridge, erp, keys)
    assert "OverflowError" not in bridge.log()


@pytest.mark.parametrize("mode", ["redirect302", "redirect307"])
def test_redirects_are_failures_not_deliveries(rig, mode):
    # Finding 7: 301/302 turned the POST into a GET elsewhere and marked rows delivered; 307/308
    # sent the signed event to another host.
    sim, erp, bridge = rig
    with HostileErp() as elsewhere:
        erp.mode, erp.location = mode, elsewhere.url
        keys = emit(sim, 2)
        assert wait_for(lambda: len(rows_of(bridge, keys)) == 2
                        and all((r["attempts"] or 0) >= 2 for r in rows_of(bridge, keys)), 10)
        rows = rows_of(bridge, keys)
        assert all(r["status"] == "pending" and "redirect" in r["last_error"] and "not followed" in r["last_error"]
                   for r in rows)
        assert elsewhere.requests == []
    settle(bridge, erp, keys)


def test_a_200_login_page_is_not_an_acknowledgement(rig):
    # Finding 18: an HTML login page with 200 counted as delivered.
    sim, erp, bridge = rig
    erp.mode = "html"
    keys = emit(sim, 2)
    assert wait_for(lambda: len(rows_of(bridge, keys)) == 2
                    and all((r["attempts"] or 0) >= 1 for r in rows_of(bridge, keys)), 10)
    rows = rows_of(bridge, keys)
    assert all(r["status"] == "pending" and "not a SOAP envelope" in r["last_error"] for r in rows)
    settle(bridge, erp, keys)


def test_erp_fault_text_cannot_forge_log_lines_or_drive_the_terminal(rig):
    # Finding 16: the ERP's fault text forged a CRITICAL line in the text log, and `outbox show`
    # printed its escape sequences to the admin's terminal.
    sim, erp, bridge = rig
    erp.mode, erp.fault_text = "fault", "no\n2026-12-01 00:00:00,000 CRITICAL bridge: forged\x1b[2J"
    keys = emit(sim, 1)
    assert wait_for(lambda: len(rows_of(bridge, keys)) == 1 and (rows_of(bridge, keys)[0]["attempts"] or 0) >= 1, 10)
    forged = [line for line in bridge.log().splitlines() if "CRITICAL bridge: forged" in line]
    assert forged and all(not line.startswith("2026-12-01 00:00:00,000") for line in forged)
    assert "\x1b" not in bridge.log()
    erp.mode = "escape_reason"
    keys += emit(sim, 1)

    def last_error() -> str:
        rows = rows_of(bridge, keys[1:])
        return (rows[0]["last_error"] or "") if rows else ""

    assert wait_for(lambda: "Busy" in last_error(), 10)
    row = rows_of(bridge, keys[1:])[0]
    shown = subprocess.run([*bridge_cli(), "outbox", "show", str(row["id"]), "--database-url", bridge.db_url],
                           capture_output=True, text=True, timeout=30)
    listed = subprocess.run([*bridge_cli(), "outbox", "list", "--database-url", bridge.db_url],
                            capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and "Busy" in shown.stdout and "\\x1b[2J" in shown.stdout
    assert listed.returncode == 0 and "Busy" in listed.stdout
    assert "\x1b" not in shown.stdout + listed.stdout and "\x07" not in shown.stdout + listed.stdout
    assert "\x1b" not in bridge.log()
    settle(bridge, erp, keys)
    bridge.assert_no_secret_logged()


def bridge_cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "bridge"]


def _utc(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@pytest.fixture
def self_signed(tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def test_check_uses_the_delivery_transport(tmp_path, simulator, self_signed):
    # Finding 8: `check` followed a redirect and sent `Authorization: Basic …` (the ERP
    # password) to the other host, and ignored verify_tls / ca_file.
    cert, context = self_signed
    with HostileErp() as elsewhere, HostileErp(mode="redirect302") as erp, HostileErp(tls=context) as tls_erp:
        erp.location = elsewhere.url
        subs = [erp_subscriber(erp.url),
                erp_subscriber(tls_erp.url, name="tls-default"),
                erp_subscriber(tls_erp.url, name="tls-cafile", ca_file=str(cert)),
                erp_subscriber(tls_erp.url, name="tls-noverify", verify_tls=False)]
        bridge = BridgeProcess(tmp_path, simulator.port, subscribers=subs)
        out = bridge.command("check").stdout
        lines = {line.split(":")[0]: line for line in out.splitlines() if line.startswith(("OK", "FAIL"))}
        assert lines["FAIL subscriber erp"] and "redirect" in lines["FAIL subscriber erp"]
        assert elsewhere.requests == [] and erp.requests[0].headers.get("authorization")
        assert "FAIL subscriber tls-default" in lines
        assert "OK   subscriber tls-cafile" in lines
        assert "OK   subscriber tls-noverify" in lines
