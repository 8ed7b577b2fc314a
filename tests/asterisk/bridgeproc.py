"""The real `asterisk-bridge run` as a subprocess against the live PBX, with a local ERP sink."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import requests

from tests.asterisk.pbx import ARI_SECRET, ARI_USER, BRIDGE_SECRET, BRIDGE_USER, free_port

SOAP_USER, SOAP_PASSWORD = "1c", "live-soap-pass"
SOAP_NS = "urn:asterisk-bridge"
EVENTS_NS = "{urn:asterisk-bridge:events}"
# Customers come in on Local/<number>@pstn, outside lines leave on Local/<number>@trunk.
TRUNK_PATTERN = r"^Local/[^@]+@(pstn|trunk)-"

CONFIG = """\
[database]
url = "sqlite:///{db}"

[[ami]]
name = "pbx1"
{link}
username = "{ami_user}"
secret = "{ami_secret}"
reconnect_base = "100ms"
reconnect_cap = "500ms"

[soap]
listen = "127.0.0.1:{soap_port}"
path = "/bridge"
allow = ["127.0.0.1/32"]

[soap.users]
"{soap_user}" = "{soap_password}"

[soap.click_to_call]
channel = "Local/{{extension}}@phones"
context = "from-internal"
timeout_ms = 5000

[[subscriber]]
name = "erp"
url = "{sink_url}"
mode = "normalized"
retry_base = "100ms"
retry_cap = "500ms"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[calls]
internal_contexts = ["from-internal"]
inbound_contexts = ["from-trunk"]
trunk_channel_patterns = ['{trunk}']

[logging]
level = "INFO"
"""


def bridge_command() -> list[str]:
    """The console script a user runs; `python -m bridge` only if the venv lacks it."""
    script = Path(sys.executable).parent / "asterisk-bridge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bridge"]


# How the bridge reaches the PBX (the suite's `transport` parameter, tests/asterisk/conftest.py): tcp
# (AMI), http (AJAM, cookie), digest (AJAM, HTTP Digest) or ari (events WebSocket + REST, ari.conf user).
LINKS = {
    "tcp": 'host = "127.0.0.1"\nport = {ami_port}\nauth = "md5"',
    "http": 'transport = "http"\nurl = "http://127.0.0.1:{http_port}/"\nauth = "cookie"\nwait_timeout = "20s"',
    "digest": 'transport = "http"\nurl = "http://127.0.0.1:{http_port}/"\nauth = "digest"\nwait_timeout = "20s"',
    "ari": 'transport = "ari"\nurl = "http://127.0.0.1:{http_port}/ari/"',
}
CREDENTIALS = {"ari": (ARI_USER, ARI_SECRET)}     # the others log in as manager.conf [bridge]


class BridgeProcess:
    def __init__(self, workdir: Path, ami_port: int, sink_url: str, *, transport: str = "tcp",
                 http_port: int | None = None) -> None:
        self.workdir = workdir
        self.transport = transport
        self.soap_port = free_port()
        self.metrics_port = free_port()
        self.config = workdir / "bridge.toml"
        link = LINKS[transport].format(ami_port=ami_port, http_port=http_port)
        user, secret = CREDENTIALS.get(transport, (BRIDGE_USER, BRIDGE_SECRET))
        self.config.write_text(CONFIG.format(
            db=workdir / "outbox.db", link=link, ami_user=user, ami_secret=secret,
            soap_port=self.soap_port, soap_user=SOAP_USER, soap_password=SOAP_PASSWORD, sink_url=sink_url,
            metrics_port=self.metrics_port, trunk=TRUNK_PATTERN))
        self.log_path = workdir / "bridge.log"
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()
        self.http.auth = (SOAP_USER, SOAP_PASSWORD)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.soap_port}/bridge"

    def start(self, timeout_s: float = 30.0) -> "BridgeProcess":
        cmd = bridge_command()
        upgrade = subprocess.run([*cmd, "db", "upgrade", "-c", str(self.config)], capture_output=True,
                                 text=True, timeout=60)
        if upgrade.returncode != 0:
            raise RuntimeError(f"db upgrade failed:\n{upgrade.stdout}\n{upgrade.stderr}")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen([*cmd, "run", "-c", str(self.config)], stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk-bridge run exited {self.proc.returncode}:\n{self.log()}")
            try:
                if "<connected>true</" in re.sub(r"<(/?)\w+:", r"<\1", self.call("Ping")):
                    return self
            except (requests.RequestException, SoapFault):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"bridge not connected to AMI within {timeout_s} s:\n{self.log()}")

    def log(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.http.close()

    # --- SOAP over real HTTP -------------------------------------------------------------------

    def call(self, operation: str, **params) -> str:
        """POST one SOAP 1.1 request; returns the response body, raises SoapFault on a Fault."""
        body = "".join(_element(k, v) for k, v in params.items() if v is not None)
        envelope = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                    f'xmlns:m="{SOAP_NS}"><soapenv:Body><m:{operation}>{body}</m:{operation}>'
                    '</soapenv:Body></soapenv:Envelope>')
        reply = self.http.post(self.url, data=envelope.encode("utf-8"), timeout=10, headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_NS}#Bridge:{operation}"'})
        text = reply.content.decode("utf-8")
        if "Fault>" in text or reply.status_code != 200:
            raise SoapFault(f"{operation}: HTTP {reply.status_code}: {text[:500]}")
        return text

    def call_return(self, operation: str, **params) -> str:
        found = re.search(r"<(?:\w+:)?return>([^<]*)</(?:\w+:)?return>", self.call(operation, **params))
        if not found:
            raise SoapFault(f"{operation}: no simple <return> in the answer")
        return html.unescape(found.group(1))


class SoapFault(Exception):
    pass


def _element(name: str, value) -> str:
    if isinstance(value, (list, tuple)):   # e.g. variables=[("variable", "A=1"), …]
        return f"<m:{name}>" + "".join(_element(k, v) for k, v in value) + f"</m:{name}>"
    return f"<m:{name}>{html.escape(str(value), quote=False)}</m:{name}>"


def pushed_event(body: bytes) -> dict[str, str]:
    """A PushEvent body → its normalized headers (every header, as the ERP's web service reads them)."""
    root = ET.fromstring(body)
    found = {"name": root.findtext(f".//{EVENTS_NS}name") or ""}
    for header in root.iter(f"{EVENTS_NS}header"):
        found[header.get("name") or ""] = header.text or ""
    call = root.find(f".//{EVENTS_NS}call")
    children = list(call) if call is not None else []
    found["__call__"] = {child.tag.replace(EVENTS_NS, ""): child.text or "" for child in children}
    return found
