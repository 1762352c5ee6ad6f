"""Real servers for tests: uvicorn in the test process on a loopback port, and clients
that stop reading (what a test needs to see how the server behaves when TCP
backpressure stalls a response; the in-process TestClient never applies any); and the
pieces every test that starts `segmenti serve` as a process shares."""

from __future__ import annotations

import io
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from segmenti.contacts.upload import import_upload
from segmenti.db.engine import Database

# The `segmenti` command of the environment the tests run in.
SEGMENTI = Path(sys.executable).with_name("segmenti")


def free_port() -> int:
    """A loopback port nothing listens on (for a server process to bind)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_healthy(
    base: str,
    process: subprocess.Popen[Any],
    *,
    seconds: float = 60,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Waits for the server process at `base` to answer /health; fails, with its
    `output`, if it exits first or takes longer than `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx2.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert process.poll() is None, (
            f"segmenti serve exited with {process.returncode}:\n{output()}"
        )
        assert time.monotonic() < deadline, f"{base} did not become healthy:\n{output()}"
        time.sleep(0.1)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serves `app` on a free loopback port; yields its base URL."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


class StalledDownload:
    """A client that sends a GET, reads the status line, headers and the first bytes of
    the body, and then stops reading while keeping the connection open, so the server's
    sends block once the socket buffers are full."""

    def __init__(self, base: str, path: str, api_key: str, *, first_bytes: int = 65536) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        # A small receive window: the server's sends block sooner.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect((host, int(port)))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {api_key}\r\n\r\n".encode()
        )
        self.received = b""
        while b"\r\n\r\n" not in self.received:
            self.received += self._recv()
        self.head, _, body = self.received.partition(b"\r\n\r\n")
        assert self.head.startswith(b"HTTP/1.1 200"), self.head
        while len(body) < first_bytes:
            body += self._recv()
        self.received = self.head + b"\r\n\r\n" + body

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        return data

    def read_to_end(self) -> bytes:
        """The rest of the response, once the test lets the client read again: the
        body, de-chunked."""
        while not self.received.endswith(b"\r\n0\r\n\r\n"):
            self.received += self._recv()
        return _dechunk(self.received.partition(b"\r\n\r\n")[2])

    def abort(self) -> None:
        """Goes away mid-download, as `curl ... | head -c 100000` does: a reset."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        body = rest[size + 2 :]


def make_large_export(db: Database, *, user_id: int, contacts: int = 20_000) -> int:
    """Gives the user `contacts` contacts with a 500-character value each, through the
    importer: an export of some 10 MB, more than the loopback socket buffers (the
    kernel's send buffer grows to 4 MiB) and the pages the server has in hand can hold.
    Returns the export's size in bytes, roughly."""
    value = "v" * 500
    lines = ["phone_number,name,note"] + [
        f"+39333{n:07d},Contact {n},{value}" for n in range(contacts)
    ]
    data = ("\n".join(lines) + "\n").encode()
    report = import_upload(db, user_id=user_id, upload=io.BytesIO(data), strict=False)
    assert report.created == contacts, report.as_dict()
    return len(data)
