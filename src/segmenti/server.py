"""How `segmenti serve` runs uvicorn: which proxies to believe, and the bounds on request
heads and idle connections that uvicorn leaves open.

uvicorn picks httptools when it is installed (uvicorn[standard] installs it), and
httptools puts no limit on the size of a request head: a 100 MB header was accepted
(httptools gathers a header's value in memory until it ends). Segmenti keeps httptools,
the fastest parser (uvicorn's h11 protocol, which does bound heads, cost about 0.2 ms on
every request), through `BoundedHttpToolsProtocol`, which adds:

- a head over `max_header_bytes` is answered 431: its bytes are counted as they arrive,
  before the parser sees them;
- a connection must send a complete request head within `request_head_timeout_seconds`
  of opening or of its previous answer (uvicorn has no such timer: a connection that
  trickles its head, or sends nothing at all, stayed open indefinitely);
- the application may drop the connection (`ABORT_EXTENSION`): `transport.close()`,
  all uvicorn does when a request fails, waits for the client to read what is queued,
  which a client that stopped reading never does.

Request bodies and answers are bounded by a minimum rate, in `slow_clients.py`.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from segmenti.settings import Settings

ABORT_EXTENSION = "segmenti.abort"
"""Scope extension `{"abort": callable}`: closes the connection at once, discarding
what is still queued for the client."""


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run` that come from settings."""
    trusted = [ip.strip() for ip in settings.forwarded_allow_ips.split(",") if ip.strip()]
    return {
        # uvicorn's default trusts X-Forwarded-For from 127.0.0.1: any local client
        # could pick its own address. Empty setting: no proxy headers at all.
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "http": f"{__name__}:BoundedHttpToolsProtocol",
        "ws": "none",  # no websocket routes; an upgrade is answered as plain HTTP
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
    }


@functools.cache
def _settings() -> Settings:
    # uvicorn's Config has no field for these: read from the environment, like the app's
    # own settings in each worker process (`create_app_from_env`).
    return Settings.from_env()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound and a deadline for request heads, and a
    way for the application to drop the connection."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = _settings().max_header_bytes
        self.head_timeout = float(_settings().request_head_timeout_seconds)
        self.min_bytes_per_second = _settings().min_transfer_bytes_per_second
        self.head_timer: asyncio.TimerHandle | None = None
        # The head being received: bytes so far, and the last 3 (its end, CRLF CRLF, may
        # straddle two reads). Closed from its end until the message is complete.
        self.head_open = True
        self.head_bytes = 0
        self.head_tail = b""
        self.unsent_at_arming = 0
        application = self.app

        async def with_abort(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[ABORT_EXTENSION] = {"abort": self.abort}
            await application(scope, receive, send)

        self.app = with_abort

    def abort(self) -> None:
        # Also when closing: a closing transport still waits for the client to read.
        if self.transport is not None:
            self.transport.abort()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_too_large(data):
            self._refuse_head()
            return
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a complete head: a new request began
            self._cancel_head_timer()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_open, self.head_bytes, self.head_tail = True, 0, b""

    def on_response_complete(self) -> None:
        # Unless a pipelined request is waiting (its head was read: it starts now), the
        # next head is on the clock (also when closing: the answer may still be queued,
        # see `_head_deadline`).
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined:
            self._arm_head_timer()

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the request head being received is over the limit, counted before
        the parser sees the bytes (a pipelined head that starts in the read ending the
        previous message is counted from the next read: bounded by one read more)."""
        if not self.head_open:
            return False
        seen = self.head_tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self.head_bytes += len(data)
            self.head_tail = seen[-3:]
            return self.head_bytes > self.max_head_bytes
        self.head_open = False
        return self.head_bytes + end - len(self.head_tail) + 4 > self.max_head_bytes

    def _refuse_head(self) -> None:
        self.logger.warning("Request head over %d bytes refused.", self.max_head_bytes)
        message = b"Request header fields too large"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(message), message)
        )
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self.unsent_at_arming = self.transport.get_write_buffer_size()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_deadline)

    def _head_deadline(self) -> None:
        """No head in time: drop the connection, unless the client is still reading the
        previous answer (a large one goes to the transport in one piece, so
        `slow_clients` never waits on it) at the minimum rate or faster."""
        unsent = self.transport.get_write_buffer_size()
        drained = self.unsent_at_arming - unsent
        if unsent and drained > 0 and drained >= self.min_bytes_per_second * self.head_timeout:
            self._arm_head_timer()
            return
        self.abort()

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
