"""Every real capture in tests/fixtures/ami parses to the counts its README states, losing no character."""

from __future__ import annotations

import collections
import re

import pytest

from bridge.ami.message import Banner, Message
from bridge.ami.protocol import AmiParser
from tests.conftest import AMI_FIXTURES, FIXTURES

# | file | banner | messages | events | responses | lines with non-ASCII bytes |
_ROW = re.compile(r"^\| (\S+\.ami) \| (\S+) \| (\d+) \| (\d+) \| ([^|]+) \| (\d+) \|$", re.M)
ROWS = {m[1]: m for m in _ROW.finditer((FIXTURES / "README.md").read_text(encoding="utf-8"))}


def _path(name: str):
    version = re.search(r"-(\d+\.\d+\.\d+)\.ami$", name)[1]
    return AMI_FIXTURES / f"asterisk-{version}" / name


def lines_as_a_user_reads_them(path) -> list[tuple[bytes, str]]:
    """The oracle, independent of bridge.ami.protocol: read the file line by line with the stdlib
    and decode each line on its own, UTF-8 first, else cp1251 (strict: an undefined byte fails the
    test instead of being papered over). Returns (raw line, text) pairs, empty lines left out."""
    pairs = []
    with open(path, "rb") as fh:
        for raw in fh:
            raw = raw.rstrip(b"\r\n")
            if not raw:
                continue
            try:
                pairs.append((raw, str(raw, "utf-8")))
            except UnicodeDecodeError:
                pairs.append((raw, str(raw, "cp1251")))
    return pairs


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_readme_table_lists_every_capture_on_disk():
    on_disk = {p.name for p in AMI_FIXTURES.glob("asterisk-*/*.ami")}
    assert on_disk == set(ROWS) and len(ROWS) == 46


@pytest.mark.parametrize("name", sorted(ROWS))
def test_counts_match_readme_and_no_character_lost_when_capture_parsed(name):
    row = ROWS[name]
    data = _path(name).read_bytes()
    parser = AmiParser()
    parser.feed(data)
    out = list(parser)
    banners = [m for m in out if isinstance(m, Banner)]
    messages = [m for m in out if isinstance(m, Message)]
    assert (banners[0].version_text if banners else "-") == row[2]
    assert len(messages) == int(row[3])
    assert sum(m.is_event for m in messages) == int(row[4])
    responses = collections.Counter(m.response for m in messages if m.is_response)
    expected = {k: int(v) for k, v in (part.split() for part in row[5].split(","))}
    assert dict(responses) == expected
    assert parser.dropped == 0 and parser.buffered == 0

    # No character lost: the messages' lines, in order, are the file's lines decoded one by one
    # (UTF-8, else cp1251), banner aside; and each encodes back to exactly the bytes on disk.
    pairs = lines_as_a_user_reads_them(_path(name))[1 if banners else 0:]
    parsed_lines = [line for m in messages for line in m.text.split("\r\n") if line]
    assert parsed_lines == [text for _, text in pairs]
    for raw, text in pairs:
        assert text.encode("utf-8" if _utf8(raw) else "cp1251") == raw
    non_ascii = [line for line in parsed_lines if not line.isascii()]
    assert len(non_ascii) == int(row[6])
