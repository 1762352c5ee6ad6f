"""Webhook URLs that reach internal addresses are refused, at creation and at delivery,
unless SEGMENTI_WEBHOOKS_ALLOW_PRIVATE is set."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from segmenti.settings import Settings
from segmenti.webhooks import addresses, sender
from tests.conftest import User
from tests.webhooks.conftest import KEY

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("[::1]", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("[fe80::1]", "link-local"),
    ("100.64.0.1", "not a public address"),
    ("[fc00::1]", "private"),
    ("[fd12:3456::1]", "private"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test
    ("[::]", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.1.2.3", "multicast"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[::ffff:10.0.0.1]", "private"),
    ("[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
    ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("198.18.0.1", "benchmarking"),
]


@pytest.fixture
def settings(database_url: str) -> Settings:  # the address check on
    return Settings(database_url=database_url, webhook_encryption_key=KEY)


@pytest.mark.parametrize(("host", "kind"), REFUSED)
def test_internal_addresses_are_refused_at_creation(alice: User, host: str, kind: str) -> None:
    response = alice.post(
        "/api/webhooks",
        json={"url": f"http://{host}/hook", "events": ["segment.contact_entered"]},
    )
    assert response.status_code == 400, (host, response.text)
    error = response.json()["errors"][0]
    assert error["source"]["parameter"] == "url"
    assert "refused" in error["detail"]


def test_every_refused_class_has_a_reason() -> None:
    for host, _kind in REFUSED:
        address = ipaddress.ip_address(host.strip("[]"))
        assert addresses.refusal(address) is not None, host


def test_public_addresses_pass() -> None:
    for host in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"):
        assert addresses.refusal(ipaddress.ip_address(host)) is None, host


def test_a_name_resolving_to_loopback_is_refused(alice: User) -> None:
    response = alice.post(
        "/api/webhooks",
        json={"url": "http://localhost:8080/x", "events": ["segment.contact_exited"]},
    )
    assert response.status_code == 400
    assert "localhost" in response.json()["errors"][0]["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://example.com",
        "http:///nohost",
        "http://user:pass@example.com/x",
        "http://example.com:99999/x",
        "http://exa mple.com/",
        "javascript:alert(1)",
    ],
)
def test_urls_other_than_http_are_refused(url: str) -> None:
    with pytest.raises(addresses.Refused):
        addresses.parse(url)


def test_delivery_checks_again_and_connects_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name that resolved to a public address at creation and to an internal one at
    delivery (DNS rebinding) is refused at delivery, before any connection."""
    connected: list[Any] = []
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *_a, **_k: [(socket.AF_INET, 1, 6, "", ("10.0.0.7", 80))]
    )
    monkeypatch.setattr(socket, "create_connection", lambda *a, **_k: connected.append(a))
    outcome = sender.post(
        "http://rebinding.example/x",
        b"{}",
        {},
        allow_private=False,
        connect_timeout=1,
        total_timeout=1,
    )
    assert outcome.status_code is None and "10.0.0.7" in (outcome.error or "")
    assert connected == []


def test_redirects_are_not_followed_and_proxies_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(307)
            self.send_header("location", "/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    try:
        outcome = sender.post(
            f"http://127.0.0.1:{server.server_address[1]}/first",
            b"{}",
            {},
            allow_private=True,
            connect_timeout=1,
            total_timeout=2,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.status_code == 307
    assert hits == ["/first"]
