"""What a page of segment members costs over 1M contacts (SQLite).

    .venv/bin/python scripts/member_pages_1m.py generate var/members-1m.db
    .venv/bin/python scripts/member_pages_1m.py measure var/members-1m.db

`generate` writes one user with 1,000,000 contacts (plan = pro for 30%, age 18-80,
countries IT/FR/US/DE, 5% opted out) with executemany, then three segments through
the service: a rare filter segment (plan = pro, age = 18, country IT), a filter
segment (plan = pro, country IT), a filter segment with no filters (every contact)
and a custom segment of 100,000 ids. `measure` times
`members.list_members` (no HTTP) for the first page, a deep page by number and the
same deep page by cursor (`after_id`), and the first page with opted-out members
included (whose meta.total is a COUNT), 25 rows each, median of 5 runs.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from typing import Any

from sqlalchemy import insert, select

from segmenti import auth
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters, contacts, segments
from segmenti.membership.filters import Condition, Filter
from segmenti.paging import Page
from segmenti.segments import members, service
from segmenti.settings import Settings
from segmenti.timeutil import utcnow

CONTACTS = 1_000_000
BATCH = 50_000
PLACES = [("IT", "EU"), ("FR", "EU"), ("US", "NA"), ("DE", "EU")]


def generate(db: Database) -> None:
    rng = random.Random(5)
    with db.write() as session:
        user_id, _ = auth.create_user(session, name="bench")
    now = utcnow()
    for start in range(1, CONTACTS + 1, BATCH):
        people: list[dict[str, Any]] = []
        parameters: list[dict[str, Any]] = []
        for contact_id in range(start, min(start + BATCH, CONTACTS + 1)):
            country, continent = PLACES[contact_id % len(PLACES)]
            plan = "pro" if rng.random() < 0.3 else "free"
            age = str(rng.randint(18, 80))
            people.append(
                {
                    "id": contact_id,
                    "user_id": user_id,
                    "name": f"contact {contact_id}",
                    "phone_number": f"+1555{contact_id:08d}",
                    "custom_parameters": {"plan": plan, "age": age},
                    "country_code": country,
                    "continent_code": continent,
                    "has_opted_out": rng.random() < 0.05,
                    "datetime": now,
                }
            )
            parameters.append(
                {
                    "contact_id": contact_id,
                    "user_id": user_id,
                    "key": "plan",
                    "value_folded": plan,
                    "value_number": None,
                }
            )
            parameters.append(
                {
                    "contact_id": contact_id,
                    "user_id": user_id,
                    "key": "age",
                    "value_folded": age,
                    "value_number": float(age),
                }
            )
        with db.write() as session:
            session.execute(insert(contacts), people)
            session.execute(insert(contact_parameters), parameters)
        print(f"{start + len(people) - 1} contacts", flush=True)
    add_segments(db, user_id)


def add_segments(db: Database, user_id: int) -> None:
    pro_in_italy = Filter(conditions=(Condition("plan", "exact", "pro"),), countries=("IT",))
    aged_18 = Filter(
        conditions=(Condition("plan", "exact", "pro"), Condition("age", "exact", "18")),
        countries=("IT",),
    )
    with db.write() as session:
        for name, data in (
            ("pro, 18, in Italy", service.SegmentInput(name="pro, 18, in Italy", filter=aged_18)),
            ("pro in Italy", service.SegmentInput(name="pro in Italy", filter=pro_in_italy)),
            ("everyone", service.SegmentInput(name="everyone", type="filter")),
            (
                "custom 100k",
                service.SegmentInput(
                    name="custom 100k", contacts_ids=tuple(range(7, CONTACTS, 10))
                ),
            ),
        ):
            segment_id = service.create_segment(session, user_id=user_id, data=data)
            print(f"segment {segment_id}: {name}", flush=True)


def _median_ms(run: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(db: Database) -> None:
    with db.read() as session:
        rows = session.execute(
            select(segments.c.id, segments.c.user_id, segments.c.name, segments.c.total_contacts)
        ).all()
    for row in rows:
        measure_segment(
            db, user_id=row.user_id, segment_id=row.id, name=row.name, total=row.total_contacts
        )


def measure_segment(db: Database, *, user_id: int, segment_id: int, name: str, total: int) -> None:
    size = 25
    deep = max(1, total // size // 2)  # a page in the middle

    def page(number: int, after_id: int | None = None, everyone: bool = False) -> list[int]:
        with db.read() as session:
            listed = members.list_members(
                session,
                user_id=user_id,
                segment_id=segment_id,
                page=Page(number, size),
                after_id=after_id,
                include_opted_out=everyone,
            )
        return [contact["id"] for contact in listed.rows]

    before_deep = page(deep - 1)[-1] if deep > 1 else None
    assert page(deep, before_deep) == page(deep)
    first = _median_ms(lambda: page(1))
    by_number = _median_ms(lambda: page(deep))
    by_cursor = _median_ms(lambda: page(deep, before_deep))
    counted = _median_ms(lambda: page(1, everyone=True))
    print(
        f"{name!r} ({total} members): first page {first:.1f} ms, "
        f"page {deep} by number {by_number:.1f} ms, by cursor {by_cursor:.1f} ms, "
        f"first page with include_opted_out=1 (meta.total counted) {counted:.1f} ms"
    )


def main() -> None:
    command, path = sys.argv[1], sys.argv[2]
    db = Database(Settings(database_url=f"sqlite:///{path}"))
    migrate.upgrade(db.engine)
    {"generate": generate, "measure": measure}[command](db)


if __name__ == "__main__":
    main()
