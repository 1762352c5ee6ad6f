"""The same import file gives the same database on every backend: the session's database
(PostgreSQL under `SEGMENTI_TEST_DATABASE_URL`, whose batches go through COPY and its own
statements) and a fresh SQLite database, side by side in one test. Compared: the report
(created, updated, invalid rows and their reasons), every contact (number as normalized,
name, parameters, country, continent, opt-out), every parameter index row (folded value,
number) and every segment's count, which must also equal a count from scratch."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segmenti import auth
from segmenti.contacts import csv_io, importer
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters, contacts, segments
from segmenti.db.tenant import Tenant
from segmenti.forms import Params
from segmenti.segments.forms import segment_input
from segmenti.segments.service import create_segment
from segmenti.settings import Settings
from tests.counting import stale_counts

# Wide and sparse: the first 32 keys get columns of their own in the staged batch, the
# rest are staged one row per value (staging.WIDE_KEYS); both ways are compared.
SPARSE_KEYS = [f"extra_{n:02d}" for n in range(36)]
KEYS = ["plan", "age", "city", *SPARSE_KEYS]

SEGMENTS = [
    {"name": "pro", "filters_custom_parameter_key": ["plan"],
     "filters_custom_parameter_condition": ["exact"], "filters_custom_parameter_value": ["PRO"]},
    {"name": "older in Italy", "filters_custom_parameter_key": ["age"],
     "filters_custom_parameter_condition": ["bigger_than"],
     "filters_custom_parameter_value": ["40"], "filters_countries[]": ["IT"]},
    {"name": "city starts with mi", "filters_custom_parameter_key": ["city"],
     "filters_custom_parameter_condition": ["starts_with"],
     "filters_custom_parameter_value": ["mi"], "filters_continents[]": ["EU"]},
    {"name": "sparse key set", "filters_custom_parameter_key": ["extra_35"],
     "filters_custom_parameter_condition": ["not_exact"], "filters_custom_parameter_value": ["x"]},
    {"name": "picked", "type": "bulk", "phone_numbers": "+393330000001\n+393330000002"},
]  # fmt: skip


def _number(index: int) -> str:
    """Numbers as people type them: E.164, 00 and spaces, a space after the prefix."""
    e164 = f"+39333{index:07d}" if index % 3 else f"+49151{index:08d}"
    if index % 5 == 1:
        return "00" + e164[1:3] + " " + e164[3:6] + " " + e164[6:]
    if index % 5 == 2:
        return e164[:3] + " " + e164[3:]
    return e164


def _file(first: int, count: int, *, variant: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_io.export_header(KEYS))
    for index in range(first, first + count):
        plan = ["free", "Pro", "PRO ", "business"][(index + variant) % 4]
        age = ["", "41", "39.5", "not a number", "70"][(index * 7 + variant) % 5]
        city = ["Milano", "MILANO", "Roma", "", "Mi"][(index + variant) % 5]
        sparse = [
            f"v{index % 4}" if (index + n + variant) % 9 == 0 else ""
            for n in range(len(SPARSE_KEYS))
        ]
        opted = ["0", "1", ""][(index + variant) % 3]
        writer.writerow(
            [_number(index), f"Name {index} {variant}", opted, plan, age, city, *sparse]
        )
        if index % 11 == 0:  # a repeat later in the file: the last row wins
            writer.writerow([_number(index), f"Again {index}", "", "Pro", "99", "", *[""] * 36])
        if index % 13 == 0:  # bad rows, reported with their line and reason
            writer.writerow(["+39 not a number", "Bad", "0", "free", "", "", *[""] * 36])
            writer.writerow(["+393331234567", "Bad opt-out", "perhaps", "", "", "", *[""] * 36])
    return out.getvalue()


def _rows(text: str) -> Iterator[csv_io.Row]:
    yield from csv_io.CsvReader(io.StringIO(text, newline=""))


def _import_twice(db: Database, user_id: int) -> list[dict[str, Any]]:
    """A first import into the (nearly) empty account, then a second file that updates
    most contacts and adds some, in small batches."""
    with db.write() as session:
        for body in SEGMENTS:
            create_segment(
                session, user_id=user_id, data=segment_input(Params.from_json(body), db.settings)
            )
    reports = []
    for first, count, variant, batch_size in ((1, 120, 0, 40), (60, 120, 1, 33)):
        text = _file(first, count, variant=variant)
        report = importer.import_contacts(
            db, user_id=user_id, open_rows=lambda text=text: _rows(text), batch_size=batch_size
        )
        reports.append(report.as_dict())
    return reports


def _state(db: Database, user_id: int) -> dict[str, Any]:
    tenant = Tenant(user_id)
    with db.read() as session:
        held = session.execute(
            tenant.select(
                contacts.c.id,
                contacts.c.phone_number,
                contacts.c.name,
                contacts.c.custom_parameters,
                contacts.c.country_code,
                contacts.c.continent_code,
                contacts.c.has_opted_out,
            )
        ).all()
        number_of = {row.id: row.phone_number for row in held}
        indexed = session.execute(
            tenant.select(
                contact_parameters.c.contact_id,
                contact_parameters.c.key,
                contact_parameters.c.value_folded,
                contact_parameters.c.value_number,
            )
        ).all()
        totals = session.execute(tenant.select(segments.c.name, segments.c.total_contacts)).all()
    return {
        "contacts": {
            row.phone_number: (
                row.name,
                row.custom_parameters,
                row.country_code,
                row.continent_code,
                bool(row.has_opted_out),
            )
            for row in held
        },
        "parameters": sorted(
            (number_of[row.contact_id], row.key, row.value_folded, row.value_number)
            for row in indexed
        ),
        "totals": dict(totals),
    }


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(Settings(database_url=f"sqlite:///{tmp_path / 'side-by-side.db'}"))
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


def _user(db: Database) -> int:
    with db.write() as session:
        user_id, _key = auth.create_user(session, name="Acme")
    return user_id


def test_an_import_writes_the_same_on_this_backend_as_on_sqlite(
    database_url: str, sqlite_db: Database
) -> None:
    db = Database(Settings(database_url=database_url))
    try:
        user_id = _user(db)
        reports = _import_twice(db, user_id)
        state = _state(db, user_id)
        assert stale_counts(db, user_id) == {}
    finally:
        db.dispose()
    sqlite_user = _user(sqlite_db)
    assert _import_twice(sqlite_db, sqlite_user) == reports
    assert _state(sqlite_db, sqlite_user) == state
    assert stale_counts(sqlite_db, sqlite_user) == {}

    # What the file says, checked on its own, so that two backends wrong the same way
    # fail too.
    first, second = reports
    repeats = len(range(11, 121, 11))
    bad = 2 * len(range(13, 121, 13))
    # The bulk segment made the contacts of its two numbers before the import.
    assert (first["rows"], first["created"], first["updated"]) == (120 + repeats, 118, repeats + 2)
    assert first["invalid"] == bad
    assert {bad_row["reason"] for bad_row in first["invalid_rows"]} == {
        "phone_number: only digits, spaces, dots, dashes and brackets are allowed",
        "has_opted_out: must be 1/0, true/false or yes/no",
    }
    # 60 to 120 exist, 121 to 179 are new; repeats of 66 to 176.
    repeats = len(range(66, 180, 11))
    assert (second["created"], second["updated"]) == (59, 61 + repeats)
    held = state["contacts"]
    assert len(held) == 179
    # 00 and spaces normalized; the repeat's parameters replaced the row's, its empty
    # opt-out cell left the earlier row's (empty: not opted out).
    assert held["+393330000011"] == ("Again 11", {"plan": "Pro", "age": "99"}, "IT", "EU", False)
    assert held["+4915100000060"][2:] == ("DE", "EU", True)
    assert ("+393330000001", "plan", "pro", None) in state["parameters"]
    assert ("+393330000001", "age", "39.5", 39.5) in state["parameters"]
    assert any(key == "extra_35" for _number, key, _value, _n in state["parameters"])
