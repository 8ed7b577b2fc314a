"""LinkDown / LinkUp against the real Asterisk 22 in ../shared/asterisk: the bridge's AMI session
kicked (`manager kick session`), then Asterisk killed (SIGKILL) with a call up and started again. The
Asterisk version in LinkUp comes from the PBX itself (CoreSettings)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bridge.ami.client import AmiClient
from bridge.ami.actions import Action
from bridge.config import AmiConfig, Config, DatabaseConfig, SubscriberConfig
from bridge.testing.fake_erp import FakeErp
from tests.events.link_support import iso_ts, pushed, wait_links, wait_until

pytestmark = pytest.mark.asterisk   # left out of `make test-fast`, like tests/asterisk/

ROOT = Path(__file__).resolve().parents[2]
ETC = Path(__file__).parent / "link-etc"
BRIDGE_SECRET, ADMIN_SECRET = "bridge-live-pw", "admin-live-pw"
MANAGER_CONF = """[general]
enabled = yes
bindaddr = 127.0.0.1
port = {port}

; what the README asks of the bridge's user
[bridge]
secret = {bridge}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = call,agent
write = call,originate,reporting

; the test's own hands: Originate and CLI commands
[admin]
secret = {admin}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = system
write = all
"""


def asterisk_dir() -> Path | None:
    """BRIDGE_ASTERISK_DIR, else ../shared/asterisk beside the clone (CI), else two levels up
    (a git worktree under a folder of worktrees)."""
    candidates = [os.environ.get("BRIDGE_ASTERISK_DIR")] if os.environ.get("BRIDGE_ASTERISK_DIR") else []
    candidates += [ROOT.parent / "shared" / "asterisk", ROOT.parent.parent / "shared" / "asterisk"]
    return next((Path(c) for c in candidates if (Path(c) / "run-asterisk.sh").is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pbx:
    """One private Asterisk: this test's etc/, a free AMI port, HTTP off."""

    def __init__(self, home: Path) -> None:
        self.script = home / "run-asterisk.sh"
        self.dir = Path(tempfile.mkdtemp(prefix="ab-link-", dir="/tmp"))   # ctl socket path < 108 bytes
        self.port = free_port()
        shutil.copytree(ETC, self.dir / "etc")
        (self.dir / "etc" / "manager.conf").write_text(
            MANAGER_CONF.format(port=self.port, bridge=BRIDGE_SECRET, admin=ADMIN_SECRET))

    def _run(self, command: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, AMI_PORT=str(self.port), HTTP_PORT="0")
        return subprocess.run([str(self.script), command, str(self.dir)], env=env, capture_output=True,
                              text=True, timeout=60)

    def start(self) -> None:
        result = self._run("start")
        assert result.returncode == 0, result.stdout + result.stderr

    def stop(self) -> None:
        self._run("stop")

    def crash(self) -> None:
        """SIGKILL: Asterisk vanishes without hanging up its calls or saying goodbye on AMI."""
        pid = int((self.dir / "run" / "asterisk.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not Path(f"/proc/{pid}").exists() or
                          "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2:3], 10)


@pytest.fixture
def pbx():
    home = asterisk_dir()
    if home is None:
        pytest.skip("no ../shared/asterisk (set BRIDGE_ASTERISK_DIR): live LinkDown/LinkUp test skipped")
    pbx = Pbx(home)
    try:
        pbx.start()
        yield pbx
    finally:
        pbx.stop()
        shutil.rmtree(pbx.dir, ignore_errors=True)


def _admin(pbx: Pbx) -> AmiClient:
    client = AmiClient(AmiConfig(name="admin", port=pbx.port, username="admin", secret=ADMIN_SECRET,
                                 reconnect_base_s=0.1, reconnect_cap_s=0.5))
    client.start()
    assert client.wait_connected(10)
    return client


def _command(admin: AmiClient, command: str) -> list[str]:
    result = admin.send_action(Action.build("Command", Command=command)).result(10)
    return [v for k, v in result.response.headers if k == "Output"]


def test_erp_hears_link_down_and_up_with_version_from_real_asterisk_when_kicked_and_restarted(pbx, tmp_path):
    from bridge.runtime import Runtime

    with FakeErp(path="/erp") as sink:
        config = Config(
            database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'outbox.db'}", batch_max_delay_s=0.005),
            ami=(AmiConfig(name="pbx22", port=pbx.port, username="bridge", secret=BRIDGE_SECRET,
                           reconnect_base_s=0.1, reconnect_cap_s=0.5, connect_timeout_s=3.0),),
            subscribers=(SubscriberConfig("erp", sink.url, retry_base_s=0.1),))
        runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=5.0)
        admin = _admin(pbx)
        try:
            runtime.start()
            first, = wait_links(sink, "/erp", 1)
            assert first.headers["AsteriskVersion"] == "22.10.1"          # CoreSettings, not the banner
            assert first.headers["AMIVersion"].startswith("11.0.")       # Asterisk 22 speaks AMI 11.0.x
            assert first.headers == {"Event": "LinkUp", "Server": "pbx22", "AsteriskVersion": "22.10.1",
                                     "AMIVersion": first["AMIVersion"], "LostCalls": "0"}
            print("live LinkUp (first):", first.headers)

            # 1. Asterisk drops the bridge's session; the bridge logs in again at once.
            rows = [line.split() for line in _command(admin, "manager show connected")]
            fd = next(r[4] for r in rows if r and r[0] == "bridge")      # Username IP Start Elapsed FileDes
            kicked_at = time.time()
            assert any("Kicking" in line for line in _command(admin, f"manager kick session {fd}"))
            down, up = wait_links(sink, "/erp", 3)[1:]
            assert (down.name, down["Server"], down["Reason"]) == ("LinkDown", "pbx22", "connection closed by peer")
            assert kicked_at - 0.5 <= iso_ts(down["Since"]) <= time.time()
            assert (up.name, up["AsteriskVersion"], up["LostCalls"], up["DownSince"]) == (
                "LinkUp", "22.10.1", "0", down["Since"])
            assert 0.0 <= float(up["DownSeconds"]) < 5.0
            print("live LinkDown (kick):", down.headers, "\nlive LinkUp (after kick):", up.headers)

            # 2. Asterisk crashes with a call ringing: nobody tells the bridge how that call ended.
            admin.send_action(Action.build("Originate", Channel="Local/201@phones", Application="Wait",
                                           Data="60", Async="true")).result(10)
            assert sink.wait_for(lambda s: any(p.name == "CallRinging" for p in pushed(s, "/erp")), 15)
            call_id = next(p["CallId"] for p in pushed(sink, "/erp") if p.name == "CallRinging")
            stopped_at = time.time()
            pbx.crash()
            down = wait_links(sink, "/erp", 4)[3]
            assert down.name == "LinkDown" and down["Reason"] and stopped_at - 0.5 <= iso_ts(down["Since"])
            time.sleep(1.0)
            pbx.start()
            up = wait_links(sink, "/erp", 5, timeout_s=20)[4]
            assert (up.name, up["AsteriskVersion"], up["LostCalls"], up["DownSince"]) == (
                "LinkUp", "22.10.1", "1", down["Since"])
            assert 1.0 <= float(up["DownSeconds"]) <= time.time() - stopped_at + 0.05  # DownSeconds is rounded to 0.1 s
            print("live LinkDown (crash):", down.headers, "\nlive LinkUp (restart):", up.headers)
            assert wait_until(lambda: any(p.name == "CallEnded" and p["CallId"] == call_id
                                          and p["Reason"] == "lost-during-disconnect"
                                          for p in pushed(sink, "/erp")))
        finally:
            admin.stop()
            runtime.stop()
        names = [p.name for p in pushed(sink, "/erp") if p.name.startswith("Link")]
        assert names == ["LinkUp", "LinkDown", "LinkUp", "LinkDown", "LinkUp", "LinkDown"]
        assert pushed(sink, "/erp")[-1]["Reason"] == "bridge stopped"
