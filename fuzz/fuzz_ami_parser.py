"""atheris (libFuzzer) harness for bridge/ami/protocol.py: coverage-guided, for long runs outside CI.

    pip install 'atheris>=2.3'          # or: pip install -e '.[fuzz]'
    python fuzz/fuzz_ami_parser.py -max_total_time=600 fuzz/corpus/ami   # corpus dir is created

The last two input bytes pick the chunking and the limits; the rest is the AMI stream (so the
real captures work as seeds almost unchanged). Checks:
only BridgeError subclasses may escape; feeding in chunks must give exactly what feeding the
whole stream gives; the buffer never holds more than max_message (+ a terminator's bytes).
Seed the corpus with the real captures: cp tests/fixtures/ami/*/*.ami fuzz/corpus/ami/
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from bridge.ami.message import NEED_DATA, Banner
    from bridge.ami.protocol import AmiParser
    from bridge.errors import BridgeError


def parse(chunks, **limits):
    parser = AmiParser(**limits)
    out = []
    for chunk in chunks:
        parser.feed(chunk)
        while (msg := parser.next_message()) is not NEED_DATA:
            out.append(("banner", msg.text) if isinstance(msg, Banner) else (msg.headers, msg.body))
    return out, parser


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    step = 1 + data[-2] % 97
    limit = 64 + data[-1] * 8
    stream = data[:-2]
    limits = dict(max_line=limit, max_message=limit, expect_banner=bool(data[-2] & 0x80))
    try:
        whole, p1 = parse([stream], **limits)
        split, p2 = parse([stream[i:i + step] for i in range(0, len(stream), step)], **limits)
    except BridgeError:
        return
    if whole != split or p1.dropped != p2.dropped:
        raise AssertionError(f"chunking changed the result (step {step}, limit {limit})")
    if p1.buffered > limit + 4 or p2.buffered > limit + 4:
        raise AssertionError(f"buffer {max(p1.buffered, p2.buffered)} over the limit {limit}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
