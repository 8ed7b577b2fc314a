"""Which client speaks to an `[[ami]]` server: AMI over TCP/TLS, AJAM over HTTP(S) (both from
bridge.ami.transports) or ARI (WebSocket + REST); one interface above all three."""

from __future__ import annotations

from typing import Sequence, Union

from bridge.ami import transports as ami_transports
from bridge.ari.client import AriClient
from bridge.config import AmiConfig

ManagerClient = Union[ami_transports.ManagerClient, AriClient]


def client_from_config(cfg: AmiConfig, filters: Sequence[str] = ()) -> ManagerClient:
    if cfg.transport == "ari":
        return AriClient.from_config(cfg, filters=filters)
    return ami_transports.client_from_config(cfg, filters=filters)


def describe(cfg: AmiConfig) -> str:
    """Where the server is, for logs and check lines (never a secret: the url's userinfo is cut)."""
    if cfg.transport == "ari":
        from bridge.ari.rest import endpoint_of

        return f"ARI {endpoint_of(cfg.url)}"
    return ami_transports.describe(cfg)
