"""Rate limit per API key: 429 with Retry-After and RateLimit-* headers, per key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from segmenti import auth, ratelimit
from segmenti.app import create_app
from segmenti.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "_now", fake)
    return fake


@pytest.fixture
def limited(database_url: str) -> Iterator[tuple[TestClient, list[dict[str, str]]]]:
    app = create_app(
        Settings(database_url=database_url, rate_limit_requests=3, rate_limit_window_seconds=60)
    )
    keys = []
    with app.state.db.write() as session:
        for name in ("alice", "bob"):
            _user_id, api_key = auth.create_user(session, name=name)
            keys.append({"Authorization": f"Bearer {api_key}"})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, keys
    app.state.db.dispose()


def test_over_the_limit_is_a_429_with_retry_after(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, (alice, _bob) = limited
    remaining = []
    for _ in range(3):
        response = client.get("/api/segments", headers=alice)
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-policy"] == "3;w=60"
        remaining.append(response.headers["ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    refused = client.post("/api/segments", headers=alice, json={"name": "x"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "20"  # one token per 60/3 s
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["x-request-id"]
    error = refused.json()["errors"][0]
    assert error["status"] == "429" and error["title"] == "Too many requests"
    assert "retry in 20 s" in error["detail"]
    # The refused create wrote nothing.
    clock.now += 20
    assert client.get("/api/segments", headers=alice).json()["meta"]["total"] == 0


def test_each_key_has_its_own_bucket(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, (alice, bob) = limited
    for _ in range(3):
        client.get("/api/contacts", headers=alice)
    assert client.get("/api/contacts", headers=alice).status_code == 429
    assert client.get("/api/contacts", headers=bob).status_code == 200


def test_the_bucket_refills_over_the_window(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, (alice, _bob) = limited
    for _ in range(3):
        client.get("/api/segments", headers=alice)
    clock.now += 19
    assert client.get("/api/segments", headers=alice).status_code == 429
    clock.now += 1
    assert client.get("/api/segments", headers=alice).status_code == 200
    clock.now += 3600  # never more than the limit banked
    statuses = [client.get("/api/segments", headers=alice).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_unknown_keys_are_limited_too_and_operations_are_not(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, _keys = limited
    guessing = {"Authorization": "Bearer sgk_guess"}
    statuses = [client.get("/api/segments", headers=guessing).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    for path in ("/health", "/ready", "/metrics", "/api/openapi.json"):
        for _ in range(5):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "ratelimit-limit" not in response.headers


def test_off_by_default(client: Any, alice: Any) -> None:
    for _ in range(5):
        response = alice.get("/api/segments")
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers


def test_idle_buckets_are_forgotten_first(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 4)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    limiter = ratelimit.RateLimit(app, requests=2, window_seconds=10)
    for n in range(4):
        limiter._refilled(f"idle-{n}")
    clock.now += 10
    limiter._refilled("busy")
    assert list(limiter.buckets) == ["busy"]
