"""Which client speaks to an `[[ami]]` server: AMI over TCP/TLS or AJAM over HTTP(S), one interface."""

from __future__ import annotations

from typing import Sequence, Union

from bridge.ami.ajam import AjamClient
from bridge.ami.client import AmiClient
from bridge.config import AmiConfig

ManagerClient = Union[AmiClient, AjamClient]


def client_from_config(cfg: AmiConfig, filters: Sequence[str] = ()) -> ManagerClient:
    if cfg.transport == "http":
        return AjamClient.from_config(cfg, filters=filters)
    return AmiClient.from_config(cfg, filters=filters)


def describe(cfg: AmiConfig) -> str:
    """Where the server is, for logs and check lines (never a secret: the url's userinfo is cut)."""
    if cfg.transport == "http":
        from urllib.parse import urlsplit

        parts = urlsplit(cfg.url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return f"{parts.scheme}://{netloc}{parts.path}"
    return f"{cfg.host}:{cfg.port}"
