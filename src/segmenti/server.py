"""How `segmenti serve` runs uvicorn: which proxies to believe, and the bounds on request
heads and idle connections that uvicorn leaves open.

uvicorn picks httptools when it is installed (uvicorn[standard] installs it), and
httptools puts no limit on the size of a request head: a 100 MB header was accepted.
Segmenti runs uvicorn's h11 protocol instead, which does bound it, with
`BoundedH11Protocol` adding what h11's protocol lacks:

- a head over `max_header_bytes` is answered 431 (h11 bounds only a head still
  incomplete, and uvicorn answers that 400);
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

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
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
        "http": f"{__name__}:BoundedH11Protocol",
        "ws": "none",  # no websocket routes; an upgrade is answered as plain HTTP
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
    }


@functools.cache
def _settings() -> Settings:
    # uvicorn's Config has no field for these: read from the environment, like the app's
    # own settings in each worker process (`create_app_from_env`).
    return Settings.from_env()


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for request heads, a 431 for heads over the
    limit, and a way for the application to drop the connection."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or 16_384
        self.head_timeout = float(_settings().request_head_timeout_seconds)
        self.min_bytes_per_second = _settings().min_transfer_bytes_per_second
        self.head_timer: asyncio.TimerHandle | None = None
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

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        # Unless a pipelined request already began, the next head is on the clock (also
        # when closing: the answer may still be queued, see `_head_deadline`).
        if self.cycle is cycle:
            self._arm_head_timer()

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the request head being received is over the limit. h11 bounds only
        an *incomplete* head: a complete one that arrives in one read is parsed
        whatever its size."""
        if self.conn.their_state is not h11.IDLE:
            return False
        received = self.conn.trailing_data[0] + data  # this head's bytes so far
        end = received.find(b"\r\n\r\n")
        return (end + 4 if end >= 0 else len(received)) > self.max_head_bytes

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
