"""total_contacts stays exact under concurrent writes through several server workers
(two apps on one database, as two `segmenti serve --workers` processes would be),
while readers keep listing counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from segmenti.app import create_app
from segmenti.db.tables import contacts, segments
from segmenti.membership import filters
from segmenti.membership.counts import count_filter, count_members
from segmenti.segments.members import members_where
from segmenti.segments.recount import UserColumns
from segmenti.settings import Settings
from tests.conftest import User

PLANS = ("pro", "free", "Pro", "business")


@pytest.fixture
def second_worker(settings: Settings) -> Iterator[TestClient]:
    application = create_app(settings)
    with TestClient(application, raise_server_exceptions=False) as client:
        yield client
    application.state.db.dispose()


def test_counts_equal_a_fresh_count_after_concurrent_writes_and_reads(
    alice: User, second_worker: TestClient, db: Any
) -> None:
    workers = [alice.client, second_worker]
    seed = [
        alice.make_contact(f"+3933300000{n:02d}", custom_parameters={"plan": "pro"})
        for n in range(6)
    ]
    alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    alice.make_segment(
        filters_custom_parameter_key=["plan", "n"],
        filters_custom_parameter_condition=["not_exact", "bigger_than"],
        filters_custom_parameter_value=["free", "2"],
        filters_continents=["EU"],
    )
    alice.make_segment(contacts_ids=",".join(map(str, seed)))
    stop = threading.Event()
    read_statuses: list[int] = []

    def read(worker: int) -> None:
        while not stop.is_set():
            response = workers[worker].get("/api/segments", headers=alice.headers)
            read_statuses.append(response.status_code)
            assert all(s["total_contacts"] >= 0 for s in response.json()["data"])

    def write(n: int) -> list[int]:
        client = workers[n % 2]
        statuses = []
        number = f"+39333{3000000 + n}" if n % 4 else f"+1415555{3000 + n}"
        body = {
            "phone_number": number,
            "custom_parameters": {"plan": PLANS[n % 4], "n": str(n % 5)},
        }
        response = client.post("/api/contacts", json=body, headers=alice.headers)
        statuses.append(response.status_code)
        contact = response.json()["data"]["id"]
        if n % 3 == 0:
            change = {"custom_parameters": {"plan": "pro"}, "has_opted_out": n % 2 == 0}
            statuses.append(
                client.post(
                    f"/api/contacts/{contact}", json=change, headers=alice.headers
                ).status_code
            )
        if n % 5 == 0:
            statuses.append(
                client.delete(f"/api/contacts/{seed[n % 6]}", headers=alice.headers).status_code
            )
        if n % 10 == 0:  # segment definitions interleaved with contact writes
            segment = {
                "name": f"s{n}",
                "filters_custom_parameter_key": ["n"],
                "filters_custom_parameter_value": [str(n % 5)],
            }
            statuses.append(
                client.post("/api/segments", json=segment, headers=alice.headers).status_code
            )
        return statuses

    readers = [threading.Thread(target=read, args=(i,)) for i in (0, 1)]
    for reader in readers:
        reader.start()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(write, range(40)))
    stop.set()
    for reader in readers:
        reader.join()

    assert all(status < 500 for statuses in results for status in statuses), results
    assert read_statuses and set(read_statuses) == {200}
    with db.read() as session:
        rows = session.execute(
            select(
                segments.c.id, segments.c.type, segments.c.settings, segments.c.total_contacts
            ).where(segments.c.user_id == alice.id)
        ).all()
        columns = UserColumns(session, user_id=alice.id)
        assert len(rows) == 7
        for row in rows:
            where = members_where(
                user_id=alice.id, segment_id=row.id, type=row.type, settings=row.settings
            )
            fresh = session.execute(select(func.count()).select_from(contacts).where(where))
            assert row.total_contacts == fresh.scalar_one(), row
            if row.type == "filter":
                spec = filters.Filter.from_settings(row.settings)
                assert columns.count(spec) == row.total_contacts
                assert count_filter(session, user_id=alice.id, spec=spec) == row.total_contacts
            else:
                assert (
                    count_members(session, user_id=alice.id, segment_id=row.id)
                    == row.total_contacts
                )
