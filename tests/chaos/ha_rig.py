"""The HA chaos rig: one AMI simulator, one PostgreSQL outbox, N bridge processes, one FakeErp.

Every node runs the same config file; only its environment differs (the metrics port, and
PGAPPNAME, which names its database connections for the commit log in ha_audit). The rig finds
the leader by asking the commit log who committed last (the flood never stops, so the leader
commits every few milliseconds), kills / pauses / stops it, and records each handover.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import requests

from bridge.testing.helpers import wait_until
from bridge.ha.node import APPLICATION_PREFIX
from tests.chaos.ha_audit import CommitLog, Failover, install_commit_log, measure
from tests.chaos.procs import BridgeProcess, write_config
from tests.chaos.rig import Rig, logged_in_after, newest_session

NODE_CONFIG_EXTRA = """
[metrics]
listen = "${NODE_METRICS}"
"""
# A takeover waits for the old lease to run out; this bounds the wait generously (a failed
# takeover fails the test instead of hanging it).
TAKEOVER_TIMEOUT_S = 60.0
START_TIMEOUT_S = 30.0
_LEADER = re.compile(r'^bridge_ami_leader\{[^}]*server="(?P<server>[^"]+)"[^}]*\}\s+(?P<value>\S+)', re.M)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Node:
    """One bridge process of the cluster; restarts keep its name (PGAPPNAME), port and log file."""

    def __init__(self, name: str, config: Path, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.metrics_port = free_port()
        self.proc = BridgeProcess(config, log_dir / f"{name}.log", env={
            **(env or {}), "PGAPPNAME": name, "NODE_METRICS": f"127.0.0.1:{self.metrics_port}"})

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text

    def leads(self, server: str = "pbx1") -> bool | None:
        """What the node's /metrics says (bridge_ami_leader{server}); None if it does not answer."""
        try:
            text = self.metrics()
        except requests.RequestException:
            return None
        return any(m["server"] == server and float(m["value"]) == 1.0 for m in _LEADER.finditer(text))

    def __repr__(self) -> str:
        return f"Node({self.name}, pid {self.proc.pid})"


class NodeSet:
    """`size` bridge processes of one config file, their commit log, and the faults on the leader.

    `session_mark()` / `logged_in_since(mark)` ask the PBX (simulator or Asterisk) whether a new
    AMI session of the bridge user has logged in since the mark: how a (re)started node is known
    to listen before the next fault."""

    def __init__(self, config: Path, log_dir: Path, db_url: str, size: int, *,
                 session_mark: Callable[[], object], logged_in_since: Callable[[object], bool],
                 env: dict[str, str] | None = None) -> None:
        self.nodes = [Node(f"node-{i + 1}", config, log_dir, env) for i in range(size)]
        self.pids: dict[str, str] = {}          # "pid" of every process a node ran → the node's name
        self.log = CommitLog(db_url, self.node_of)
        self.session_mark, self.logged_in_since = session_mark, logged_in_since
        self.failovers: list[Failover] = []

    def start(self) -> "NodeSet":
        for node in self.nodes:
            self.start_node(node)
        return self

    def stop(self) -> list[int]:
        codes = [node.proc.terminate() for node in self.nodes]
        self.log.close()
        return codes

    def start_node(self, node: Node) -> None:
        """Start (or restart) a node and wait until its AMI session is logged in."""
        mark = self.session_mark()
        node.proc.start()
        self.pids[str(node.proc.pid)] = node.name
        assert wait_until(lambda: self.logged_in_since(mark) or not node.proc.running, START_TIMEOUT_S), \
            f"{node.name} never logged in to the PBX:\n{node.proc.log_tail()}"
        assert node.proc.running, f"{node.name} exited {node.proc.proc.returncode}:\n{node.proc.log_tail()}"

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def node_of(self, application_name: str) -> str:
        """The node a logged session belonged to: `asterisk-bridge ha <host>:<pid>` (the bridge's
        HA sessions) by its pid, anything else is the node's PGAPPNAME."""
        if application_name.startswith(APPLICATION_PREFIX):
            pid = application_name.rsplit(":", 1)[-1]
            return self.pids.get(pid, application_name)
        return application_name

    # --- who leads ------------------------------------------------------------------------------

    def leader(self) -> Node:
        """The node that commits now: the author of the first commit logged from this moment on."""
        since = utcnow()
        found: list = []

        def committed() -> bool:
            found[:] = self.log.since(since)[:1]
            return bool(found)
        assert wait_until(committed, TAKEOVER_TIMEOUT_S, 0.05), "no node committed anything: " + self.logs()
        return self.node(found[0].node)

    def wait_takeover(self, old: Node, since: datetime) -> str:
        """Wait until a node other than `old` commits after `since`; its name."""
        found: list = []

        def taken() -> bool:
            found[:] = [c for c in self.log.since(since) if c.node != old.name][:1]
            return bool(found)
        assert wait_until(taken, TAKEOVER_TIMEOUT_S, 0.05), \
            f"no node took over from {old.name}; connections:\n{self.log.activity()}\n{self.logs()}"
        return found[0].node

    def metrics_leaders(self) -> list[str]:
        """The nodes whose /metrics say they lead pbx1."""
        return [n.name for n in self.nodes if n.proc.running and n.leads()]

    # --- faults ---------------------------------------------------------------------------------

    def sigkill_leader(self) -> Failover:
        """SIGKILL the leader, wait for the takeover, restart the killed node as a new standby."""
        old = self.leader()
        since = utcnow()
        old.proc.kill()
        self.wait_takeover(old, since)
        failover = self._record("SIGKILL", old)
        self.start_node(old)
        return failover

    def sigterm_leader(self) -> tuple[Failover, int]:
        """SIGTERM the leader (graceful handover), wait for the takeover and the exit, restart it."""
        old = self.leader()
        since = utcnow()
        code = old.proc.terminate()
        self.wait_takeover(old, since)
        failover = self._record("SIGTERM", old)
        self.start_node(old)
        return failover, code

    def sigstop_leader(self, hold_after_takeover_s: float, settle_s: float) -> tuple[Failover, int, int]:
        """SIGSTOP the leader until another node has taken over (its lease ran out) and
        `hold_after_takeover_s` more, then SIGCONT it. Returns the failover and the rows the paused
        node committed from the moment before SIGCONT until `settle_s` after it (before, after)."""
        old = self.leader()
        since = utcnow()
        old.proc.pause()
        try:
            self.wait_takeover(old, since)
            failover = self._record("SIGSTOP", old)    # measured while the old leader cannot write
            time.sleep(hold_after_takeover_s)
            before = self.log.count_by(old.name)
        finally:
            old.proc.resume()
        time.sleep(settle_s)
        after = self.log.count_by(old.name)
        return failover, before, after

    def _record(self, kind: str, old: Node) -> Failover:
        failover = measure(Failover(kind, old.name), self.log.since())
        self.failovers.append(failover)
        return failover

    def logs(self) -> str:
        return "\n".join(f"--- {n.name} ---\n{n.proc.log_tail(1500)}" for n in self.nodes)


class Cluster(Rig):
    """The chaos rig (simulator, stream, sink) with `size` bridge processes on one PostgreSQL outbox."""

    def __init__(self, tmp_path: Path, db_url: str, *, size: int = 3, **kw) -> None:
        super().__init__(tmp_path, db_url, **kw)
        self.size = size
        self.cluster: NodeSet | None = None

    def start_bridge(self) -> None:
        from bridge.outbox.db import upgrade

        upgrade(self.db_url)
        install_commit_log(self.db_url)
        config = write_config(self.tmp_path / "bridge.toml", self.port, self.sink.url, self.db_url,
                              extra=NODE_CONFIG_EXTRA, level="INFO")
        self.cluster = NodeSet(config, self.tmp_path, self.db_url, self.size,
                             session_mark=lambda: newest_session(self.sim),
                             logged_in_since=lambda mark: logged_in_after(self.sim, mark)).start()

    def stop_bridge(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
