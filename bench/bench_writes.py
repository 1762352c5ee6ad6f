"""Contact writes and bulk segments, measured with their database round trips.

A focused bench for the write path (issue 12, item 3): on the database `--url` names it
counts the statements each contact create and update sends (SQLAlchemy's
`before_cursor_execute`: one per round trip, an executemany counted once), times their
p50 through the app in-process (authentication included), and times one bulk segment of
`--bulk` numbers, half of them contacts already.

    # once: load 100,000 contacts and 1,000 segments into an empty database
    .venv/bin/python -m bench.bench_writes --url postgresql+psycopg://.../h_writes --load
    # then, as often as wanted (before and after a change), on the same data
    nice -n 10 .venv/bin/python -m bench.bench_writes --url postgresql+psycopg://.../h_writes

Each run adds the bulk segment's new numbers as contacts (the segment itself is deleted
again), so runs on the same data differ by that much; the figures are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from bench import data
from bench.run import _contact_body, _create_segments
from segmenti import auth
from segmenti.app import create_app
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.db.tables import contacts, users
from segmenti.settings import Settings


class RoundTrips:
    """Counts what is sent to the database while a block runs: `statements`, those of
    SQLAlchemy (`before_cursor_execute`, an executemany once), and on PostgreSQL
    `round_trips`, every command psycopg sends (the statements, plus the BEGIN, COMMIT
    and ROLLBACK it sends by itself, and the pool's pings)."""

    def __init__(self, engine: Any) -> None:
        self.statements = 0
        self.round_trips = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        if engine.dialect.name == "postgresql":
            self._count_driver_commands()

    def _statement(self, *_args: Any) -> None:
        self.statements += 1

    def _count_driver_commands(self) -> None:
        # The benchmark's own instrumentation of psycopg's internals (3.x): the cursor's
        # statements, and the commands the connection sends by itself.
        from psycopg import Cursor
        from psycopg._connection_base import BaseConnection

        counter = self

        def counted(original: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                counter.round_trips += 1
                return original(*args, **kwargs)

            return wrapper

        Cursor.execute = counted(Cursor.execute)  # type: ignore[method-assign]
        Cursor.executemany = counted(Cursor.executemany)  # type: ignore[method-assign]
        BaseConnection._exec_command = counted(BaseConnection._exec_command)  # type: ignore[method-assign]

    @contextmanager
    def counting(self) -> Iterator[dict[str, int]]:
        seen: dict[str, int] = {}
        statements, round_trips = self.statements, self.round_trips
        try:
            yield seen
        finally:
            seen["statements"] = self.statements - statements
            seen["round_trips"] = self.round_trips - round_trips


def load(url: str, *, contact_count: int, segment_count: int, seed: int) -> None:
    settings = Settings(database_url=url)
    db = Database(settings)
    migrate.upgrade(db.engine)
    rng = random.Random(seed)
    with db.write() as session:
        user_id, _key = auth.create_user(session, name="bench writes")
    taken: set[str] = set()
    contact_list = list(data.make_contacts(rng, contact_count, taken=taken))
    started = time.perf_counter()
    data.load_contacts(db.engine, user_id=user_id, contact_list=contact_list)
    print(f"loaded {contact_count} contacts in {time.perf_counter() - started:.1f} s")
    plans = data.segment_plans(rng, segment_count, contact_list=contact_list)
    seconds = _create_segments(db, user_id=user_id, plans=plans)
    print(f"created {segment_count} segments in {seconds:.1f} s")
    db.dispose()


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def measure(url: str, *, reps: int, bulk: int, seed: int) -> dict[str, Any]:
    settings = Settings(database_url=url)
    app = create_app(settings)
    db: Database = app.state.db
    with db.write() as session:
        user_id = session.execute(select(func.min(users.c.id))).scalar_one()
        _key_id, api_key = auth.create_key(session, user_id=user_id)
    with db.read() as session:
        numbers = set(
            session.execute(select(contacts.c.phone_number).where(contacts.c.user_id == user_id))
            .scalars()
            .all()
        )
        max_id = session.execute(select(func.max(contacts.c.id))).scalar_one()
    rng = random.Random(seed + int(time.time()))
    taken = set(numbers)
    trips = RoundTrips(db.engine)
    results: dict[str, Any] = {"load_average_1m": round(os.getloadavg()[0], 2), "reps": reps}
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {api_key}"
        for _ in range(5):  # warm: compiled predicates, statement caches, the pool
            client.get("/api/segments?page[size]=25")
        for kind in ("create", "update"):
            timings: list[float] = []
            counted: list[dict[str, int]] = []
            new_numbers = [info.e164 for info in data.phone_numbers(rng, reps, taken=taken)]
            for index in range(reps):
                if kind == "create":
                    path, body, wanted = (
                        "/api/contacts",
                        _contact_body(rng, new_numbers[index]),
                        201,
                    )
                else:
                    contact_id = rng.randint(1, max_id)
                    path, body, wanted = f"/api/contacts/{contact_id}", _contact_body(rng), 200
                with trips.counting() as seen:
                    start = time.perf_counter()
                    response = client.post(path, json=body)
                    timings.append((time.perf_counter() - start) * 1000)
                if response.status_code == 404 and kind == "update":
                    timings.pop()
                    continue
                assert response.status_code == wanted, response.text[:300]
                counted.append(seen)
            results[f"contact_{kind}"] = {"p50_ms": _p50(timings)}
            for what in ("statements", "round_trips"):
                values = [one[what] for one in counted]
                results[f"contact_{kind}"][f"{what}_mean"] = round(statistics.mean(values), 2)
                results[f"contact_{kind}"][f"{what}_max"] = max(values)
        list_ms = []
        for _ in range(reps):
            start = time.perf_counter()
            response = client.get("/api/segments?page[size]=25")
            list_ms.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        results["list_25"] = {"p50_ms": _p50(list_ms)}
        if bulk:
            existing = rng.sample(sorted(numbers), min(bulk // 2, len(numbers)))
            new = [info.e164 for info in data.phone_numbers(rng, bulk - len(existing), taken=taken)]
            listed = existing + new
            rng.shuffle(listed)
            body = {"name": "bench writes bulk", "type": "bulk", "phone_numbers": "\n".join(listed)}
            with trips.counting() as seen:
                start = time.perf_counter()
                response = client.post("/api/segments", json=body)
                elapsed = time.perf_counter() - start
            assert response.status_code == 201, response.text[:300]
            results["bulk_segment"] = {
                "numbers": bulk,
                "new_contacts": len(new),
                "seconds": round(elapsed, 2),
                **seen,
            }
            segment_id = response.json()["data"]["id"]
            client.delete(f"/api/segments/{segment_id}")
    db.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the database (PostgreSQL or SQLite)")
    parser.add_argument("--load", action="store_true", help="load contacts and segments first")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=100_000, help="0: no bulk segment")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    if args.load:
        load(args.url, contact_count=args.contacts, segment_count=args.segments, seed=args.seed)
    print(json.dumps(measure(args.url, reps=args.reps, bulk=args.bulk, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
