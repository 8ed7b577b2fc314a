"""Required-literal prefilter: one pass over an event's text decides which subscriber regexes
can possibly match, so 50 subscribers do not cost 50 regex searches per event.

Theory of operation
-------------------
Every subscriber regex is parsed (Python's own sre parser) to find a literal that any match
must contain: `Dial.{1,}?Begin.{1,}?902|Bridge.{1,}?902|Hangup.{1,}?902` needs "902" in every
branch, so an event whose text lacks "902" cannot match and its regex is never run. The
literals of all subscribers are compiled into one trie-shaped regex (nested alternations
share prefixes, and sre skips positions whose character cannot start a literal), which
`LiteralScanner.scan` runs over the text, reporting every literal present, overlapping ones
included. A regex without a usable literal (case-insensitive, or all classes and dots) is
simply searched each time: correctness never depends on the prefilter.
"""

from __future__ import annotations

import re

try:  # Python 3.11+ names the parser re._parser; older ones sre_parse
    from re import _constants as sre_constants, _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_LITERAL = sre_constants.LITERAL
_SUBPATTERN = sre_constants.SUBPATTERN
_BRANCH = sre_constants.BRANCH
_REPEATS = tuple(getattr(sre_constants, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(sre_constants, name))
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)
_IGNORECASE = sre_constants.SRE_FLAG_IGNORECASE

METACHARACTERS = frozenset(".^$*+?{}[]\\|()")


def is_plain(pattern: str) -> bool:
    """A filter with no regex metacharacter is a substring match (design.md, Filters)."""
    return not METACHARACTERS.intersection(pattern)


def _parse_case_sensitive(pattern: str, flags: int) -> list | None:
    """The parsed items of `pattern`, or None when it does not parse or ignores case (a literal
    found in it would then not be one every match contains byte for byte)."""
    try:
        parsed = sre_parse.parse(pattern, flags)
    except re.error:
        return None
    if parsed.state.flags & _IGNORECASE:
        return None
    return list(parsed)


def required_literal(pattern: str, flags: int = re.DOTALL) -> str | None:
    """A string every match of `pattern` contains (the most selective one found), or None."""
    if is_plain(pattern):
        return pattern or None
    items = _parse_case_sensitive(pattern, flags)
    if items is None:
        return None
    literals = _required(items)
    # Digits make the best prefilter: extension numbers are rare in AMI text, words are not.
    return max(literals, key=lambda s: (any(c.isdigit() for c in s), len(s)), default=None)


def branch_literals(pattern: str, flags: int = re.DOTALL) -> list[tuple[str, set[str]]] | None:
    """Per top-level alternative of `pattern` (`a|b|c`), its text and the literals every match of
    it contains; None when the pattern does not parse or ignores case."""
    items = _parse_case_sensitive(pattern, flags)
    if items is None:
        return None
    if len(items) == 1 and items[0][0] is _BRANCH:
        texts = _split_top_level(pattern)
        branches = items[0][1][1]
        if len(texts) != len(branches):
            texts = [pattern] * len(branches)
        return [(text, _required(list(b))) for text, b in zip(texts, branches)]
    return [(pattern, _required(items))]


def _split_top_level(pattern: str) -> list[str]:
    """`a|(b|c)|d` → ["a", "(b|c)", "d"]: for messages only."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _required(items: list) -> set[str]:
    """Literals required by a sequence of sre items (AND of its parts)."""
    found: set[str] = set()
    run: list[str] = []
    for op, av in items:
        if op is _LITERAL:
            run.append(chr(av))
            continue
        if run:
            found.add("".join(run))
            run = []
        if op is _SUBPATTERN:
            add_flags = av[1]
            if not add_flags & _IGNORECASE:
                found |= _required(list(av[3]))
        elif op is _BRANCH:
            found |= _common([_required(list(branch)) for branch in av[1]])
        elif op in _REPEATS:
            low, _high, item = av
            if low >= 1:
                found |= _required(list(item))
        elif _ATOMIC is not None and op is _ATOMIC:
            found |= _required(list(av))
    if run:
        found.add("".join(run))
    return found


def _common(branch_sets: list[set[str]]) -> set[str]:
    """Literals every branch requires: substrings of a literal of the first branch that occur
    inside some required literal of each other branch."""
    if not branch_sets or any(not s for s in branch_sets):
        return set()
    first, rest = branch_sets[0], branch_sets[1:]
    common: set[str] = set()
    for literal in first:
        for size in range(len(literal), 0, -1):
            hits = {literal[i:i + size] for i in range(len(literal) - size + 1)
                    if all(any(literal[i:i + size] in other for other in s) for s in rest)}
            if hits:
                common |= hits
                break
    return common


def _trie(words: set[str]) -> dict:
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return root


def _trie_pattern(node: dict) -> str:
    terminal = "" in node
    branches = [re.escape(ch) + _trie_pattern(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if terminal:
        # Greedy optional tail: the longest literal at a position wins; its prefixes are
        # reported from `_prefixes`.
        return (body if len(branches) > 1 else "(?:" + body + ")") + "?"
    return body


class LiteralScanner:
    """Finds which of a fixed set of literals occur in a text, in one regex pass."""

    def __init__(self, literals) -> None:
        self.literals = frozenset(lit for lit in literals if lit)
        self._regex = re.compile(_trie_pattern(_trie(set(self.literals))), re.DOTALL) if self.literals else None
        # For the longest literal matched at a position, every literal that is its prefix.
        self._prefixes = {lit: frozenset(p for p in self.literals if lit.startswith(p)) for lit in self.literals}

    def scan(self, text: str) -> frozenset[str] | set[str]:
        regex = self._regex
        if regex is None:
            return frozenset()
        match = regex.search(text)
        if match is None:
            return frozenset()
        found: set[str] = set()
        prefixes = self._prefixes
        search = regex.search
        while match is not None:
            found |= prefixes[match.group()]
            # Restart one character later, not at the match end: literals may overlap.
            match = search(text, match.start() + 1)
        return found
