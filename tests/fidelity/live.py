"""The shared Asterisk 22.10.1 with this package's etc/, and a raw AMI session that records bytes.

No bridge code on the wire: the session writes actions by hand and keeps every byte Asterisk
sent, so a capture is what Asterisk said, not what our client understood.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bridge.ami.message import Message
from bridge.ami.protocol import AmiParser
from tests.asterisk import pbx

HERE = Path(__file__).resolve().parent
ETC = HERE / "etc"
USER, SECRET = "bridge", "bridgepass"


def asterisk_dir() -> Path | None:
    """Where the live suite finds the shared Asterisk (BRIDGE_ASTERISK_DIR, else beside the
    clone or the worktree's main checkout), or None when it is not there."""
    home = pbx.asterisk_dir()
    return home if (home / "run-asterisk.sh").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Asterisk:
    """A private instance: `start()` copies the example etc/, overlays ours with free ports."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.script = home / "run-asterisk.sh"
        # The control socket path must stay under 108 bytes: a short directory under /tmp.
        self.dir = Path(tempfile.mkdtemp(prefix="fid-", dir="/tmp"))
        self.ami_port = free_port()
        self.http_port = free_port()

    def _env(self) -> dict[str, str]:
        return {**os.environ, "AMI_PORT": str(self.ami_port), "HTTP_PORT": str(self.http_port)}

    def start(self) -> None:
        etc = self.dir / "etc"
        shutil.copytree(self.home / "example-etc", etc)
        for conf in ETC.glob("*.conf"):
            text = conf.read_text()
            text = text.replace("port = 5038", f"port = {self.ami_port}")
            text = text.replace("bindport = 8088", f"bindport = {self.http_port}")
            (etc / conf.name).write_text(text)
        subprocess.run([str(self.script), "start", str(self.dir)], env=self._env(), check=True,
                       stdout=subprocess.DEVNULL, timeout=60)

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop", str(self.dir)], env=self._env(),
                       stdout=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class RawSession:
    """One AMI connection: `send` writes an action, `pump` reads, `received`/`sent` are the bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.received = bytearray()
        self.sent = bytearray()
        self.parser = AmiParser()
        self.messages: list[Message] = []

    def send(self, *pairs: tuple[str, str]) -> None:
        data = "".join(f"{k}: {v}\r\n" for k, v in pairs).encode("utf-8") + b"\r\n"
        self.sent += data
        self.sock.sendall(data)

    def pump(self, seconds: float) -> list[Message]:
        """Read for `seconds`; returns the messages parsed meanwhile."""
        end = time.monotonic() + seconds
        new: list[Message] = []
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(min(left, 0.2))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.received += chunk
            self.parser.feed(chunk)
            new.extend(m for m in self.parser if isinstance(m, Message))
        self.messages.extend(new)
        return new

    def wait_for(self, predicate, timeout: float) -> Message:
        for m in self.messages:
            if predicate(m):
                return m
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in self.pump(0.1):
                if predicate(m):
                    return m
        raise TimeoutError("AMI: expected message did not arrive")

    def close(self) -> None:
        self.sock.close()
