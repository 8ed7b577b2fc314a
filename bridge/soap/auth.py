"""Who may call the SOAP service: salted password hashes, HTTP Basic auth and the CIDR allow-list."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
from typing import Callable, Iterable, Mapping

log = logging.getLogger(__name__)

HASH_SCHEME = "pbkdf2_sha256"
# OWASP 2023 guidance for PBKDF2-HMAC-SHA256; a verified password is cached (see
# BasicAuthenticator), so the cost is paid once per user and process, not per request.
DEFAULT_ITERATIONS = 600_000
SALT_BYTES = 16
REALM = "asterisk-bridge"
# Unverified passwords are hashed one at a time: a crowd of wrong passwords then costs one core,
# not every core and every SOAP thread, and a cached user's Ping still finds a thread and a CPU.
# A check that cannot get the slot within HASH_WAIT_S is answered 503 (Retry-After: 1).
MAX_CONCURRENT_HASHES = 1
HASH_WAIT_S = 0.1
MAX_LOGGED_USER_CHARS = 64


class AuthBusy(Exception):
    """Too many password checks are running; the client should retry shortly (503)."""

StartResponse = Callable[..., object]


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: str | None = None) -> str:
    """`pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`, the form [soap.users] accepts."""
    salt = salt or secrets.token_hex(SALT_BYTES)
    if "$" in salt:
        raise ValueError("salt must not contain '$'")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return f"{HASH_SCHEME}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def is_hashed(stored: str) -> bool:
    return stored.startswith(HASH_SCHEME + "$")


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a plain or `pbkdf2_sha256$…` stored value."""
    if not is_hashed(stored):
        return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))
    try:
        _, iterations, salt, expected = stored.split("$", 3)
        want = base64.b64decode(expected, validate=True)
        rounds = int(iterations)
    except (ValueError, binascii.Error):
        log.error("a [soap.users] password hash is malformed; that user cannot log in")
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), rounds)
    return hmac.compare_digest(got, want)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (ValueError, binascii.Error):
        return None
    # 1C sends UTF-8 for Cyrillic user names; fall back to Latin-1 (RFC 7617's historical default).
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class BasicAuthenticator:
    """Checks Basic credentials against [soap.users]; remembers a successful pbkdf2 check.

    The cache key is a SHA-256 of user and password, so no plaintext is kept, and a changed
    password in the config (a new authenticator) starts afresh.
    """

    def __init__(self, users: Mapping[str, str], max_concurrent_hashes: int = MAX_CONCURRENT_HASHES) -> None:
        self._users = dict(users)
        self._verified: set[bytes] = set()
        # An unknown user is checked against a hash as costly as a real user's, so a wrong user
        # name and a wrong password take the same time (no user enumeration by timing).
        hashed = [v for v in self._users.values() if is_hashed(v)]
        rounds = max((_iterations(v) for v in hashed), default=0)
        self._dummy = hash_password(secrets.token_hex(16), iterations=rounds) if rounds else "\x00" * 16
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent_hashes))

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def check(self, user: str, password: str) -> bool:
        """True for valid credentials; AuthBusy when no hashing slot frees up in time."""
        stored = self._users.get(user)
        key = hashlib.sha256(f"{user}\x00{password}\x00{stored}".encode("utf-8")).digest()
        if stored is not None and key in self._verified:
            return True
        target = self._dummy if stored is None else stored
        if not is_hashed(target):
            return verify_password(password, target) and stored is not None
        if not self._slots.acquire(timeout=HASH_WAIT_S):
            raise AuthBusy()
        try:
            ok = verify_password(password, target) and stored is not None
        finally:
            self._slots.release()
        if ok:
            self._verified.add(key)
        return ok


def _iterations(stored: str) -> int:
    try:
        return int(stored.split("$", 2)[1])
    except (IndexError, ValueError):
        return 0


class NetworkAllowList:
    """CIDR allow-list (`[soap] allow`); an empty list allows everyone."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)

    def allows(self, address: str | None) -> bool:
        if not self.networks:
            return True
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped       # ::ffff:10.1.2.3 from a dual-stack socket
        return any(ip in net for net in self.networks if net.version == ip.version)


def _plain(start_response: StartResponse, status: str, body: bytes,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]


class AccessGuard:
    """WSGI middleware: foreign network → 403, missing or wrong credentials → 401; before anything else."""

    def __init__(self, app: Callable, allow: NetworkAllowList, auth: BasicAuthenticator) -> None:
        self.app = app
        self.allow = allow
        self.auth = auth

    def __call__(self, environ: dict, start_response: StartResponse):
        remote = environ.get("REMOTE_ADDR")
        if not self.allow.allows(remote):
            log.warning("SOAP request from %s refused: not in [soap] allow", remote)
            return _plain(start_response, "403 Forbidden", b"Forbidden: your network is not allowed\n")
        if self.auth.enabled:
            creds = parse_basic(environ.get("HTTP_AUTHORIZATION"))
            try:
                ok = creds is not None and self.auth.check(*creds)
            except AuthBusy:
                log.warning("SOAP request from %s refused: too many password checks at once", remote)
                return _plain(start_response, "503 Service Unavailable", b"Busy: retry in a second\n",
                              [("Retry-After", "1")])
            if not ok:
                if creds is not None:
                    # The user name is not a secret (cut: it is the caller's text); the password
                    # never leaves this function.
                    log.warning("SOAP request from %s refused: bad credentials for user %r", remote,
                                creds[0][:MAX_LOGGED_USER_CHARS])
                return _plain(start_response, "401 Unauthorized", b"Unauthorized\n",
                              [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')])
            environ["REMOTE_USER"] = creds[0]
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    """`python -m bridge.soap.auth`: prompt for a password, print the hash for [soap.users]."""
    import argparse
    import getpass

    parser = argparse.ArgumentParser(prog="python -m bridge.soap.auth",
                                     description="print a pbkdf2_sha256 hash for a [soap.users] entry")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    args = parser.parse_args(argv)
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Again: "):
        parser.exit(1, "the passwords differ\n")
    print(hash_password(password, iterations=args.iterations))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
