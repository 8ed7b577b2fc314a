"""The test driver's own AMI session: a plain socket that places calls and watches channels.

It plays what the bridge cannot: PSTN customers and internal phones that dial (Originate of
Local channels), and the transfers a phone would do (Redirect, BlindTransfer, Atxfer).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time

Message = dict  # header → value (last one wins); the raw text is kept under "__raw__"


class AmiDriver:
    def __init__(self, port: int, username: str, secret: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(None)
        self.events: list[Message] = []
        self.responses: dict[str, Message] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._buf = b""
        banner = self._readline()
        if not banner.startswith(b"Asterisk Call Manager/"):
            raise RuntimeError(f"not an AMI banner: {banner!r}")
        self._reader = threading.Thread(target=self._read_loop, name="ami-driver", daemon=True)
        self._reader.start()
        reply = self.action("Login", Username=username, Secret=secret)
        if reply.get("Response") != "Success":
            raise RuntimeError(f"driver login failed: {reply}")

    def _readline(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("AMI closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _read_loop(self) -> None:
        try:
            while True:
                lines = []
                while (line := self._readline()) != b"":
                    lines.append(line)
                if not lines:
                    continue
                msg: Message = {"__raw__": b"\r\n".join(lines)}
                for line in lines:
                    key, _, value = line.decode("utf-8", "replace").partition(":")
                    msg[key.strip()] = value.strip()
                with self._cond:
                    if "Event" in msg:
                        self.events.append(msg)
                    elif "ActionID" in msg:
                        self.responses[msg["ActionID"]] = msg
                    self._cond.notify_all()
        except (OSError, ConnectionError):
            pass

    def action(self, name: str, timeout_s: float = 10.0, **headers) -> Message:
        action_id = f"drv-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        for key, value in headers.items():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                lines.append(f"{key}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        with self._cond:
            if not self._cond.wait_for(lambda: action_id in self.responses, timeout_s):
                raise TimeoutError(f"no response to {name}")
            return self.responses.pop(action_id)

    def wait_event(self, pred, timeout_s: float = 15.0) -> Message:
        """The first event (seen so far or later) for which pred(event) is true."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = next((e for e in self.events if pred(e)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("event not seen in time")
                self._cond.wait(min(remaining, 0.2))

    def channel_of(self, uniqueid: str, timeout_s: float = 10.0) -> str:
        return self.wait_event(lambda e: e.get("Event") == "Newchannel" and e.get("Uniqueid") == uniqueid,
                               timeout_s)["Channel"]

    def close(self) -> None:
        try:
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
            self.sock.close()
        except OSError:
            pass
