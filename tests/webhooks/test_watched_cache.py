"""Which segments a contact write reports moves of is cached per user on its
segments_version: every webhook write that changes it must be seen by the next write."""

from __future__ import annotations

from typing import Any

from segmenti.membership import events as membership_events
from tests.conftest import User
from tests.webhooks.test_webhooks import PRO, events_of, make_webhook

ITALY = {"filters_countries": ["IT"]}


def _moves(user: User) -> list[tuple[str, int]]:
    return [(e["type"], e["segment_id"]) for e in events_of(user)]


def _write(user: User, number: str, **fields: Any) -> int:
    return user.make_contact(number, custom_parameters={"plan": "pro"}, **fields)


def test_webhook_create_re_aim_and_delete_are_seen_by_the_next_contact_write(
    alice: User,
) -> None:
    pro = alice.make_segment(**PRO)
    italy = alice.make_segment(**ITALY)
    _write(alice, "+393331230001")  # cached: nothing watched
    assert _moves(alice) == []

    webhook, _secret = make_webhook(alice, "http://127.0.0.1:9/hook", segments_ids=str(pro))
    _write(alice, "+393331230002")
    assert _moves(alice) == [("segment.contact_entered", pro)]

    response = alice.post(f"/api/webhooks/{webhook}", json={"segments_ids": str(italy)})
    assert response.status_code == 200, response.text
    _write(alice, "+393331230003")
    assert _moves(alice)[1:] == [("segment.contact_entered", italy)]

    assert alice.delete(f"/api/webhooks/{webhook}").status_code == 204
    _write(alice, "+393331230004")
    assert len(_moves(alice)) == 2


def test_a_webhook_of_every_segment_watches_a_segment_created_after_it(alice: User) -> None:
    make_webhook(alice, "http://127.0.0.1:9/hook")
    _write(alice, "+393331230001")  # cached: no segment yet
    pro = alice.make_segment(**PRO)
    _write(alice, "+393331230002")
    assert ("segment.contact_entered", pro) in _moves(alice)


def test_the_cache_holds_at_most_its_bound(alice: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(membership_events, "CACHED_USERS", 1)
    membership_events._cache.clear()
    alice.make_segment(**PRO)
    _write(alice, "+393331230001")
    assert len(membership_events._cache) == 1
    membership_events._cache[("elsewhere", 0)] = ("v", frozenset())
    alice.make_segment(**ITALY)  # moves the version on: the next write caches anew
    _write(alice, "+393331230002")
    assert ("elsewhere", 0) not in membership_events._cache
    assert len(membership_events._cache) == 1
