"""This node's identity and the database engine its leases and fenced commits use."""

from __future__ import annotations

import os
import socket

from bridge.config import HaConfig


def node_id(cfg: HaConfig) -> str:
    """`[ha] node_id`, else host name + pid: two processes from one config file still differ."""
    return cfg.node_id or f"{socket.gethostname()}:{os.getpid()}"


def session_options(cfg: HaConfig) -> dict:
    """libpq options for the engines that hold lease rows or fenced inserts: a process frozen
    (SIGSTOP, swap storm) inside a transaction loses it after one lease, so its row locks never
    hold a takeover back, and its uncommitted rows never block the new leader's insert."""
    ms = max(1, int(cfg.lease_s * 1000))
    return {"options": f"-c idle_in_transaction_session_timeout={ms}"}
