"""The rate limit covers the dashboard (issue 17, items 3 and 11): signed-in pages and
posts count against the user's bucket, the one the user's API keys draw from; wrong keys
at sign-in count against the address's failure bucket, shared with the API's failed
authentications; and no valid key is ever refused because of another client's failures."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from segmenti import ratelimit
from segmenti.settings import Settings
from tests.api.test_ratelimit import Clock
from tests.conftest import User
from tests.web.test_pages import field_error, form_token, sign_in


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "_now", fake)
    return fake


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, rate_limit_requests=3, rate_limit_window_seconds=60)


def wrong_sign_in(client: TestClient, n: int) -> Any:
    return client.post(
        "/sign-in",
        data={"csrf_token": form_token(client), "api_key": f"sgk_wrong{n}"},
        follow_redirects=False,
    )


def test_wrong_keys_at_sign_in_are_limited_per_address(client: TestClient, clock: Clock) -> None:
    statuses = [wrong_sign_in(client, n).status_code for n in range(12)]
    assert statuses == [401, 401, 401] + [429] * 9
    refused = wrong_sign_in(client, 99)
    assert refused.headers["content-type"].startswith("text/html")
    assert refused.headers["retry-after"] == "20"
    assert "failed authentications" in refused.text
    # An empty key is a failed attempt too.
    empty = client.post(
        "/sign-in", data={"csrf_token": form_token(client), "api_key": ""}, follow_redirects=False
    )
    assert empty.status_code == 429
    clock.now += 20
    assert field_error(wrong_sign_in(client, 100).text, "api_key") == "unknown or revoked API key"


def test_sign_in_and_api_failures_share_the_addresses_failure_bucket(
    client: TestClient,
) -> None:
    for n in range(2):
        assert client.get("/api/segments", headers={"Authorization": f"Bearer x{n}"}).status_code
    assert wrong_sign_in(client, 0).status_code == 401
    assert wrong_sign_in(client, 1).status_code == 429
    assert client.get("/api/segments", headers={"Authorization": "Bearer y"}).status_code == 429


def test_a_valid_key_signs_in_whatever_the_addresses_failures(
    client: TestClient, alice: User
) -> None:
    for n in range(10):
        wrong_sign_in(client, n)
    assert wrong_sign_in(client, 11).status_code == 429
    sign_in(alice)  # the same client, so the same address
    assert alice.client.get("/contacts").status_code == 200


def test_signed_in_pages_count_against_the_users_bucket(alice: User, clock: Clock) -> None:
    token = sign_in(alice)  # its last step loads /segments: one request
    assert alice.client.get("/contacts").status_code == 200
    preview = alice.client.post("/segments/preview", data={"csrf_token": token, "type": "filter"})
    assert preview.status_code == 200
    refused = alice.client.post("/segments/preview", data={"csrf_token": token, "type": "filter"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["content-type"].startswith("text/html")
    page = alice.client.get("/segments")
    assert page.status_code == 429 and "retry in" in page.text
    created = alice.client.post(
        "/segments/new", data={"csrf_token": token, "name": "x", "type": "filter"}
    )
    assert created.status_code == 429
    # The user's API keys draw from the same bucket.
    assert alice.get("/api/segments").status_code == 429
    clock.now += 20
    assert alice.get("/api/segments").json()["data"] == []  # nothing was created
    assert alice.client.get("/segments").status_code == 429


def test_one_users_dashboard_does_not_spend_anothers_bucket(alice: User, bob: User) -> None:
    sign_in(alice)
    for _ in range(5):
        alice.client.get("/segments")
    assert alice.client.get("/segments").status_code == 429
    assert bob.get("/api/segments").status_code == 200
