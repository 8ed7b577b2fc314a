"""Which client speaks to an `[[ami]]` server: AMI over TCP/TLS or ARI (WebSocket + REST), one interface."""

from __future__ import annotations

from typing import Sequence, Union

from bridge.ami.client import AmiClient
from bridge.ari.client import AriClient
from bridge.config import AmiConfig

ManagerClient = Union[AmiClient, AriClient]


def client_from_config(cfg: AmiConfig, filters: Sequence[str] = ()) -> ManagerClient:
    if cfg.transport == "ari":
        return AriClient.from_config(cfg, filters=filters)
    return AmiClient.from_config(cfg, filters=filters)


def describe(cfg: AmiConfig) -> str:
    """Where the server is, for logs and check lines (never a secret: the url's userinfo is cut)."""
    if cfg.transport == "ari":
        from bridge.ari.rest import endpoint_of

        return f"ARI {endpoint_of(cfg.url)}"
    return f"{cfg.host}:{cfg.port}"
