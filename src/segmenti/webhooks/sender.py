"""One delivery attempt: a POST to the address that was checked, with bounds.

The standard library's http.client, not a higher-level client: it follows no
redirects and reads no proxy variables by construction, and its connection can be
pointed at the checked address while the Host header and the TLS server name stay the
URL's host. Each attempt has a connect limit and a total limit (a timer shuts the
socket down when the total runs out, whatever the receiver trickles), and reads at
most `MAX_RESPONSE_BYTES` of the answer."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from segmenti.webhooks import addresses

MAX_RESPONSE_BYTES = 4096
_ERROR_LENGTH = 300


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _Pinned(http.client.HTTPConnection):
    """Connects to `address` (checked), whatever `host` resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedTLS(_Pinned):
    context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    connect_timeout: float,
    total_timeout: float,
) -> Outcome:
    started = time.monotonic()

    def done(status: int | None, error: str | None) -> Outcome:
        elapsed = int((time.monotonic() - started) * 1000)
        return Outcome(status, elapsed, None if error is None else error[:_ERROR_LENGTH])

    try:
        target = addresses.parse(url)
        found = addresses.resolve(target, allow_private=allow_private)
    except addresses.Refused as exc:
        return done(None, f"refused: {exc}")
    kind = _PinnedTLS if target.scheme == "https" else _Pinned
    connection = kind(target.host, target.port, str(found[0]), connect_timeout)
    timer = threading.Timer(total_timeout, _cut, (connection,))
    timer.start()
    try:
        connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(max(total_timeout - (time.monotonic() - started), 0.001))
        connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", target.host_header)
        connection.putheader("User-Agent", "Segmenti-Webhooks")
        connection.putheader("Content-Length", str(len(body)))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return done(response.status, None)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if time.monotonic() - started >= total_timeout:
            return done(None, f"timed out after {total_timeout:g} s")
        return done(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    finally:
        timer.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection) -> None:
    """The total time ran out: wake whatever read or write is blocked."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
