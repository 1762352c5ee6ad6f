"""A webhook receiver on loopback that verifies every delivery's signature with the
`standardwebhooks` package (an independent implementation of the specification)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    body: dict[str, Any]
    verified: bool
    path: str
    status: int


@dataclass
class Receiver:
    url: str = ""
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    # Status answered to the n-th request (0-based); past the list: 200.
    statuses: list[int] = field(default_factory=list)
    # Seconds to wait before answering the n-th request.
    delays: list[float] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict[str, Any]]:
        """Every event of every verified delivery, in the order received."""
        return [
            e
            for r in self.received
            if r.verified and 200 <= r.status < 300
            for e in r.body["events"]
        ]

    def wait_for(self, count: int, *, seconds: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while len(self.events()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events()


@contextmanager
def receiving(secret: str | None = None) -> Iterator[Receiver]:
    receiver = Receiver(secret=secret)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            with receiver.lock:
                number = receiver.requests
                receiver.requests += 1
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            status = receiver.statuses[number] if number < len(receiver.statuses) else 200
            delay = receiver.delays[number] if number < len(receiver.delays) else 0.0
            if delay:
                time.sleep(delay)
            verified = False
            if receiver.secret is not None:
                try:
                    Webhook(receiver.secret).verify(raw, dict(self.headers.items()))
                    verified = True
                except WebhookVerificationError:
                    verified = False
            with receiver.lock:
                receiver.received.append(
                    Received(
                        self.headers.get("webhook-id", ""),
                        self.headers.get("webhook-timestamp", ""),
                        self.headers.get("webhook-signature", ""),
                        json.loads(raw),
                        verified,
                        self.path,
                        status,
                    )
                )
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
