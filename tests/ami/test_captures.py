"""Every real capture in tests/fixtures/ami parses to the counts its README states, losing no character."""

from __future__ import annotations

import collections
import re

import pytest

from bridge.ami.protocol import AmiParser, Banner, Message
from tests.conftest import AMI_FIXTURES, FIXTURES

# | file | banner | messages | events | responses | lines with non-ASCII bytes |
_ROW = re.compile(r"^\| (\S+\.ami) \| (\S+) \| (\d+) \| (\d+) \| ([^|]+) \| (\d+) \|$", re.M)
ROWS = {m[1]: m for m in _ROW.finditer((FIXTURES / "README.md").read_text(encoding="utf-8"))}


def _path(name: str):
    version = re.search(r"-(\d+\.\d+\.\d+)\.ami$", name)[1]
    return AMI_FIXTURES / f"asterisk-{version}" / name


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1251", errors="backslashreplace")


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
    # (UTF-8, else cp1251), banner and empty lines aside.
    raw_lines = [line.rstrip(b"\r") for line in data.split(b"\n")][1 if banners else 0:]
    file_lines = [_decode_line(line) for line in raw_lines if line]
    parsed_lines = [line for m in messages for line in m.text.split("\r\n") if line]
    assert parsed_lines == file_lines
    non_ascii = [line for line in parsed_lines if not line.isascii()]
    assert len(non_ascii) == int(row[6])
