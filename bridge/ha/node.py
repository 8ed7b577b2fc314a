"""This node's identity and the database engine its leases and fenced commits use."""

from __future__ import annotations

import os
import socket

from bridge.config import HaConfig


def node_id(cfg: HaConfig) -> str:
    """`[ha] node_id`, else host name + pid: two processes from one config file still differ."""
    return cfg.node_id or f"{socket.gethostname()}:{os.getpid()}"


APPLICATION_PREFIX = "asterisk-bridge ha "


def application_name(node: str) -> str:
    """What this node's HA sessions are called in pg_stat_activity (PostgreSQL keeps 63 bytes)."""
    return (APPLICATION_PREFIX + node).encode()[:63].decode("utf-8", "ignore")


def session_options(cfg: HaConfig, node: str) -> dict:
    """libpq options for the engines that hold lease rows or fenced inserts: a process frozen
    (SIGSTOP, swap storm) inside a transaction loses it after one lease, so its row locks never
    hold a takeover back, and its uncommitted rows never block the new leader's insert. The
    server's own timeout misses a session frozen in the middle of a pipelined executemany (no
    Sync yet), so the sessions are named and the other nodes end them too (lease.reap)."""
    ms = max(1, int(cfg.lease_s * 1000))
    return {"options": f"-c idle_in_transaction_session_timeout={ms}",
            "application_name": application_name(node)}
