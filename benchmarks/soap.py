"""GetExtensionState throughput and p99 with 16 concurrent clients, next to a bare spyne echo service.

Both services run in this process on the same server kind (cheroot via bridge.soap.SoapServer,
16 threads); the clients are 16 threads with keep-alive HTTP/1.1 connections (http.client, so
client overhead stays small and equal for both). Ours goes through the full stack: CIDR check,
Basic auth (pbkdf2 hash, verified once then cached), body limit, hardened parse, validation,
the extension-state cache (an AMI `ExtensionState` round trip to the simulator only on a miss)
and the call model. Targets: ours ≥ 0.8 × echo and ≥ 500 req/s.

    .venv/bin/python benchmarks/soap.py [--seconds 5] [--clients 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spyne import Application, ServiceBase, Unicode, rpc  # noqa: E402
from spyne.protocol.soap import Soap11  # noqa: E402
from spyne.server.wsgi import WsgiApplication  # noqa: E402

from bridge.ami.client import AmiClient  # noqa: E402
from bridge.testing.simulator import AmiSimulator  # noqa: E402
from bridge.calls import CallTracker  # noqa: E402
from bridge.config import AmiConfig, SoapConfig  # noqa: E402
from bridge.soap.app import build_app  # noqa: E402
from bridge.soap.auth import hash_password  # noqa: E402
from bridge.soap.backend import BridgeBackend  # noqa: E402
from bridge.calls.extstate import ExtensionStateCache  # noqa: E402
from bridge.soap.server import SoapServer  # noqa: E402

ECHO_NS = "urn:bench-echo"
USER, PASSWORD = "1c", "bench-password"
OURS_BODY = ('<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
             '<s:Body><m:GetExtensionState xmlns:m="urn:asterisk-bridge"><m:extension>{ext}</m:extension>'
             '</m:GetExtensionState></s:Body></s:Envelope>')
ECHO_BODY = ('<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
             f'<s:Body><m:echo xmlns:m="{ECHO_NS}"><m:text>{{ext}}</m:text></m:echo></s:Body></s:Envelope>')
EXTENSIONS = [str(200 + i) for i in range(16)]


class EchoService(ServiceBase):
    @rpc(Unicode, _returns=Unicode)
    def echo(ctx, text):
        return text


def echo_app() -> WsgiApplication:
    return WsgiApplication(Application([EchoService], tns=ECHO_NS, name="Echo",
                                       in_protocol=Soap11(), out_protocol=Soap11()))


def run_load(port: int, path: str, body_template: str, seconds: float, clients: int,
             auth: str | None) -> tuple[int, list[float], int]:
    """(requests done, latencies in s, errors) from `clients` keep-alive connections for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    kinds: dict[str, int] = {}
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = body_template.format(ext=EXTENSIONS[index % len(EXTENSIONS)]).encode()
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if auth:
            headers["Authorization"] = auth
        start_gate.wait()
        mine = latencies[index]
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors[index] += 1          # counted, then a fresh connection
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append(time.perf_counter() - t0)
            if response.status != 200:
                errors[index] += 1
                kinds[str(response.status)] = kinds.get(str(response.status), 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    start_gate.wait()
    for t in threads:
        t.join()
    flat = [x for per in latencies for x in per]
    if kinds:
        print(f"  (errors on port {port}: {kinds})")
    return len(flat), flat, sum(errors)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--uncached", action="store_true",
                        help="also measure GetExtensionState with an AMI round trip per request (no cache)")
    args = parser.parse_args(argv)

    cfg = SoapConfig(listen="127.0.0.1:0", users={USER: hash_password(PASSWORD)}, threads=args.clients)
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with AmiSimulator("asterisk20", users={"bridge": "secret"}, time_scale=0.0) as sim:
        client = AmiClient(AmiConfig("pbx1", sim.host, sim.port, "bridge", "secret"))
        backend = BridgeBackend({"pbx1": client}, CallTracker(), soap_cfg=cfg, pending_count=lambda: 0)
        client.start()
        if not client.wait_connected(5.0):
            print("AMI simulator did not accept the login", file=sys.stderr)
            return 1
        ours = SoapServer(build_app(backend, cfg), "127.0.0.1:0", threads=args.clients).start()
        echo = SoapServer(echo_app(), "127.0.0.1:0", threads=args.clients).start()
        # Same client and call model, but every lookup is an AMI round trip (negative TTL).
        uncached_backend = BridgeBackend({"pbx1": client}, backend.calls, soap_cfg=cfg, attach=False,
                                         extension_states=ExtensionStateCache(ttl_s=-1.0))
        uncached = SoapServer(build_app(uncached_backend, cfg), "127.0.0.1:0", threads=args.clients).start()
        try:
            results = {"ours": [], "echo": []}
            if args.uncached:
                results["uncached"] = []
            run_load(ours.port, cfg.path, OURS_BODY, 0.5, args.clients, auth)       # warm-up
            run_load(echo.port, "/", ECHO_BODY, 0.5, args.clients, None)
            for _ in range(args.rounds):
                results["echo"].append(run_load(echo.port, "/", ECHO_BODY, args.seconds, args.clients, None))
                results["ours"].append(run_load(ours.port, cfg.path, OURS_BODY, args.seconds, args.clients, auth))
                if args.uncached:
                    results["uncached"].append(
                        run_load(uncached.port, cfg.path, OURS_BODY, args.seconds, args.clients, auth))
            ami_lookups = len([m for m in sim.received_actions if m.get("Action") == "ExtensionState"])
        finally:
            ours.stop()
            echo.stop()
            uncached.stop()
            client.stop()
    return report(results, args, ami_lookups, backend)


def report(results: dict, args: argparse.Namespace, ami_lookups: int, backend: BridgeBackend) -> int:
    print(f"SOAP benchmark: {args.clients} concurrent keep-alive clients, {args.rounds} x {args.seconds:.1f} s "
          f"per service, cheroot {args.clients} threads, Python {sys.version.split()[0]}")
    rates = {}
    for name, runs in results.items():
        done = sum(r[0] for r in runs)
        lat = [x for r in runs for x in r[1]]
        errors = sum(r[2] for r in runs)
        rates[name] = done / (args.seconds * len(runs))
        label = {"ours": "GetExtensionState (ours)", "echo": "spyne echo (baseline)",
                 "uncached": "  same, AMI per request"}[name]
        print(f"  {label:26s} {rates[name]:8.0f} req/s   p50 {statistics.median(lat) * 1000:6.2f} ms   "
              f"p99 {p99(lat) * 1000:6.2f} ms   errors {errors}")
    ratio = rates["ours"] / rates["echo"]
    cache = backend.extension_states
    print(f"  ratio ours/echo            {ratio:8.2f}   (target >= 0.80)")
    print(f"  ours >= 500 req/s          {'yes' if rates['ours'] >= 500 else 'NO'}")
    print(f"  AMI ExtensionState actions {ami_lookups} (cache hits {cache.hits}, misses {cache.misses})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
