"""The README's install steps, run for real: wheel → venv in a scratch prefix → config → db upgrade
→ check → run → SIGTERM, as a user without root rights; the systemd unit verified by systemd.

As root (CI), the steps run as the system user `asterisk-bridge-test` (created if absent) through
`setpriv`, with an interpreter that user can execute: the running one when readable, otherwise
the system's python3 (pyenv lives under /root, which is 0700). As another user, as that user.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
TEST_USER = "asterisk-bridge-test"
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "bridge", "wsdl")
STEP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The wheel built once per session from a copy of the sources (no build/ in the tree)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=STEP_TIMEOUT_S)
    (found,) = out.glob("asterisk_bridge-*.whl")
    return found


class Installer:
    """Runs commands as the unprivileged user, with a clean environment (no secrets unless given)."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        # pip's cache outlives the test (a fresh venv downloads ~20 MB of wheels otherwise).
        self.pip_cache = Path(tempfile.gettempdir()) / f"{TEST_USER}-pip-cache"
        self.pip_cache.mkdir(mode=0o700, exist_ok=True)
        self.wrap: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(TEST_USER)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                TEST_USER], check=True, capture_output=True)
            user = pwd.getpwnam(TEST_USER)
            shutil.chown(prefix, user.pw_uid, user.pw_gid)
            if self.pip_cache.stat().st_uid != user.pw_uid:
                subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(self.pip_cache)], check=True)
            self.wrap = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]
        self.python = self._interpreter()

    def env(self, extra: dict | None = None) -> dict:
        keep = ("PATH", "LANG", "LC_ALL", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
                "PIP_CERT", "PIP_CONSTRAINT", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(HOME=str(self.prefix), PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_CACHE_DIR=str(self.pip_cache), **(extra or {}))
        return env

    def _interpreter(self) -> str:
        for candidate in (os.path.realpath(sys._base_executable), "/usr/bin/python3"):
            # Its own prefix must be readable: pyenv's python under /root (0700) still starts for
            # another user, but then finds the system's stdlib and cannot build a working venv.
            probe = subprocess.run([*self.wrap, candidate, "-c", "import sys, venv; "
                                    "assert sys.version_info >= (3, 11); print(sys.base_prefix)"],
                                   capture_output=True, text=True, env=self.env())
            prefix = probe.stdout.strip()
            if probe.returncode == 0 and prefix and candidate.startswith(prefix.rstrip("/") + "/"):
                return candidate
        pytest.fail(f"no Python ≥ 3.11 that {TEST_USER} can execute (tried {sys._base_executable}, "
                    "/usr/bin/python3)")

    def run(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.wrap, *args], capture_output=True, text=True, env=self.env(env),
                                cwd=self.prefix, timeout=STEP_TIMEOUT_S)
        if check:
            assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result

    def popen(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([*self.wrap, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env(env), cwd=self.prefix)


def edit_example(prefix: Path, ami_port: int, sink_url: str, soap_port: int, metrics_port: int) -> str:
    """What an admin does to the copied example: the addresses of this site; nothing else."""
    text = (ROOT / "bridge.example.toml").read_text(encoding="utf-8")
    replacements = [
        (r'url = "sqlite:////var/lib/asterisk-bridge/outbox.db"',
         f'url = "sqlite:///{prefix}/var/lib/asterisk-bridge/outbox.db"'),
        (r"(?m)^port = 5038 ", f"port = {ami_port} "),
        (r'url = "http://erp.example/base/ws/asterisk"', f'url = "{sink_url}"'),
        (r'listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{soap_port}"'),
        (r'listen = "127.0.0.1:9108"', f'listen = "127.0.0.1:{metrics_port}"'),
    ]
    for pattern, value in replacements:
        text, n = re.subn(pattern, value, text, count=1)
        assert n == 1, f"bridge.example.toml no longer has {pattern!r}"
    return text


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except OSError:
        return 0


@pytest.fixture
def scratch():
    """Under /tmp itself: pytest's tmp_path sits in a 0700 directory the other user cannot enter."""
    path = Path(tempfile.mkdtemp(prefix="ab-install-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# About 40 s on a quiet machine, mostly pip resolving against PyPI (from its cache); the margin is
# for a machine busy with other work.
@pytest.mark.timeout(400)
def test_readme_install_steps_work_as_an_unprivileged_user(scratch, wheel):
    from bridge.testing.simulator import AmiSimulator
    from bridge.testing.fake_erp import FakeErp

    prefix = scratch / "prefix"
    prefix.mkdir()
    installer = Installer(prefix)
    shutil.copy2(wheel, prefix / wheel.name)
    venv = prefix / "opt" / "asterisk-bridge"
    installer.run(installer.python, "-m", "venv", str(venv))
    installer.run(str(venv / "bin" / "pip"), "install", "-q", str(prefix / wheel.name))
    etc, state = prefix / "etc" / "asterisk-bridge", prefix / "var" / "lib" / "asterisk-bridge"
    installer.run("install", "-d", "-m", "0750", str(etc))
    installer.run("install", "-d", "-m", "0700", str(state))
    cli = str(venv / "bin" / "asterisk-bridge")
    secrets = {"AMI_SECRET": "install-ami-pw", "SOAP_PASSWORD": "install-soap-pw"}
    soap_port, metrics_port = free_port(), free_port()
    with AmiSimulator("asterisk20", users={"bridge": secrets["AMI_SECRET"]}, time_scale=0.02) as sim, \
            FakeErp() as sink:
        config_text = edit_example(prefix, sim.port, sink.url, soap_port, metrics_port)
        edited = scratch / "bridge.toml"
        edited.write_text(config_text, encoding="utf-8")
        edited.chmod(0o644)
        config = str(etc / "bridge.toml")
        installer.run("install", "-m", "0640", str(edited), config)

        check_before = installer.run(cli, "config", "check", "-c", config, env=secrets)
        assert f"outbox sqlite:///{state}/outbox.db" in check_before.stdout
        installer.run(cli, "db", "upgrade", "-c", config)           # no secret needed
        check = installer.run(cli, "check", "-c", config, env=secrets)
        assert [line[:4] for line in check.stdout.splitlines()] == ["OK  "] * 3, check.stdout
        wsdl = installer.run(cli, "wsdl", "--events")
        assert "<xs:element name=\"PushEvent\" type=\"tns:Event\"/>" in wsdl.stdout

        proc = installer.popen(cli, "run", "-c", config, env=secrets)
        try:
            deadline = time.monotonic() + 30
            while healthz(metrics_port) != 200 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            assert healthz(metrics_port) == 200
            sim.run_scenario("answered", caller="202", callee="902", wait=True)
            assert sink.wait_for(lambda s: any(b"CallEnded" in r.body for r in s.delivered()), 20)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "install-ami-pw" not in err and "install-soap-pw" not in err
    stats = json.loads(installer.run(cli, "outbox", "stats", "--json", "-c", config).stdout)
    assert stats[0]["subscriber"] == "erp" and stats[0]["pending"] == 0 and stats[0]["delivered"] >= 3
    owner = os.stat(state / "outbox.db").st_uid
    assert owner == (pwd.getpwnam(TEST_USER).pw_uid if os.geteuid() == 0 else os.geteuid())
