"""A minimum transfer rate for request bodies and answers, so that a client trickling a
body, or one that stops reading an answer, cannot hold a request open indefinitely.

A total time limit would cut a legitimate 20 MiB upload or a million-row export on a
slow link; a rate does not. What is measured is the time spent *waiting on the client*:
inside `receive()` while the body is incomplete, and inside `send()`, which uvicorn
blocks while the connection's write buffer is full (flow control: the client is not
reading). The server's own work between those calls is never charged to the client.
Each direction may wait `grace_seconds` on the client, and earns one more second for
every `bytes_per_second` bytes it moves; a wait that outlasts what is left, or lasts
longer than `grace_seconds` on its own, cuts the request:

- a body too slow, before any answer: 408, and the connection is closed;
- an answer read too slowly: the connection is dropped at once (`server.ABORT_EXTENSION`;
  closing it politely would wait for the client to read what is queued). The
  application then sees a disconnected client, as if it had gone away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmenti import errors, http
from segmenti.server import ABORT_EXTENSION

log = logging.getLogger("segmenti")

T = TypeVar("T")


class ClientTooSlow(Exception):
    """Raised into the application when its client sends the body too slowly (or reads
    too slowly where the connection cannot be dropped)."""


class _Budget:
    """The waiting one direction of one request may still do: `grace_seconds`, plus one
    second for every `bytes_per_second` bytes moved, less the time already waited; and
    never more than `grace_seconds` in one wait.

    The second rule catches a client that stops reading after a fast start: the
    kernel's socket buffers take megabytes at once, which would otherwise buy an hour
    of stalling at 1 KiB/s. It is not a rate because a wait's length says little about
    the rate: a blocked send resumes only when the kernel has room again, which with a
    large socket buffer can take a fast client a second or more."""

    def __init__(self, bytes_per_second: int, grace_seconds: float) -> None:
        self.bytes_per_second = bytes_per_second
        self.grace_seconds = grace_seconds
        self.moved = 0
        self.waited = 0.0

    def allowance(self) -> float:
        earned = self.grace_seconds + self.moved / self.bytes_per_second - self.waited
        return min(max(earned, 0.0), self.grace_seconds)

    async def wait(self, operation: Awaitable[T]) -> T:
        """Runs `operation` (a receive or a send), charging its duration; raises
        `TimeoutError` when it outlasts the allowance (the operation is cancelled)."""
        started = time.monotonic()
        try:
            # A timer on the running task, not wait_for's extra task and loop turn per
            # receive and send (a fifth of a millisecond on every request).
            async with asyncio.timeout(self.allowance()):
                return await operation
        finally:
            self.waited += time.monotonic() - started


class MinimumTransferRate:
    def __init__(self, app: ASGIApp, *, bytes_per_second: int, grace_seconds: float) -> None:
        self.app = app
        self.bytes_per_second = bytes_per_second
        self.grace_seconds = grace_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.bytes_per_second <= 0:
            await self.app(scope, receive, send)
            return
        upload = _Budget(self.bytes_per_second, self.grace_seconds)
        download = _Budget(self.bytes_per_second, self.grace_seconds)
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
        body_complete = False
        cut = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal body_complete, cut
            if body_complete or cut:  # after the body: only the disconnect is awaited
                return await receive()
            try:
                message = await upload.wait(receive())
            except TimeoutError:
                cut = True
                raise ClientTooSlow(_describe("request body", upload)) from None
            if message["type"] == "http.request":
                upload.moved += len(message.get("body", b""))
                body_complete = not message.get("more_body", False)
            else:
                body_complete = True
            return message

        async def timed_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if cut:  # the body was cut: do not read what is left of it
                    headers = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            try:
                await download.wait(send(message))
            except TimeoutError:
                if abort is None:
                    raise ClientTooSlow(_describe("answer", download)) from None
                log.warning("dropped a client reading too slowly: %s", _describe("", download))
                abort()
                await asyncio.sleep(0)  # let the server see the connection is gone
                return
            download.moved += len(message.get("body", b""))

        try:
            await self.app(scope, timed_receive, timed_send)
        except ClientTooSlow as exc:
            log.warning("cut a client sending too slowly: %s", exc)
            if response_started:
                if abort is not None:
                    abort()
                    await asyncio.sleep(0)
                return
            await _send_timeout(send, str(exc))


def _describe(what: str, budget: _Budget) -> str:
    return (
        f"{what} {budget.moved} bytes in {budget.waited:.1f} s of waiting, "
        f"under {budget.bytes_per_second} bytes/s".strip()
    )


async def _send_timeout(send: Send, detail: str) -> None:
    error = errors.RequestTimeout(f"the request was sent too slowly: {detail}")
    response = http.error_response(error, headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": 408, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
