"""SQLite is single-node: a second process on the same SQLite outbox is refused (exit 2, naming the first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.errors import OutboxInUse
from bridge.ha import SoloLock
from bridge.outbox.db import upgrade

ROOT = Path(__file__).resolve().parents[2]


def test_second_lock_on_the_same_database_is_refused_naming_the_holder(tmp_path):
    path = str(tmp_path / "outbox.db")
    first = SoloLock(path).acquire()
    try:
        with pytest.raises(OutboxInUse, match=f"in use by asterisk-bridge pid {os.getpid()} on "):
            SoloLock(path).acquire()
    finally:
        first.release()
    SoloLock(path).acquire().release()      # released: the next process may run


def test_bridge_run_exits_2_when_another_process_holds_the_sqlite_outbox(tmp_path):
    db = tmp_path / "outbox.db"
    upgrade(f"sqlite:///{db}")
    config = tmp_path / "bridge.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n[[ami]]\nname = "pbx1"\nport = 1\n'
                      'username = "bridge"\nsecret = "x"\n', encoding="utf-8")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from bridge.ha import SoloLock; "
                               f"SoloLock({str(db)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        done = subprocess.run([sys.executable, "-m", "bridge", "run", "-c", str(config)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    assert f"in use by asterisk-bridge pid {holder.pid} on " in done.stderr
    assert "SQLite is single-node" in done.stderr
