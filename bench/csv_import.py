"""`make bench`'s CSV import item: one generated file imported by `segmenti contacts
import` into a fresh database of the backend under test and, in the same run, into a
throwaway SQLite database, so the two rates are measured on the same file at the same
machine load (issue 12: PostgreSQL's import at least 80% of SQLite's).

The file holds the bench's own contacts (`bench/data.py`: five custom parameters, 13
countries), every tenth number typed as `00` and digits with spaces, every tenth as
the national prefix with a space, so the importer normalizes as users' files need.

On PostgreSQL the item also measures the floor in the same run: the same normalized
rows COPYed into a staging table and moved into `contacts` and `contact_parameters`
with two INSERT ... SELECT statements, in a fresh database with the product's schema
(no validation, no upsert, no counts): what the server itself costs for these rows.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from bench import data
from segmenti.contacts import csv_io
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.membership.filters import fold, parse_number
from segmenti.settings import Settings

KEYS = ["plan", "age", "city", "language", "signup_date"]


def _typed(e164: str, index: int) -> str:
    """The number as a person might type it: +E.164, 00 and spaces, or with a space."""
    if index % 10 == 3:
        return "00" + e164[1:3] + " " + e164[3:6] + " " + e164[6:]
    if index % 10 == 7:
        return e164[:3] + " " + e164[3:]
    return e164


def write_csv(path: Path, contact_list: list[data.Contact]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(csv_io.export_header(KEYS))
        for index, contact in enumerate(contact_list):
            writer.writerow(
                [
                    _typed(contact.phone.e164, index),
                    f"Contact {contact.id}",
                    int(contact.has_opted_out),
                    *[contact.parameters.get(key, "") for key in KEYS],
                ]
            )


def _import(executable: str, url: str, source: Path) -> dict[str, Any]:
    """`segmenti users create` then `segmenti contacts import`, each a process, into
    the database `url` names; the import is timed end to end."""
    env = {**os.environ, "SEGMENTI_DATABASE_URL": url}
    made = subprocess.run(
        [executable, "users", "create", "import bench", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    user_id = json.loads(made.stdout)["user_id"]
    command = [executable, "contacts", "import", str(source), "--user", str(user_id), "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    report = json.loads(done.stdout)
    return {"s": elapsed, "created": report["created"], "invalid": report["invalid"]}


def _pg_floor(url: str, contact_list: list[data.Contact]) -> dict[str, float]:
    """Bare COPY of the normalized rows into a staging table, then INSERT ... SELECT into
    the product's tables (fresh database, same schema and indexes), one transaction."""
    db = Database(Settings(database_url=url))
    migrate.upgrade(db.engine)
    db.dispose()
    engine = create_engine(url)
    rows = []
    for contact in contact_list:
        parameters = [contact.parameters.get(key) for key in KEYS]
        cells: list[Any] = []
        for value in parameters:
            number = parse_number(value) if value is not None else None
            cells += [fold(value) if value is not None else None, number]
        rows.append(
            (
                contact.phone.e164,
                f"Contact {contact.id}",
                contact.has_opted_out,
                json.dumps(contact.parameters),
                contact.phone.country_code,
                contact.phone.continent_code,
                *cells,
            )
        )
    value_columns = ", ".join(f"value_{n} text, number_{n} float8" for n in range(len(KEYS)))
    # Every key's rows in one statement, in primary key order (as the importer does).
    given = ", ".join(f"('{key}', s.value_{n}, s.number_{n})" for n, key in enumerate(KEYS))
    parameters_select = (
        "SELECT c.id, p.key, 1, p.value, p.number FROM floor_stage s "  # noqa: S608
        "JOIN contacts c ON c.user_id = 1 AND c.phone_number = s.phone_number "
        f"CROSS JOIN LATERAL (VALUES {given}) AS p (key, value, number) "
        "WHERE p.value IS NOT NULL ORDER BY c.id, p.key"
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO users (id, name, datetime) VALUES (1, 'floor', now())"
        )
    start = time.perf_counter()
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TEMPORARY TABLE floor_stage (phone_number text, name text, "
            "has_opted_out boolean, custom_parameters jsonb, country_code text, "
            f"continent_code text, {value_columns}) ON COMMIT DROP"
        )
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy("COPY floor_stage FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        copied = time.perf_counter()
        connection.exec_driver_sql(
            "INSERT INTO contacts (user_id, name, phone_number, custom_parameters, "
            "continent_code, country_code, has_opted_out, datetime) SELECT 1, name, "
            "phone_number, custom_parameters, continent_code, country_code, has_opted_out, "
            "now() FROM floor_stage"
        )
        connection.exec_driver_sql("ANALYZE floor_stage (phone_number)")
        connection.exec_driver_sql("ANALYZE contacts")
        connection.exec_driver_sql(
            "INSERT INTO contact_parameters (contact_id, key, user_id, value_folded, "
            "value_number) " + parameters_select
        )
    end = time.perf_counter()
    engine.dispose()
    return {"s": end - start, "copy_s": copied - start}


def measure_import(
    *,
    contact_list: list[data.Contact],
    backend_url: str,
    fresh_database: Callable[..., tuple[str, Callable[[], None]]],
    workdir: Path,
) -> dict[str, Any]:
    """The `csv_import` item: rows/s on the backend under test and on SQLite, same file."""
    executable = shutil.which("segmenti", path=str(Path(sys.executable).parent))
    assert executable
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "bench-import.csv"
    write_csv(source, contact_list)
    count = len(contact_list)
    result: dict[str, Any] = {"rows": count, "file_mib": round(source.stat().st_size / 2**20, 1)}
    try:
        url, drop = fresh_database(backend_url, workdir / "import.db")
        try:
            backend = _import(executable, url, source)
        finally:
            drop()
        assert backend["created"] == count and not backend["invalid"], backend
        if backend_url.startswith("postgresql"):
            sqlite_url, _ = fresh_database(None, workdir / "import-sqlite.db")
            sqlite = _import(executable, sqlite_url, source)
            assert sqlite["created"] == count and not sqlite["invalid"], sqlite
        else:
            sqlite = backend
        result.update(
            ms=round(backend["s"] * 1000, 1),
            rows_per_s=round(count / backend["s"]),
            sqlite={"ms": round(sqlite["s"] * 1000, 1), "rows_per_s": round(count / sqlite["s"])},
            how="segmenti contacts import FILE --user ID (a process, end to end), into an "
            "empty account of a fresh database; SQLite: the same file, same run",
        )
        result["vs_sqlite"] = round(result["rows_per_s"] / result["sqlite"]["rows_per_s"], 2)
        if backend_url.startswith("postgresql"):
            url, drop = fresh_database(backend_url)
            try:
                floor = _pg_floor(url, contact_list)
            finally:
                drop()
            result["floor"] = {
                "ms": round(floor["s"] * 1000, 1),
                "rows_per_s": round(count / floor["s"]),
                "copy_ms": round(floor["copy_s"] * 1000, 1),
                "how": "COPY of the normalized rows into a staging table, then INSERT ... "
                "SELECT into contacts and contact_parameters (fresh database, one transaction)",
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"csv_import": result}


def table_row(result: dict[str, Any], target: tuple[str, Any]) -> str:
    """The item's line in bench/run.py's table: rows/s, the floor's, SQLite's."""
    description, check = target
    floor = result.get("floor")
    floor_rate = f"{floor['rows_per_s']:,} rows/s" if floor else "-"
    vs_floor = f"{result['rows_per_s'] / floor['rows_per_s']:.2f}x" if floor else "-"
    sqlite = result["sqlite"]
    return (
        f"| csv_import ({result['rows']:,} rows) | {result['rows_per_s']:,} rows/s "
        f"({result['ms'] / 1000:.1f} s) | - | {floor_rate} | - | {vs_floor} | "
        f"SQLite, same file, same run: {sqlite['rows_per_s']:,} rows/s "
        f"({result['vs_sqlite']:.2f}x) | {description}: {'met' if check(result) else 'MISSED'} |"
    )


def main() -> None:
    """This item alone: `python -m bench.csv_import --contacts 200000`."""
    import argparse
    import random

    from bench.run import ROOT, fresh_database

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    contact_list = list(data.make_contacts(random.Random(args.seed), args.contacts, taken=set()))
    result = measure_import(
        contact_list=contact_list,
        backend_url=os.environ.get("SEGMENTI_DATABASE_URL", "sqlite://"),
        fresh_database=fresh_database,
        workdir=ROOT / "var" / "bench" / "import",
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
