"""Reading what a FakeErp received, for the LinkDown/LinkUp tests (simulator and live)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from bridge import ns

E = f"{{{ns.EVENTS}}}"


@dataclass(frozen=True)
class Pushed:
    """One PushEvent body as the ERP parses it."""

    path: str
    id: str
    name: str
    kind: str
    server: str
    order_key: str
    headers: dict[str, str]
    has_call: bool

    def __getitem__(self, key: str) -> str:
        return self.headers[key]


def parse(receipt) -> Pushed:
    push = etree.fromstring(receipt.body).find(f".//{E}PushEvent")
    headers = {h.get("name"): h.text or "" for h in push.iterfind(f"{E}headers/{E}header")}
    return Pushed(receipt.path, push.findtext(f"{E}id"), push.findtext(f"{E}name"), push.findtext(f"{E}kind"),
                  push.findtext(f"{E}server"), push.findtext(f"{E}orderKey"), headers,
                  push.find(f"{E}call") is not None)


def pushed(sink, path: str | None = None) -> list[Pushed]:
    """Events the sink acknowledged, first receipt of each id, in arrival order."""
    seen, out = set(), []
    for receipt in sink.delivered():
        if receipt.id in seen or (path is not None and receipt.path != path):
            continue
        seen.add(receipt.id)
        out.append(parse(receipt))
    return out


def links(sink, path: str) -> list[Pushed]:
    return [p for p in pushed(sink, path) if p.name in ("LinkDown", "LinkUp")]


def wait_links(sink, path: str, count: int, timeout_s: float = 15.0) -> list[Pushed]:
    assert sink.wait_for(lambda s: len(links(s, path)) >= count, timeout_s), \
        [(p.name, p.headers) for p in links(sink, path)]
    return links(sink, path)


def iso_ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def wait_until(predicate, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
