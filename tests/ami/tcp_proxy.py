"""A loopback TCP proxy for link faults: forward, stall (accept and never answer), or reset connections."""

from __future__ import annotations

import selectors
import socket
import threading

CHUNK = 65536


class TcpProxy:
    """`127.0.0.1:<port>` → `target`. `stall()`: new and open connections stop moving (a wedged
    server or a black-holing middlebox: TCP stays open, nothing comes back); `resume()` forwards
    again; `reset()` closes every open connection (a restart or a network blip)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._lock = threading.Lock()
        self._moving = threading.Event()
        self._moving.set()
        self._stop = threading.Event()
        self.accepted = 0
        self._threads = [threading.Thread(target=self._accept, daemon=True, name="proxy-accept")]

    def start(self) -> "TcpProxy":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._moving.set()
        self.reset()
        self._listener.close()
        for thread in self._threads:
            thread.join(2.0)

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stall(self) -> None:
        self._moving.clear()

    def resume(self) -> None:
        self._moving.set()

    def reset(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        sock.close()
                    except OSError:
                        pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._pump, args=(client,), daemon=True, name="proxy-pump")
            thread.start()

    def _pump(self, client: socket.socket) -> None:
        with self._lock:
            self._pairs.append((client, None))
        while not self._moving.wait(0.05):  # stalled: the connection is accepted, nothing happens
            if self._stop.is_set():
                return
        try:
            upstream = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            client.close()
            return
        with self._lock:
            self._pairs.append((client, upstream))
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stop.is_set():
                if not self._moving.is_set():
                    self._moving.wait(0.05)
                    continue
                for key, _ in selector.select(0.05):
                    data = key.fileobj.recv(CHUNK)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            selector.close()
            for sock in (client, upstream):
                try:
                    sock.close()
                except OSError:
                    pass
