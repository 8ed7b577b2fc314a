"""Tests for bridge/events/literals.py: the prefilter must never hide a match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from bridge.events.literals import LiteralScanner, is_plain, required_literal

ROM = "Dial.{1,}?Begin.{1,}?902|Bridge.{1,}?902|Hangup.{1,}?902"


@pytest.mark.parametrize("pattern,literal", [
    (ROM, "902"), ("Exten: 902", "Exten: 902"), ("SIP/90[0-9]", "SIP/90"),
    ("Hangup.*(202|203)", "20"), ("(?i)dial", None), (".*", None), ("[0-9]+", None),
    ("(Dial)?902?", "90"), ("x{0,3}y", "y"), ("(?:abc)+", "abc"),
])
def test_required_literal_is_in_every_match_when_pattern_has_one(pattern, literal):
    assert required_literal(pattern) == literal


def test_plain_means_no_metacharacter():
    assert is_plain("902") and is_plain("Exten: 902") and not is_plain("9.2") and not is_plain("a|b")


def test_scanner_reports_overlapping_and_prefix_literals_when_present():
    scanner = LiteralScanner(["902", "90", "0290", "Dial", "DialBegin", "abc"])
    assert scanner.scan("Event: DialBegin\r\nX: 90290") == {"902", "90", "0290", "Dial", "DialBegin"}
    assert scanner.scan("nothing 91 here") == frozenset()
    assert LiteralScanner([]).scan("902") == frozenset()


ALPHABET = "09Dial2Bx:\r\n .|"
TEXTS = st.text(alphabet=ALPHABET, max_size=60)
PIECES = st.sampled_from(["Dial", "902", "90", "2", "Bx", ".{1,}?", ".*", "[0-9]", "(", ")", "|", "?",
                          "+", "a", ": ", "\\d", "(?:x|90)"])


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, min_size=1, max_size=6), TEXTS)
def test_text_without_the_literal_never_matches(pieces, text):
    pattern = "".join(pieces)
    try:
        regex = re.compile(pattern, re.DOTALL)
    except re.error:
        return
    literal = required_literal(pattern)
    if literal is not None and regex.search(text):
        assert literal in text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0129Dab", min_size=1, max_size=5), min_size=1, max_size=12), TEXTS)
def test_scanner_finds_exactly_the_literals_in_the_text(literals, text):
    scanner = LiteralScanner(literals)
    assert set(scanner.scan(text)) == {lit for lit in literals if lit in text}
