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


def test_rate_limiting_is_off_by_default(client: Any, alice: Any) -> None:
    for _ in range(5):
        response = alice.get("/api/segments")
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers


def test_idle_buckets_are_forgotten_first(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 4)

    limiter = ratelimit.Limiter(requests=2, window_seconds=10)
    for n in range(4):
        limiter._refilled(f"idle-{n}")
    clock.now += 10
    limiter._refilled("busy")
    assert list(limiter.buckets) == ["busy"]


# -- issue 17: buckets keyed on who authenticated, failures limited per address -----


def _spellings(api_key: str) -> list[str]:
    """Every spelling of the header that authenticates (auth.authenticate): any case of
    the scheme, extra spaces around it and around the key."""
    return [
        f"Bearer {api_key}",
        f"bearer {api_key}",
        f"BEARER {api_key}",
        f"bEaReR {api_key}",
        f"Bearer   {api_key}",
        f"  Bearer {api_key}  ",
    ]


@pytest.mark.parametrize("spelling", range(6))
def test_every_spelling_of_a_key_authenticates(
    limited: tuple[TestClient, list[dict[str, str]]], spelling: int
) -> None:
    client, (alice, _bob) = limited
    header = _spellings(alice["Authorization"].removeprefix("Bearer "))[spelling]
    response = client.get("/api/segments", headers={"Authorization": header})
    assert response.status_code == 200, header
    assert response.headers["ratelimit-remaining"] == "2"


def test_every_spelling_of_a_key_shares_its_bucket(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, (alice, _bob) = limited
    spellings = _spellings(alice["Authorization"].removeprefix("Bearer "))
    statuses = [
        client.get("/api/segments", headers={"Authorization": header}).status_code
        for header in spellings
    ]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_a_users_keys_share_one_bucket(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, (alice, _bob) = limited
    app = client.app
    with app.state.db.write() as session:  # type: ignore[attr-defined]
        user_id = auth.authenticate(session, alice["Authorization"])
        _key_id, second = auth.create_key(session, user_id=user_id)
    for _ in range(3):
        assert client.get("/api/segments", headers=alice).status_code == 200
    refused = client.get("/api/segments", headers={"Authorization": f"Bearer {second}"})
    assert refused.status_code == 429


def test_wrong_keys_are_limited_per_address_whatever_the_key(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, _keys = limited
    statuses = [
        client.get("/api/segments", headers={"Authorization": f"Bearer sgk_guess{n}"}).status_code
        for n in range(12)
    ]
    assert statuses == [401, 401, 401] + [429] * 9
    refused = client.get("/api/segments", headers={"Authorization": "Bearer sgk_other"})
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["retry-after"] == "20"
    assert "failed authentications" in refused.json()["errors"][0]["detail"]
    # Malformed headers and no header at all are failures of the same address.
    for headers in ({"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {}):
        assert client.get("/api/contacts", headers=headers).status_code == 429, headers
    # Another address has its own failure bucket.
    with TestClient(client.app, client=("192.0.2.7", 4000)) as elsewhere:
        guess = {"Authorization": "Bearer sgk_guess"}
        assert elsewhere.get("/api/segments", headers=guess).status_code == 401
    clock.now += 20
    assert client.get("/api/segments", headers={"Authorization": "Bearer x"}).status_code == 401


def test_failures_never_refuse_a_valid_key(
    limited: tuple[TestClient, list[dict[str, str]]], clock: Clock
) -> None:
    client, (alice, bob) = limited
    for n in range(10):  # an attacker at the same address as Alice, and Bob
        client.get("/api/segments", headers={"Authorization": f"Bearer sgk_guess{n}"})
    assert client.get("/api/segments").status_code == 429
    for user in (alice, bob):
        response = client.get("/api/segments", headers=user)
        assert response.status_code == 200
        assert response.headers["ratelimit-remaining"] == "2"
    # ...nor does a valid key's own bucket take failures from its address.
    assert client.get("/api/segments", headers=alice).headers["ratelimit-remaining"] == "1"


def test_the_key_is_looked_up_once_per_request(
    limited: tuple[TestClient, list[dict[str, str]]],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, (alice, _bob) = limited
    calls = []
    real = auth.identify_key

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(auth, "identify_key", counting)
    assert client.get("/api/segments", headers=alice).status_code == 200
    assert client.get("/api/segments", headers={"Authorization": "Bearer no"}).status_code == 401
    assert len(calls) == 2
