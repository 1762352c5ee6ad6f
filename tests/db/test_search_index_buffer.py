"""SQLite's search index buffers 16 MiB of a write's entries before writing a segment
(migration 0013_import_search_hashsize): at FTS5's default of 1 MiB an import batch
flushed and merged dozens of times, the index's main cost to an import (issue 19)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from segmenti.db import migrate, search_index
from segmenti.db.engine import Database
from tests.conftest import User


def _hashsize(db: Database) -> int | None:
    query = text("SELECT v FROM contact_search_config WHERE k = 'hashsize'")
    with db.engine.connect() as connection:
        value = connection.execute(query).scalar()
    return None if value is None else int(value)


def test_the_search_index_buffers_an_import_batch_in_memory(db: Database, alice: User) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite's FTS5 index (PostgreSQL's GIN index has its pending list)")
    assert _hashsize(db) == search_index.SQLITE_HASHSIZE
    body = "phone_number,name\n" + "".join(f"+3934{n:08d},Contact {n}\n" for n in range(3_000))
    response = alice.post(
        "/api/contacts/import", files={"file": ("contacts.csv", body.encode(), "text/csv")}
    )
    assert response.status_code == 200, response.text
    found = alice.get("/api/contacts?search=ntact 2999").json()
    assert [contact["name"] for contact in found["data"]] == ["Contact 2999"]
    assert alice.get("/api/contacts?search=3400002").json()["meta"]["total"] == 1_000


def test_downgrading_gives_fts5_its_default_back(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite only")
    migrate.downgrade(db.engine, "0012_import_parameters_cascade")
    assert _hashsize(db) == search_index.SQLITE_DEFAULT_HASHSIZE
    migrate.upgrade(db.engine)
    assert _hashsize(db) == search_index.SQLITE_HASHSIZE
