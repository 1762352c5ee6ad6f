"""Issue 15's dashboard pages without a browser: the secret shown once, errors in place,
another user's webhooks and snapshots answer 404."""

from __future__ import annotations

import pytest

from segmenti.settings import Settings
from tests.conftest import User
from tests.web.test_pages import form_token, sign_in
from tests.webhooks.conftest import KEY


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, webhooks_allow_private=True, webhook_encryption_key=KEY
    )


def test_a_webhook_made_in_the_dashboard_shows_its_secret_once(alice: User) -> None:
    token = sign_in(alice)
    assert "No webhooks yet." in alice.client.get("/webhooks").text
    created = alice.client.post(
        "/webhooks",
        data={
            "csrf_token": token,
            "url": "http://127.0.0.1:9/hook",
            "events[]": ["segment.contact_entered", "segment.contact_exited"],
            "segments_ids": "",
        },
    )
    assert created.status_code == 201, created.text
    secret = created.text.split("<code data-secret>")[1].split("</code>")[0]
    assert secret.startswith("whsec_")
    listed = alice.client.get("/webhooks").text
    assert "http://127.0.0.1:9/hook" in listed and secret not in listed
    webhook_id = alice.get("/api/webhooks").json()["data"][0]["id"]
    page = alice.client.get(f"/webhooks/{webhook_id}")
    assert page.status_code == 200 and secret not in page.text


def test_a_refused_url_is_shown_next_to_its_field(alice: User) -> None:
    token = sign_in(alice)
    refused = alice.client.post(
        "/webhooks",
        data={
            "csrf_token": token,
            "url": "ftp://example.com/",
            "events[]": ["segment.contact_exited"],
        },
    )
    assert refused.status_code == 400
    assert "must start with http" in refused.text
    assert 'aria-invalid="true"' in refused.text


def test_another_users_pages_answer_404(alice: User, bob: User) -> None:
    webhook = bob.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/x", "events": ["segment.contact_exited"]},
    ).json()["data"]["id"]
    segment = bob.make_segment(filters_countries=["IT"])
    snapshot = bob.post(f"/api/segments/{segment}/snapshots").json()["data"]["id"]
    token = sign_in(alice)
    for path in (
        f"/webhooks/{webhook}",
        f"/snapshots/{snapshot}",
        f"/segments/{segment}/snapshots",
        f"/segments/{segment}/history.svg",
    ):
        assert alice.client.get(path).status_code == 404, path
    for path in (
        f"/webhooks/{webhook}/delete",
        f"/webhooks/{webhook}/replay",
        f"/snapshots/{snapshot}/delete",
        f"/segments/{segment}/snapshots",
    ):
        assert alice.client.post(path, data={"csrf_token": token}).status_code == 404, path
    assert bob.get(f"/api/webhooks/{webhook}").status_code == 200


def test_the_history_chart_is_an_svg_picture(alice: User) -> None:
    sign_in(alice)
    alice.make_contact("+393331230001")
    segment = alice.make_segment(filters_countries=["IT"])
    assert f'src="/segments/{segment}/history.svg"' in alice.client.get(f"/segments/{segment}").text
    chart = alice.client.get(f"/segments/{segment}/history.svg")
    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.text.startswith("<svg") and "<circle" in chart.text


def test_form_token_is_required(alice: User) -> None:
    sign_in(alice)
    assert form_token(alice.client, "/webhooks")
    refused = alice.client.post("/webhooks", data={"url": "http://127.0.0.1:9/"})
    assert refused.status_code in (400, 403)
