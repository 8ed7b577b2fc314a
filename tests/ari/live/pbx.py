"""A private Asterisk 22 for the ARI live suite: free ports, its own etc/, always stopped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[2]
AMI_USER, AMI_SECRET = "bridge", "bridgepass"
ARI_USER, ARI_SECRET = "ari", "aripass"


def asterisk_dir() -> Path | None:
    """BRIDGE_ASTERISK_DIR, else ../shared/asterisk beside the clone (or beside a worktree's parent)."""
    env = os.environ.get("BRIDGE_ASTERISK_DIR")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "asterisk",
                                          REPO.parent.parent / "shared" / "asterisk"]
    return next((c for c in candidates if (c / "run-asterisk.sh").is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pbx:
    """start() copies the shared example-etc, lays tests/ari/live/etc over it, sets the ports."""

    def __init__(self, home: Path, overlay: Path = HERE / "etc") -> None:
        self.home = home
        self.overlay = overlay
        self.script = home / "run-asterisk.sh"
        self.dir = Path(tempfile.mkdtemp(prefix="ari", dir="/tmp"))   # short: asterisk.ctl < 108 bytes
        self.ami_port, self.http_port = free_port(), free_port()

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/ari/"

    def _env(self) -> dict:
        return {**os.environ, "AMI_PORT": str(self.ami_port), "HTTP_PORT": str(self.http_port)}

    def start(self) -> "Pbx":
        etc = self.dir / "etc"
        shutil.copytree(self.home / "example-etc", etc, dirs_exist_ok=True)
        for conf in self.overlay.glob("*.conf"):
            shutil.copy(conf, etc / conf.name)
        _set(etc / "manager.conf", "port = 5038", f"port = {self.ami_port}")
        _set(etc / "http.conf", "bindport = 8088", f"bindport = {self.http_port}")
        subprocess.run([str(self.script), "start", str(self.dir)], env=self._env(), check=True,
                       capture_output=True, timeout=60)
        return self

    def cli(self, command: str) -> str:
        """One `asterisk -rx` through the instance's control socket."""
        home = Path(os.environ.get("ASTERISK_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                    / "asterisk-22.10.1")
        asterisk = home / "sbin" / "asterisk"
        out = subprocess.run([str(asterisk), "-C", str(self.dir / "asterisk.conf"), "-rx", command],
                             env={**os.environ, "LD_LIBRARY_PATH": str(home / "lib")},
                             capture_output=True, text=True, timeout=20)
        return out.stdout

    def halt(self) -> None:
        """Stop Asterisk, keep its directory (start() brings the same instance back)."""
        subprocess.run([str(self.script), "stop", str(self.dir)], env=self._env(), capture_output=True, timeout=60)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


def _set(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new))
