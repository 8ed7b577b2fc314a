"""atheris harness for the SOAP request path (bridge/soap envelope parsing + validation), in-process WSGI.

    pip install 'atheris>=2.3'
    python fuzz/fuzz_soap_envelope.py -max_total_time=600 fuzz/corpus/soap

Every input is POSTed through the real WSGI app (auth, limits, hardened parse, spyne, validation)
with a backend whose AMI client is not connected, so nothing can be sent anywhere. Checks: the app
answers (no exception escapes), a 500 is always a SOAP Fault, and no answer carries a traceback.
The over-HTTP version with a live simulator is tests/soap/test_fuzz_service.py (hypothesis).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from bridge.ami.client import AmiClient
    from bridge.calls import CallTracker
    from bridge.config import AmiConfig, SoapConfig
    from bridge.soap.app import build_app
    from bridge.soap.backend import BridgeBackend

CFG = SoapConfig(listen="127.0.0.1:0", users={})      # no users: no auth, so inputs reach the parser
CLIENT = AmiClient(AmiConfig("pbx1", "127.0.0.1", 9, "bridge", "x"))   # never started: any AMI use fails cleanly
APP = build_app(BridgeBackend({"pbx1": CLIENT}, CallTracker(), soap_cfg=CFG, pending_count=lambda: 0), CFG)


def test_one_input(data: bytes) -> None:
    # The body is the input as-is (seeds in fuzz/corpus/soap are plain envelopes); its length
    # picks the content type and the SOAP 1.1 or 1.2 path.
    ctype = ["text/xml; charset=utf-8", "application/soap+xml", "text/plain"][len(data) % 3]
    path = CFG.path + ("12" if len(data) % 2 else "")
    body = data
    status = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "CONTENT_TYPE": ctype, "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
               "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False,
               "wsgi.run_once": False}
    answer = b"".join(APP(environ, lambda s, h, exc_info=None: status.append(s)))
    if b"Traceback" in answer:
        raise AssertionError("traceback in the answer")
    if status and status[0].startswith("500") and b"Fault" not in answer:
        raise AssertionError(f"500 without a SOAP Fault: {answer[:200]!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
