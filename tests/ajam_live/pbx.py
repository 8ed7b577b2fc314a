"""The shared Asterisk 22 with this suite's etc/ (AJAM on), on free ports, in a short temp dir."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ETC = Path(__file__).parent / "etc"
REPO = Path(__file__).resolve().parents[2]
BRIDGE_USER, BRIDGE_SECRET = "bridge", "bridgepass"
DRIVER_USER, DRIVER_SECRET = "driver", "driverpass"


def asterisk_dir() -> Path:
    """$BRIDGE_ASTERISK_DIR, else <repo>/../shared/asterisk (CI clones beside `shared/`); from a
    git worktree, also beside the main checkout that the worktree belongs to."""
    env = os.environ.get("BRIDGE_ASTERISK_DIR")
    if env:
        return Path(env)
    candidates = [REPO.parent / "shared" / "asterisk"]
    dotgit = REPO / ".git"
    if dotgit.is_file():  # a worktree: `.git` names <main>/.git/worktrees/<name>
        gitdir = Path(dotgit.read_text().split(":", 1)[1].strip())
        candidates.append(gitdir.parents[2].parent / "shared" / "asterisk")
    return next((c for c in candidates if c.is_dir()), candidates[0])


def require_asterisk() -> Path:
    home = asterisk_dir()
    if not (home / "run-asterisk.sh").exists():
        reason = f"no shared Asterisk at {home} (set BRIDGE_ASTERISK_DIR): live AJAM tests did not run"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " — required under CI", pytrace=False)
        pytest.skip(reason)
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pbx:
    """start()/stop() (idempotent, always call stop), restart(), freeze()/thaw() (SIGSTOP/SIGCONT)."""

    def __init__(self, httptimeout_s: int = 60) -> None:
        self.home = require_asterisk()
        self.script = self.home / "run-asterisk.sh"
        self.dir = Path(tempfile.mkdtemp(prefix="ajl-", dir="/tmp"))
        self.ami_port, self.http_port = free_port(), free_port()
        self.httptimeout_s = httptimeout_s
        etc = self.dir / "etc"
        shutil.copytree(ETC, etc)
        values = {"@AMI_PORT@": str(self.ami_port), "@HTTP_PORT@": str(self.http_port),
                  "@HTTPTIMEOUT@": str(httptimeout_s)}
        for conf in ("manager.conf", "http.conf"):
            text = (etc / conf).read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            (etc / conf).write_text(text)

    @property
    def ajam_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/asterisk/"

    def _run(self, command: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "AMI_PORT": str(self.ami_port), "HTTP_PORT": str(self.http_port)}
        return subprocess.run([str(self.script), command, str(self.dir)], env=env, capture_output=True,
                              text=True, timeout=90)

    def start(self) -> "Pbx":
        done = self._run("start")
        if done.returncode != 0:
            self._run("stop")
            raise RuntimeError(f"run-asterisk.sh start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return self

    def restart(self) -> None:
        self._run("stop")
        self.start()

    def _pid(self) -> int:
        return int((self.dir / "run" / "asterisk.pid").read_text().strip())

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, Asterisk answers nothing (a wedged PBX)."""
        os.kill(self._pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self._pid(), signal.SIGCONT)

    def log_count(self, text: str) -> int:
        path = self.dir / "log" / "messages"
        return path.read_text(errors="replace").count(text) if path.exists() else 0

    def stop(self) -> None:
        try:
            self.thaw()
        except (OSError, ValueError):
            pass
        self._run("stop")
        shutil.rmtree(self.dir, ignore_errors=True)
