"""Membership events and their signed delivery to a real receiver on loopback."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from segmenti.db.engine import Database
from segmenti.db.tables import webhooks
from segmenti.db.tenant import Tenant
from segmenti.settings import Settings
from segmenti.webhooks.deliverer import Deliverer
from tests.conftest import User
from tests.webhooks.receiver import receiving

PRO = {"filters_custom_parameter_key": ["plan"], "filters_custom_parameter_value": ["pro"]}
BOTH = ["segment.contact_entered", "segment.contact_exited"]


def make_webhook(user: User, url: str, **fields: Any) -> tuple[int, str]:
    response = user.post("/api/webhooks", json={"url": url, "events": BOTH, **fields})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["secret"].startswith("whsec_")
    return int(data["id"]), data["secret"]


def events_of(user: User, **query: Any) -> list[dict[str, Any]]:
    response = user.get("/api/events", params={"results_per_page": 1000, **query})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_writes_record_events_only_for_watched_segments(alice: User, bob: User) -> None:
    pro = alice.make_segment(**PRO)
    other = alice.make_segment(filters_countries=["IT"])
    make_webhook(alice, "http://127.0.0.1:9/hook", segments_ids=str(pro))
    first = alice.make_contact("+393331230001", custom_parameters={"plan": "pro"})
    alice.post(f"/api/contacts/{first}", json={"custom_parameters": {"plan": "free"}})
    found = events_of(alice)
    assert [(e["type"], e["segment_id"], e["contact_id"]) for e in found] == [
        ("segment.contact_entered", pro, first),
        ("segment.contact_exited", pro, first),
    ]
    assert found[0]["phone_number"] == "+393331230001"
    assert found[0]["id"] < found[1]["id"]
    assert not [e for e in found if e["segment_id"] == other]
    assert events_of(alice, after_id=found[0]["id"]) == found[1:]
    assert events_of(alice, type="segment.contact_exited") == found[1:]
    assert events_of(bob) == []


def test_unwatched_user_records_no_events(alice: User) -> None:
    alice.make_segment(**PRO)
    alice.make_contact("+393331230001", custom_parameters={"plan": "pro"})
    assert events_of(alice) == []


def test_a_new_segment_emits_no_events_and_a_redefinition_does(alice: User) -> None:
    make_webhook(alice, "http://127.0.0.1:9/hook")  # every segment
    ids = [alice.make_contact(f"+39333123{n:04d}") for n in range(3)]
    segment = alice.make_segment(contacts_ids=f"{ids[0]},{ids[1]}")
    assert events_of(alice) == []
    response = alice.post(f"/api/segments/{segment}", json={"contacts_ids": f"{ids[1]},{ids[2]}"})
    assert response.status_code == 200, response.text
    moved = {(e["type"], e["contact_id"]) for e in events_of(alice, segment_id=segment)}
    assert moved == {
        ("segment.contact_exited", ids[0]),
        ("segment.contact_entered", ids[2]),
    }


def test_delete_and_opt_out_record_exits(alice: User) -> None:
    segment = alice.make_segment(filters_countries=["IT"])
    make_webhook(alice, "http://127.0.0.1:9/hook", segments_ids=str(segment))
    one = alice.make_contact("+393331230001")
    two = alice.make_contact("+393331230002")
    assert alice.post(f"/api/contacts/{one}", json={"has_opted_out": "1"}).status_code == 200
    assert alice.delete(f"/api/contacts/{two}").status_code == 204
    kinds = [(e["type"], e["contact_id"]) for e in events_of(alice)]
    assert kinds[-2:] == [("segment.contact_exited", one), ("segment.contact_exited", two)]
    assert events_of(alice)[-1]["phone_number"] == "+393331230002"


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"url": "ftp://example.com/x", "events": BOTH}, "url"),
        ({"events": BOTH}, "url"),
        ({"url": "http://127.0.0.1:9/x"}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": ["segment.nope"]}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": BOTH, "segments_ids": "x"}, "segments_ids"),
        ({"url": "http://127.0.0.1:9/x", "events": BOTH, "segments_ids": "99"}, "segments_ids"),
    ],
)
def test_bad_webhooks_answer_400_naming_the_parameter(
    alice: User, fields: dict[str, Any], parameter: str
) -> None:
    response = alice.post("/api/webhooks", json=fields)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["source"]["parameter"] == parameter


def test_webhook_crud_shows_the_secret_once_and_stores_it_encrypted(
    alice: User, bob: User, db: Database
) -> None:
    webhook_id, secret = make_webhook(alice, "http://127.0.0.1:9/hook")
    shown = alice.get(f"/api/webhooks/{webhook_id}").json()["data"]
    assert "secret" not in shown and shown["enabled"] is True and shown["segments_ids"] is None
    assert secret not in alice.get("/api/webhooks").text
    with db.read() as session:
        stored = session.execute(Tenant(alice.id).select(webhooks.c.secret_encrypted)).scalar_one()
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert bob.get(f"/api/webhooks/{webhook_id}").status_code == 404
    update = alice.post(f"/api/webhooks/{webhook_id}", json={"url": "http://127.0.0.1:10/x"})
    assert update.status_code == 200
    assert alice.get(f"/api/webhooks/{webhook_id}").json()["data"]["url"].endswith(":10/x")
    assert bob.delete(f"/api/webhooks/{webhook_id}").status_code == 404
    assert alice.delete(f"/api/webhooks/{webhook_id}").status_code == 204
    assert alice.get(f"/api/webhooks/{webhook_id}").status_code == 404


def test_deliveries_are_signed_batched_in_order_and_verified(
    alice: User, db: Database, settings: Settings
) -> None:
    segment = alice.make_segment(filters_countries=["IT"])
    with receiving() as receiver:
        webhook_id, secret = make_webhook(alice, receiver.url, segments_ids=str(segment))
        receiver.secret = secret
        ids = [alice.make_contact(f"+39333123{n:04d}") for n in range(5)]
        Deliverer(db, settings).run_once()
        assert len(receiver.received) == 1
        got = receiver.received[0]
        assert got.verified, got
        assert got.webhook_id.startswith("msg_")
        assert [e["contact_id"] for e in got.body["events"]] == ids
        assert set(got.body["events"][0]) == {
            "id",
            "type",
            "segment_id",
            "contact_id",
            "phone_number",
            "datetime",
        }
        attempts = alice.get(f"/api/webhooks/{webhook_id}/deliveries").json()["data"]
        assert attempts[0]["status_code"] == 200 and attempts[0]["error"] is None


def test_a_failed_delivery_is_retried_identically_then_delivered(
    alice: User, db: Database, settings: Settings
) -> None:
    with receiving() as receiver:
        _, receiver.secret = make_webhook(alice, receiver.url)
        receiver.statuses = [500, 503]
        receiver.delays = [0, 0, 0]
        segment = alice.make_segment(filters_countries=["IT"])
        contact = alice.make_contact("+393331230001")
        alice.post(f"/api/contacts/{contact}", json={"has_opted_out": "1"})
        Deliverer(db, settings).run_once()
        assert [r.status for r in receiver.received] == [500, 503, 200]
        assert len({r.webhook_id for r in receiver.received}) == 1
        assert len({str(r.body) for r in receiver.received}) == 1
        assert all(r.verified for r in receiver.received)
        assert [e["segment_id"] for e in receiver.events()] == [segment, segment]


def test_a_timeout_is_retried(alice: User, db: Database, settings: Settings) -> None:
    with receiving() as receiver:
        webhook_id, receiver.secret = make_webhook(alice, receiver.url)
        receiver.delays = [3.0]  # past webhook_timeout_seconds (1.5 s)
        alice.make_segment(filters_countries=["IT"])
        alice.make_contact("+393331230001")
        started = time.monotonic()
        Deliverer(db, settings).run_once()
        assert time.monotonic() - started < 10
        attempts = alice.get(f"/api/webhooks/{webhook_id}/deliveries").json()["data"]
        assert attempts[-1]["status_code"] is None and "timed out" in attempts[-1]["error"]
        assert attempts[0]["status_code"] == 200
        assert len(receiver.events()) == 1


def test_410_disables_and_exhausted_retries_disable_saying_so(
    alice: User, db: Database, settings: Settings
) -> None:
    with receiving() as gone, receiving() as failing:
        gone_id, gone.secret = make_webhook(alice, gone.url)
        failing_id, failing.secret = make_webhook(alice, failing.url)
        gone.statuses = [410]
        failing.statuses = [500] * 10
        alice.make_segment(filters_countries=["IT"])
        alice.make_contact("+393331230001")
        Deliverer(db, settings).run_once()
        assert gone.requests == 1
        assert failing.requests == 4  # the first try and three retries ("0,0,0")
    first = alice.get(f"/api/webhooks/{gone_id}").json()["data"]
    assert first["enabled"] is False and "410" in first["disabled_reason"]
    second = alice.get(f"/api/webhooks/{failing_id}").json()["data"]
    assert second["enabled"] is False and "retries exhausted" in second["disabled_reason"]


def test_two_deliverers_never_send_one_delivery_twice(
    alice: User, db: Database, settings: Settings
) -> None:
    with receiving() as receiver:
        _, receiver.secret = make_webhook(alice, receiver.url)
        receiver.delays = [0.3] * 50
        alice.make_segment(filters_countries=["IT"])
        for n in range(30):
            alice.make_contact(f"+39333123{n:04d}")
            stop = threading.Event()
        workers = [Deliverer(Database(settings), settings) for _ in range(3)]
        threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
        for thread in threads:
            thread.start()
        # Meanwhile more writes arrive, batched by whichever deliverer gets there.
        for n in range(30, 60):
            alice.make_contact(f"+39333123{n:04d}")
        received = receiver.wait_for(60)
        stop.set()
        for thread in threads:
            thread.join(10)
        for worker in workers:
            worker.db.dispose()
    ids = [e["id"] for e in received]
    assert len(ids) == 60
    assert ids == sorted(set(ids))  # none twice, in event order
    assert len({r.webhook_id for r in receiver.received}) == len(receiver.received)


def test_rotation_signs_with_both_secrets(alice: User, db: Database, settings: Settings) -> None:
    with receiving() as receiver:
        webhook_id, old = make_webhook(alice, receiver.url)
        rotated = alice.post(f"/api/webhooks/{webhook_id}/rotate-secret")
        assert rotated.status_code == 200
        new = rotated.json()["data"]["secret"]
        assert new != old and new.startswith("whsec_")
        receiver.secret = old  # a receiver not yet switched still verifies
        alice.make_segment(filters_countries=["IT"])
        alice.make_contact("+393331230001")
        Deliverer(db, settings).run_once()
        assert receiver.received[0].verified
        assert len(receiver.received[0].signature.split(" ")) == 2


def test_replay_sends_past_events_again_and_test_sends_one(
    alice: User, db: Database, settings: Settings
) -> None:
    with receiving() as receiver:
        webhook_id, receiver.secret = make_webhook(alice, receiver.url)
        alice.make_segment(filters_countries=["IT"])
        alice.make_contact("+393331230001")
        alice.make_contact("+393331230002")
        Deliverer(db, settings).run_once()
        first = receiver.events()
        assert len(first) == 2
        response = alice.post(
            f"/api/webhooks/{webhook_id}/replay", json={"after_event_id": first[0]["id"]}
        )
        assert response.status_code == 200, response.text
        Deliverer(db, settings).run_once()
        assert [e["id"] for e in receiver.events()] == [e["id"] for e in first] + [first[1]["id"]]
        tested = alice.post(f"/api/webhooks/{webhook_id}/test")
        assert tested.status_code == 200 and tested.json()["data"]["ok"] is True
        assert receiver.received[-1].body["events"][0]["type"] == "webhook.test"
        assert receiver.received[-1].verified


def test_one_slow_endpoint_does_not_delay_another(
    alice: User, db: Database, settings: Settings
) -> None:
    with receiving() as slow, receiving() as quick:
        _, slow.secret = make_webhook(alice, slow.url)
        _, quick.secret = make_webhook(alice, quick.url)
        slow.delays = [1.2] * 20
        alice.make_segment(filters_countries=["IT"])
        stop = threading.Event()
        worker = Deliverer(db, settings)
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            for n in range(5):
                alice.make_contact(f"+39333123{n:04d}")
                time.sleep(0.1)
            started = time.monotonic()
            assert len(quick.wait_for(5, seconds=10)) == 5
            assert time.monotonic() - started < 2.5
        finally:
            stop.set()
            thread.join(10)


def test_erase_removes_the_contact_from_events(alice: User) -> None:
    make_webhook(alice, "http://127.0.0.1:9/hook")
    alice.make_segment(filters_countries=["IT"])
    kept = alice.make_contact("+393331230001")
    erased = alice.make_contact("+393331230002")
    assert alice.delete(f"/api/contacts/{erased}?erase=1").status_code == 204
    assert {e["contact_id"] for e in events_of(alice)} == {kept}


def test_the_deliver_command_sends_what_is_due(alice: User, settings: Settings) -> None:
    from typer.testing import CliRunner

    from segmenti.cli import app

    with receiving() as receiver:
        _, receiver.secret = make_webhook(alice, receiver.url)
        alice.make_segment(filters_countries=["IT"])
        alice.make_contact("+393331230001")
        env = {
            "SEGMENTI_DATABASE_URL": settings.database_url,
            "SEGMENTI_WEBHOOKS_ALLOW_PRIVATE": "1",
            "SEGMENTI_WEBHOOK_ENCRYPTION_KEY": settings.webhook_encryption_key,
        }
        result = CliRunner().invoke(app, ["deliver", "--once"], env=env)
        assert result.exit_code == 0, result.output
        assert "1 delivery attempts made" in result.output
        assert len(receiver.events()) == 1


def test_retention_deletes_old_events_and_finished_deliveries(
    alice: User, db: Database, settings: Settings
) -> None:
    from datetime import datetime

    from segmenti.db.tables import events, webhook_attempts, webhook_deliveries

    with receiving() as receiver:
        webhook_id, receiver.secret = make_webhook(alice, receiver.url)
        alice.make_segment(filters_countries=["IT"])
        alice.make_contact("+393331230001")
        Deliverer(db, settings).run_once()
        alice.make_contact("+393331230002")  # recent: kept
    long_ago = datetime(2000, 1, 1)
    tenant = Tenant(alice.id)
    with db.write() as session:
        oldest = session.execute(tenant.select(events.c.id).order_by(events.c.id)).scalars().first()
        session.execute(
            tenant.update(events).where(events.c.id == oldest).values(datetime=long_ago)
        )
        session.execute(tenant.update(webhook_attempts).values(datetime=long_ago))
        session.execute(tenant.update(webhook_deliveries).values(datetime=long_ago))
    assert Deliverer(db, settings).purge() == 3
    assert len(events_of(alice)) == 1
    assert alice.get(f"/api/webhooks/{webhook_id}/deliveries").json()["data"] == []
