"""Contact search (issue 19): `GET /api/contacts?search=` at scale, two tenants, and what
the search index costs the writes.

    .venv/bin/python -m bench.bench_search [--contacts 1000000] [--small 10000]
        [--import-contacts 100000] [--reps 30]
    SEGMENTI_DATABASE_URL=postgresql+psycopg://... for PostgreSQL (a new database on it)

Standalone, it loads `--contacts` contacts of the benchmark's data (bench/data.py: names
`Contact <id>`, a mostly Italian number base) for a big tenant; `make bench` calls
`measure` on its own database instead. Then:

* search p50 and p95 through the HTTP API for texts of 4+ characters matching from none
  to about 80,000 contacts, beside the same search read by a scan of the user's
  contacts (`contacts/search.py: scan_where`, the "naive" column);
* the same searches by a second tenant of `--small` contacts, while the big one holds
  the matches (one tenant's contacts must not slow another's search);
* the index's cost, last, because it drops and rebuilds the index: contact creates and
  renames through the API, and `segmenti contacts import` of `--import-contacts` new
  contacts, with the index and then without it (SQLite: the triggers dropped;
  PostgreSQL: the GIN index dropped), in the same database and run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, func, select

from bench import data, http_client
from bench.bench_import import write_csv
from segmenti import auth
from segmenti.contacts import search
from segmenti.db import migrate, search_index
from segmenti.db.engine import Database
from segmenti.db.tables import contacts
from segmenti.db.tenant import Tenant
from segmenti.settings import Settings

SEGMENTI = str(Path(sys.executable).parent / "segmenti")


def search_texts() -> dict[str, str]:
    """label -> text, from a match or two to about 8% of the contacts."""
    prefixes = data._example_prefixes()
    british = prefixes["GB"][0]  # about 8% of the numbers
    italian = prefixes["IT"][0]
    return {
        "number_4_digits": "3934",  # the issue's
        "name_exact": "Contact 999999",  # the issue's
        "number_italian_way": f"00{italian[1:3]} {italian[3:]} 12",
        "number_80k": f"{british[:3]} {british[3:]}",
        "name_11k": "ntact 99",
        "no_match": "zzzz",
    }


def targets() -> dict[str, tuple[str, Callable[[dict[str, Any]], bool]]]:
    """bench/run.py's targets for these items (issue 19)."""
    fast: tuple[str, Callable[[dict[str, Any]], bool]] = (
        "p50 < 50 ms",
        lambda r: r["p50_ms"] < 50,
    )
    cheap: tuple[str, Callable[[dict[str, Any]], bool]] = (
        "<= 25% slower than without the index",
        lambda r: r["slower_pct"] <= 25,
    )
    searches = {
        f"search_{label}_{name}": fast
        for label in ("big", "small_tenant")
        for name in search_texts()
    }
    return searches | {
        f"search_index_cost_{kind}": cheap for kind in ("create", "update", "import")
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    return http_client.percentiles(samples)


def _search(client: http_client.Client, text: str) -> tuple[float, int]:
    path = "/api/contacts?" + urlencode({"search": text, "results_per_page": 25})
    elapsed, response = client.timed("GET", path)
    assert response.status == 200, response.body[:300]
    return elapsed, int(response.json()["meta"]["total"])


def _scan_ms(engine: Engine, *, user_id: int, text: str, reps: int) -> float:
    """The same count and first page read by a scan of the user's contacts."""
    wanted = search.parse(text)
    assert wanted is not None
    where = search.scan_where(wanted)
    mine = Tenant(user_id).owns(contacts)
    count = select(func.count()).select_from(contacts).where(mine, where)
    page = select(contacts.c.id).where(mine, where).order_by(contacts.c.id.desc())
    samples = []
    with engine.connect() as connection:
        for _ in range(reps):
            start = time.perf_counter()
            connection.execute(count).scalar_one()
            connection.execute(page.limit(25)).all()
            samples.append((time.perf_counter() - start) * 1000)
    return _percentiles(samples)["p50_ms"]


def measure_searches(
    client: http_client.Client, engine: Engine, *, user_id: int, label: str, reps: int
) -> dict[str, Any]:
    results = {}
    for name, text in search_texts().items():
        samples = []
        total = 0
        for _ in range(reps):
            elapsed, total = _search(client, text)
            samples.append(elapsed)
        results[f"search_{label}_{name}"] = {
            **_percentiles(samples),
            "text": text,
            "matches": total,
            "naive": {
                "p50_ms": _scan_ms(engine, user_id=user_id, text=text, reps=max(2, reps // 10)),
                "how": "the same count and page by a scan of the user's contacts",
            },
        }
    return results


def add_small_tenant(
    db: Database, *, count: int, first_id: int, rng: random.Random, taken: set[str]
) -> tuple[int, str]:
    with db.write() as session:
        user_id, api_key = auth.create_user(session, name="bench small tenant")
    people = [
        dataclasses.replace(contact, id=contact.id + first_id)
        for contact in data.make_contacts(rng, count, taken=taken)
    ]
    data.load_contacts(db.engine, user_id=user_id, contact_list=people)
    return user_id, api_key


def set_index(engine: Engine, *, on: bool) -> None:
    """Drops the search index (SQLite: its triggers; the FTS5 table is left as it is) or
    builds it back (a no-op when it is there). The bench's writes made without it are
    not searched afterwards."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            statements = search_index.SQLITE_CREATE[1:4] if on else search_index.SQLITE_DROP[:3]
            if on:
                statements = [
                    s.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS") for s in statements
                ]
        else:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            statements = search_index.PG_CREATE if on else search_index.PG_DROP
        for statement in statements:
            connection.exec_driver_sql(statement)
        connection.commit()


def _checkpoint(engine: Engine) -> None:
    """SQLite: the WAL written so far (1M contacts loaded) checkpointed and emptied, so
    that no phase pays for an earlier one's writes."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _writes(client: http_client.Client, rng: random.Random, taken: set[str], reps: int) -> dict:
    created, updated = [], []
    numbers = [info.e164 for info in data.phone_numbers(rng, reps, taken=taken)]
    ids = []
    for e164 in numbers:
        elapsed, response = client.timed(
            "POST", "/api/contacts", {"phone_number": e164, "name": f"Bench {e164}"}
        )
        assert response.status == 201, response.body[:300]
        created.append(elapsed)
        ids.append(response.json()["data"]["id"])
    for contact_id in ids:
        body = {"name": f"Renamed {rng.randrange(10**6)}"}
        elapsed, response = client.timed("POST", f"/api/contacts/{contact_id}", body)
        assert response.status == 200, response.body[:300]
        updated.append(elapsed)
    return {"create": _percentiles(created)["p50_ms"], "update": _percentiles(updated)["p50_ms"]}


def _import_ms(database_url: str, db: Database, csv_path: Path, name: str) -> float:
    with db.write() as session:
        user_id, _ = auth.create_user(session, name=name)
    env = {**os.environ, "SEGMENTI_DATABASE_URL": database_url}
    command = [SEGMENTI, "contacts", "import", str(csv_path), "--user", str(user_id), "--json"]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def measure_write_cost(
    db: Database,
    *,
    api_key: str,
    database_url: str,
    rng: random.Random,
    taken: set[str],
    reps: int,
    import_contacts: int,
) -> dict[str, Any]:
    """Writes with the index, then without it, each phase on a server started for it
    (a schema change under a running server slowed its later writes 2-5x, whichever
    way the index went), after a warm-up and from a checkpoint (the load's WAL must not
    weigh on the first phase); the index is built back at the end."""
    from bench.run import HOST, Server

    with tempfile.TemporaryDirectory(prefix="segmenti-bench-search-") as tmp:
        csv_path = Path(tmp) / "contacts.csv"
        write_csv(csv_path, import_contacts, seed=rng.randrange(10**6))
        phases = []
        for on in (True, False):
            set_index(db.engine, on=on)
            server = Server(database_url)
            client = http_client.Client(HOST, server.port, api_key)
            try:
                _writes(client, rng, taken, reps)  # warm-up, not counted
                _checkpoint(db.engine)
                phase = _writes(client, rng, taken, reps)
            finally:
                client.close()
                server.stop()
            phase["import"] = _import_ms(database_url, db, csv_path, f"import, index {on}")
            phases.append(phase)
        set_index(db.engine, on=True)
    with_index, without = phases
    results = {}
    for kind, how in (
        ("create", "POST /api/contacts, p50"),
        ("update", "POST /api/contacts/{id} renaming, p50"),
        ("import", f"segmenti contacts import of {import_contacts:,} new contacts, once"),
    ):
        key = "ms" if kind == "import" else "p50_ms"
        results[f"search_index_cost_{kind}"] = {
            key: with_index[kind],
            "floor": {key: without[kind], "how": "the same without the index"},
            "slower_pct": round((with_index[kind] / without[kind] - 1) * 100, 1),
            "how": how,
        }
    return results


def measure(
    client: http_client.Client,
    db: Database,
    *,
    api_key: str,
    database_url: str,
    big_user_id: int,
    big_contacts: int,
    small_contacts: int,
    import_contacts: int,
    reps: int,
    rng: random.Random,
    taken: set[str],
) -> dict[str, Any]:
    """Every search item on a database whose big tenant is loaded (`make bench` calls
    this last: its write measurements drop and rebuild the index)."""
    results = measure_searches(client, db.engine, user_id=big_user_id, label="big", reps=reps)
    small_id, small_key = add_small_tenant(
        db, count=small_contacts, first_id=big_contacts + 1_000_000, rng=rng, taken=taken
    )
    small_client = http_client.Client(client.host, client.port, small_key)
    try:
        results |= measure_searches(
            small_client, db.engine, user_id=small_id, label="small_tenant", reps=reps
        )
    finally:
        small_client.close()
    results |= measure_write_cost(
        db,
        api_key=api_key,
        database_url=database_url,
        rng=rng,
        taken=taken,
        reps=reps,
        import_contacts=import_contacts,
    )
    return results


def main() -> None:
    from bench.run import HOST, Server, fresh_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000, help="the second tenant's")
    parser.add_argument("--import-contacts", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    load = round(os.getloadavg()[0], 2)
    database_url, drop = fresh_database(os.environ.get("SEGMENTI_DATABASE_URL"))
    # No statement limit: rebuilding the indexes after loading 1M contacts takes longer
    # than the server's 30 s on a busy machine.
    db = Database(Settings(database_url=database_url), statement_timeout_seconds=0)
    try:
        migrate.upgrade(db.engine)
        rng = random.Random(args.seed)
        taken: set[str] = set()
        with db.write() as session:
            user_id, api_key = auth.create_user(session, name="bench")
        start = time.perf_counter()
        people = list(data.make_contacts(rng, args.contacts, taken=taken))
        data.load_contacts(db.engine, user_id=user_id, contact_list=people)
        print(f"loaded {args.contacts:,} contacts in {time.perf_counter() - start:.0f} s")
        server = Server(database_url)
        client = http_client.Client(HOST, server.port, api_key)
        try:
            results = measure(
                client,
                db,
                api_key=api_key,
                database_url=database_url,
                big_user_id=user_id,
                big_contacts=args.contacts,
                small_contacts=args.small,
                import_contacts=args.import_contacts,
                reps=args.reps,
                rng=rng,
                taken=taken,
            )
        finally:
            client.close()
            server.stop()
        backend = db.engine.dialect.name
    finally:
        db.dispose()
        if not args.keep:
            drop()
    print(
        json.dumps(
            {
                "backend": backend,
                "contacts": args.contacts,
                "load_average_1m": {"start": load, "end": round(os.getloadavg()[0], 2)},
                "results": results,
            },
            indent=1,
        )
    )
    print(table(results))


def table(results: dict[str, Any]) -> str:
    lines = [
        "| item | text | matches | p50 | p95 | scan p50 | with / without index |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        figure = result.get("p50_ms", result.get("ms"))
        if name.startswith("search_index_cost"):
            floor = result["floor"].get("p50_ms", result["floor"].get("ms"))
            lines.append(
                f"| {name} | - | - | {figure:.1f} ms | - | - | "
                f"{floor:.1f} ms without: {result['slower_pct']:+.1f}% |"
            )
        else:
            lines.append(
                f"| {name} | `{result['text']}` | {result['matches']:,} | {figure:.1f} ms | "
                f"{result['p95_ms']:.1f} ms | {result['naive']['p50_ms']:.1f} ms | - |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
