"""Hostile peers against a real bridge process: what an attacker sends, what a user then sees.

Every test runs `python -m bridge run` as its own process (so RSS is the bridge's, and a GIL
held by the bridge cannot slow the attacker or the measuring client), with a real AMI simulator,
a real SQLite outbox and real sockets. `BridgeProcess` writes only the config keys a test sets,
so the same test also runs against an older checkout (to show that it fails there).
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAP_USER = "1c"
SOAP_PASSWORD = "soap-P4ss-7e1b"
AMI_SECRET = "ami-S3cret-91fd"
ERP_PASSWORD = "erp-P4ss-c0de"
SIGNING_SECRET = "whsec-sign-5a5a9"
SECRETS = (SOAP_PASSWORD, AMI_SECRET, ERP_PASSWORD, SIGNING_SECRET,
           base64.b64encode(f"{SOAP_USER}:{SOAP_PASSWORD}".encode()).decode(),
           base64.b64encode(f"erp:{ERP_PASSWORD}".encode()).decode())
START_TIMEOUT_S = 30.0
PING_BODY = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
             b'xmlns:m="urn:asterisk-bridge"><soap:Body><m:Ping/></soap:Body></soap:Envelope>')
_HASHED: dict[str, str] = {}


def hashed_password() -> str:
    """The SOAP password as a pbkdf2 hash (computed once: it costs half a second)."""
    if SOAP_PASSWORD not in _HASHED:
        from bridge.soap.auth import hash_password

        _HASHED[SOAP_PASSWORD] = hash_password(SOAP_PASSWORD)
    return _HASHED[SOAP_PASSWORD]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def toml_table(name: str, values: dict) -> str:
    lines = [f"[{name}]"]
    nested = []
    for key, value in values.items():
        if isinstance(value, dict):
            nested.append(toml_table(f"{name}.{key}", value))
        else:
            lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines + nested) + "\n"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class BridgeProcess:
    """`python -m bridge run` with a generated config; `.soap`, `.metrics` are (host, port)."""

    def __init__(self, tmp_path: Path, ami_port: int, *, soap: dict | None = None,
                 subscribers: list[dict] = (), database: dict | None = None, ami: dict | None = None,
                 calls: dict | None = None, users: dict | None = None, log_level: str = "DEBUG") -> None:
        self.dir = tmp_path
        self.db_url = f"sqlite:///{tmp_path / 'outbox.db'}"
        self.soap = ("127.0.0.1", free_port())
        self.metrics = ("127.0.0.1", free_port())
        soap_cfg = {"listen": f"127.0.0.1:{self.soap[1]}", "allow": ["127.0.0.1/32"], **(soap or {})}
        soap_cfg["users"] = {SOAP_USER: hashed_password()} if users is None else users
        ami_cfg = {"name": "pbx1", "host": "127.0.0.1", "port": ami_port, "username": "bridge",
                   "secret": AMI_SECRET, "auth": "plain", "reconnect_base": "100ms",
                   "reconnect_cap": "500ms", **(ami or {})}
        parts = [toml_table("database", {"url": self.db_url, **(database or {})}),
                 toml_table("logging", {"level": log_level}),
                 toml_table("metrics", {"listen": f"127.0.0.1:{self.metrics[1]}"}),
                 toml_table("soap", soap_cfg)]
        parts.append("[[ami]]\n" + toml_table("x", ami_cfg).split("\n", 1)[1])
        for sub in subscribers:
            parts.append("[[subscriber]]\n" + toml_table("x", sub).split("\n", 1)[1])
        if calls:
            parts.append(toml_table("calls", calls))
        self.config_path = tmp_path / "bridge.toml"
        self.config_path.write_text("\n".join(parts))
        self.log_path = tmp_path / "bridge.log"
        self.proc: subprocess.Popen | None = None

    def command(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bridge", *args, "-c", str(self.config_path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=_env())

    def start(self, wait_ami: bool = True) -> "BridgeProcess":
        from bridge.outbox.db import upgrade

        upgrade(self.db_url)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(self.config_path)],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_env())
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bridge exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                status, _ = self.healthz(timeout_s=1.0)
                if status == 200 or (status == 503 and not wait_ami):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise AssertionError(f"bridge did not get ready:\n{self.log()[-3000:]}")
        # The first check of a hashed password costs ~0.5 s; later ones are cached. Warm up now.
        assert self.ping(timeout_s=10.0)[0] == 200
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, where: tuple[str, int], method: str, path: str, body: bytes = b"",
                headers: dict | None = None, timeout_s: float = 5.0) -> tuple[int, bytes, float]:
        """(status, body, seconds) over a fresh connection."""
        started = time.monotonic()
        conn = http.client.HTTPConnection(*where, timeout=timeout_s)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data, time.monotonic() - started
        finally:
            conn.close()

    def soap_call(self, body: bytes, *, auth: str | None = None, action: str = "",
                  timeout_s: float = 5.0) -> tuple[int, bytes, float]:
        headers = {"Content-Type": "text/xml; charset=utf-8",
                   "Authorization": auth or basic(SOAP_USER, SOAP_PASSWORD)}
        if action:
            headers["SOAPAction"] = action
        return self.request(self.soap, "POST", "/bridge", body, headers, timeout_s)

    def ping(self, timeout_s: float = 5.0) -> tuple[int, float]:
        status, _, seconds = self.soap_call(PING_BODY, action='"urn:asterisk-bridge#Bridge:Ping"',
                                            timeout_s=timeout_s)
        return status, seconds

    def healthz(self, timeout_s: float = 5.0) -> tuple[int, float]:
        status, _, seconds = self.request(self.metrics, "GET", "/healthz", timeout_s=timeout_s)
        return status, seconds

    def outbox(self) -> list[dict]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM outbox ORDER BY id"))]
        finally:
            engine.dispose()

    def counts(self, event_name: str) -> dict[str, int]:
        """Rows of `event_name` by status (no payloads read: they may be large)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT status, count(*) FROM outbox WHERE event_name = :n "
                                         "GROUP BY status"), {"n": event_name})
                return {status: n for status, n in rows}
        finally:
            engine.dispose()

    def uuids(self, event_name: str) -> set[str]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return {r[0] for r in conn.execute(text("SELECT event_uuid FROM outbox WHERE event_name = :n"),
                                                    {"n": event_name})}
        finally:
            engine.dispose()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def assert_no_secret_logged(self) -> None:
        text = self.log()
        for secret in SECRETS:
            assert secret not in text, f"a secret reached the log: {secret[:4]}…"


def _env() -> dict:
    env = dict(os.environ)
    env.pop("BRIDGE_LOG_LEVEL", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def simulator():
    from bridge.testing.simulator import AmiSimulator

    sim = AmiSimulator("asterisk20", users={"bridge": AMI_SECRET}).start()
    yield sim
    sim.stop()


@pytest.fixture
def bridge_factory(tmp_path, simulator):
    """make(**kw) → a started BridgeProcess; every one is stopped after the test."""
    made: list[BridgeProcess] = []

    def make(start: bool = True, **kw) -> BridgeProcess:
        where = tmp_path / f"b{len(made)}"
        where.mkdir()
        proc = BridgeProcess(where, simulator.port, **kw)
        made.append(proc)
        return proc.start() if start else proc

    yield make
    for proc in made:
        proc.stop()


@pytest.fixture(scope="module")
def shared_bridge(tmp_path_factory):
    """One bridge for a whole module (a start costs ~2 s): tests that
    attack it must leave nothing behind (their sockets closed, their threads joined)."""
    from bridge.testing.simulator import AmiSimulator

    sim = AmiSimulator("asterisk20", users={"bridge": AMI_SECRET}).start()
    # Default limits except a 2 s request deadline, so the trickle test need not wait 10 s.
    proc = BridgeProcess(tmp_path_factory.mktemp("shared"), sim.port, soap={"request_timeout": "2s"})
    try:
        yield proc.start()
    finally:
        proc.stop()
        sim.stop()
