"""One tenant's slow filter against another tenant's writes (issue 17, item 2).

    .venv/bin/python bench/bench_hostile_filter.py [--contacts 3000] [--conditions 50]
        [--value-length 512] [--shape issue|periodic] [--database-url URL]

Builds a fresh database (a SQLite file in a temporary directory, or a new database on
the PostgreSQL server that --database-url or SEGMENTI_DATABASE_URL names), gives a
"hostile" user --contacts contacts whose one parameter `bio` is --value-length
characters long, starts a real `segmenti serve` on loopback and, while the hostile user
creates and then redefines a filter segment of --conditions `not_contains` conditions
with values as long, has a second user create contacts back to back. Reports the
create's and the update's time and the other user's write latencies while each ran.

Shapes of the values, each the worst case of a substring search of its kind:
  * issue: every value `a` x L, every condition `a` x (L - 1) + `b`: a LIKE '%...%'
    matches L - 1 characters at each of the L starts before failing (the report of
    issue 17: 3,000 contacts, 50 conditions of 512 characters, 36.5 s);
  * periodic: the conditions are half as long, `a` x (L/2 - 1) + `b`: the most starts
    times the most characters compared for instr/strpos, which compare each start.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

if __package__ in (None, ""):  # run as a script: `bench` (for bench.run) is importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import http_client  # noqa: E402
from bench.run import HOST, Server, fresh_database  # noqa: E402
from segmenti import auth  # noqa: E402
from segmenti.db import migrate  # noqa: E402
from segmenti.db.engine import Database  # noqa: E402
from segmenti.db.tables import contact_parameters, contacts  # noqa: E402
from segmenti.settings import Settings  # noqa: E402
from segmenti.timeutil import utcnow  # noqa: E402


def _values(shape: str, length: int, conditions: int) -> tuple[str, list[str]]:
    """The contacts' value, and each condition's (all different, all absent from it)."""
    needle = length - 1 if shape == "issue" else max(2, length // 2)
    # Distinct conditions: the last characters vary, so no database can reuse one answer.
    letters = "bcdefghijklmnopqrstuvwxyz"
    wanted = [
        "a" * (needle - 2) + letters[n % len(letters)] + letters[n // len(letters) % len(letters)]
        for n in range(conditions)
    ]
    return "a" * length, wanted


def _seed(db: Database, *, user_id: int, count: int, value: str) -> None:
    now = utcnow()
    with db.write() as session:
        session.execute(
            insert(contacts),
            [
                {
                    "user_id": user_id,
                    "name": "",
                    "phone_number": f"+3933{3000000 + n:07d}",
                    "custom_parameters": {"bio": value},
                    "country_code": "IT",
                    "continent_code": "EU",
                    "has_opted_out": False,
                    "datetime": now,
                }
                for n in range(count)
            ],
        )
        ids = session.execute(select(contacts.c.id).where(contacts.c.user_id == user_id))
        session.execute(
            insert(contact_parameters),
            [
                {"contact_id": contact_id, "user_id": user_id, "key": "bio", "value_folded": value}
                for contact_id in ids.scalars()
            ],
        )


def _filter_body(name: str, wanted: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "filters_custom_parameter_key": ["bio"] * len(wanted),
        "filters_custom_parameter_condition": ["not_contains"] * len(wanted),
        "filters_custom_parameter_value": wanted,
    }


# The other tenant's phone numbers, new for every contact of the whole run.
_numbers = itertools.count(1)


class OtherTenant(threading.Thread):
    """Creates contacts of the other user back to back, timing each, until stopped."""

    def __init__(self, port: int, api_key: str) -> None:
        super().__init__(daemon=True)
        self.client = http_client.Client(HOST, port, api_key)
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.statuses: dict[int, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            body = {"phone_number": f"+3934{next(_numbers):08d}", "custom_parameters": {"x": "1"}}
            elapsed, response = self.client.timed("POST", "/api/contacts", body)
            self.latencies_ms.append(elapsed)
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            time.sleep(0.02)


def _measure(server: Server, keys: tuple[str, str], method_path: tuple[str, str], body: Any) -> Any:
    hostile, other = keys
    writer = OtherTenant(server.port, other)
    writer.start()
    time.sleep(0.3)  # the other tenant's writes are flowing
    started = len(writer.latencies_ms)
    client = http_client.Client(HOST, server.port, hostile)
    elapsed, response = client.timed(*method_path, body)
    during = writer.latencies_ms[started:]
    writer.stop.set()
    writer.join()
    client.close()
    writer.client.close()
    report = {
        "status": response.status,
        "seconds": round(elapsed / 1000, 3),
        "other_tenant_writes": http_client.percentiles(during or [0.0]),
        "other_tenant_statuses": writer.statuses,
    }
    if response.status >= 300:
        report["answer"] = response.body.decode()[:300]
    return report, response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--conditions", type=int, default=50)
    parser.add_argument("--value-length", type=int, default=512)
    parser.add_argument("--shape", choices=("issue", "periodic"), default="issue")
    parser.add_argument("--database-url", default=os.environ.get("SEGMENTI_DATABASE_URL"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="segmenti-bench-") as scratch:
        if args.database_url and args.database_url.startswith("postgresql"):
            url, drop = fresh_database(args.database_url)
        else:
            url, drop = f"sqlite:///{Path(scratch) / 'segmenti.db'}", lambda: None
        settings = Settings(database_url=url, max_filter_conditions=max(50, args.conditions))
        db = Database(settings)
        server = None
        try:
            migrate.upgrade(db.engine)
            with db.write() as session:
                hostile_id, hostile_key = auth.create_user(session, name="hostile")
                _other_id, other_key = auth.create_user(session, name="other")
            value, wanted = _values(args.shape, args.value_length, args.conditions)
            _seed(db, user_id=hostile_id, count=args.contacts, value=value)
            os.environ["SEGMENTI_MAX_FILTER_CONDITIONS"] = str(settings.max_filter_conditions)
            server = Server(url)
            keys = (hostile_key, other_key)
            created, response = _measure(
                server, keys, ("POST", "/api/segments"), _filter_body("hostile", wanted)
            )
            results: dict[str, Any] = {"create": created}
            if response.status == 201:
                segment_id = response.json()["data"]["id"]
                results["update"], _ = _measure(
                    server,
                    keys,
                    ("POST", f"/api/segments/{segment_id}"),
                    _filter_body("hostile again", list(reversed(wanted))),
                )
        finally:
            if server is not None:
                server.stop()
            db.dispose()
            drop()
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(
        json.dumps(
            {
                "backend": backend,
                "contacts": args.contacts,
                "conditions": args.conditions,
                "value_length": args.value_length,
                "shape": args.shape,
                "load_average_1m": round(os.getloadavg()[0], 2),
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
