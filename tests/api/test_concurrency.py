"""Concurrent writers through the real app: no 5xx, no duplicate contacts, exact counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select

from segmenti.db.tables import contacts
from tests.conftest import User


def test_simultaneous_bulk_creates_with_overlapping_numbers(alice: User, db: Any) -> None:
    everyone = alice.make_segment()
    batches = [
        "\n".join(f"+39333{1000000 + n}" for n in range(start, start + 300))
        for start in range(0, 1200, 150)  # each batch overlaps the next by half
    ]

    def create(numbers: str) -> int:
        return int(
            alice.post("/api/segments", data={"name": "bulk", "phone_numbers": numbers}).status_code
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, batches))
    assert statuses == [201] * len(batches)
    with db.read() as session:
        total = session.execute(
            select(func.count()).select_from(contacts).where(contacts.c.user_id == alice.id)
        ).scalar_one()
        distinct = session.execute(
            select(func.count(func.distinct(contacts.c.phone_number))).where(
                contacts.c.user_id == alice.id
            )
        ).scalar_one()
    assert total == distinct == 1350
    assert alice.total(everyone) == 1350
    for segment in alice.get("/api/segments?type=bulk").json()["data"]:
        assert segment["total_contacts"] == 300


def test_concurrent_contact_writes_keep_counts_exact(alice: User) -> None:
    pro = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    italy = alice.make_segment(filters_countries=["IT"])

    def write(n: int) -> list[int]:
        statuses = []
        response = alice.post(
            "/api/contacts",
            json={"phone_number": f"+39333{2000000 + n}", "custom_parameters": {"plan": "pro"}},
        )
        statuses.append(response.status_code)
        contact = response.json()["data"]["id"]
        if n % 2:
            statuses.append(
                alice.post(
                    f"/api/contacts/{contact}", json={"custom_parameters": {"plan": "free"}}
                ).status_code
            )
        if n % 3 == 0:
            statuses.append(alice.delete(f"/api/contacts/{contact}").status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(write, range(60)))
    assert all(status < 500 for statuses in results for status in statuses)
    survivors = [n for n in range(60) if n % 3]
    assert alice.total(italy) == len(survivors)
    assert alice.total(pro) == len([n for n in survivors if n % 2 == 0])
