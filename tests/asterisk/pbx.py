"""The shared Asterisk 22 (../shared/asterisk) started with this suite's own etc/ on free ports."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ETC = Path(__file__).parent / "etc"
REPO = Path(__file__).resolve().parents[2]
DRIVER_USER, DRIVER_SECRET = "driver", "driver-live-secret"
BRIDGE_USER, BRIDGE_SECRET = "bridge", "bridge-live-secret"
ARI_USER, ARI_SECRET = "bridge", "bridge-ari-secret"      # etc/ari.conf


def asterisk_dir() -> Path:
    """$BRIDGE_ASTERISK_DIR, else <repo>/../shared/asterisk (CI clones beside `shared/`); from a
    git worktree, also beside the main checkout the worktree belongs to."""
    env = os.environ.get("BRIDGE_ASTERISK_DIR")
    if env:
        return Path(env)
    candidates = [REPO.parent / "shared" / "asterisk"]
    common = REPO / ".git"
    if common.is_file():   # a worktree: `.git` names <main>/.git/worktrees/<name>
        gitdir = Path(common.read_text().split(":", 1)[1].strip())
        candidates.append(gitdir.parents[2].parent / "shared" / "asterisk")
    return next((c for c in candidates if c.is_dir()), candidates[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pbx:
    """One Asterisk instance in a short temp dir (the control socket path must stay < 108 bytes)."""

    def __init__(self, home: Path | None = None, *, timestamp_events: bool = False) -> None:
        self.home = home or asterisk_dir()
        self.timestamp_events = timestamp_events   # manager.conf timestampevents (docs/ha.md asks for it)
        self.script = self.home / "run-asterisk.sh"
        self.dir = Path(tempfile.mkdtemp(prefix="abl-", dir="/tmp"))
        self.ami_port = free_port()
        self.http_port = free_port()

    def _env(self) -> dict:
        return {**os.environ, "AMI_PORT": str(self.ami_port), "HTTP_PORT": str(self.http_port)}

    def start(self) -> "Pbx":
        etc = self.dir / "etc"
        shutil.copytree(ETC, etc)
        _set(etc / "manager.conf", r"^port = \d+", f"port = {self.ami_port}")
        _set(etc / "http.conf", r"^bindport = \d+", f"bindport = {self.http_port}")
        if self.timestamp_events:
            _set(etc / "manager.conf", r"^\[general\]$", "[general]\ntimestampevents = yes")
        # Asterisk looks a prompt up as <language>/<name> when the language is a path.
        prompts = self.dir / "prompts"
        prompts.mkdir()
        (prompts / "pbx-transfer.sln").write_bytes(bytes(1600))      # 0.1 s of silence, 8 kHz slin
        _set(etc / "extensions.conf", r"^PROMPTS = .*$", f"PROMPTS = {prompts}")
        done = subprocess.run([str(self.script), "start", str(self.dir)], env=self._env(),
                              capture_output=True, text=True, timeout=90)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"run-asterisk.sh start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return self

    def cli(self, command: str) -> str:
        """An Asterisk CLI command through the instance's control socket (`asterisk -rx`)."""
        ast_home = Path(os.environ.get("ASTERISK_HOME") or
                        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asterisk-22.10.1")
        done = subprocess.run([str(ast_home / "sbin" / "asterisk"), "-C", str(self.dir / "asterisk.conf"),
                               "-rx", command], capture_output=True, text=True, timeout=20,
                              env={**os.environ, "LD_LIBRARY_PATH": str(ast_home / "lib")})
        return done.stdout

    def log_tail(self, lines: int = 60) -> str:
        path = self.dir / "log" / "messages"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop", str(self.dir)], env=self._env(),
                       capture_output=True, text=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def _set(path: Path, pattern: str, line: str) -> None:
    data = path.read_bytes().decode("latin-1")     # extensions.conf holds cp1251 bytes on purpose
    new, n = re.subn(pattern, line, data, count=1, flags=re.M)
    if n != 1:
        raise RuntimeError(f"{path.name}: no line matching {pattern!r}")
    path.write_bytes(new.encode("latin-1"))
