"""Connection settings the count maintenance and bulk imports rely on."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text

from segmenti.db.engine import WAL_AUTOCHECKPOINT, Database
from segmenti.settings import Settings
from tests.conftest import PG_URL


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL isolation levels")
def test_transactions_are_read_committed_whatever_the_server_default(database_url: str) -> None:
    # A server (or role) defaulting to serializable must not change what a write sees.
    url = make_url(database_url).update_query_dict(
        {"options": "-c default_transaction_isolation=serializable"}
    )
    db = Database(Settings(database_url=url.render_as_string(hide_password=False)))
    try:
        with db.write() as session:
            assert session.execute(text("SHOW default_transaction_isolation")).scalar_one() == (
                "serializable"
            )
            isolation = session.execute(text("SHOW transaction_isolation")).scalar_one()
            name = session.execute(text("SELECT current_setting('application_name')"))
            assert (isolation, name.scalar_one()) == ("read committed", "segmenti")
    finally:
        db.dispose()


def _sqlite(tmp_path: Path) -> Database:
    # With a query: the background checkpoints must still find the file.
    return Database(Settings(database_url=f"sqlite:///{tmp_path / 'bulk.db'}?timeout=20"))


def _pragmas(connection: Any) -> tuple[int, int]:
    foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
    autocheckpoint = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    return foreign_keys, autocheckpoint


def test_a_bulk_attached_write_leaves_its_pooled_connection_as_it_found_it(
    tmp_path: Path,
) -> None:
    # SQLite only (a file attached to the connection): the import's staged batches.
    db = _sqlite(tmp_path)
    stage = tmp_path / "stage.db"
    sqlite3.connect(stage).execute("CREATE TABLE t (x)").connection.commit()
    try:
        with (
            pytest.raises(RuntimeError),
            db.write_attached(schema="stage", path=stage, bulk=True) as session,
        ):
            connection = session.connection()
            assert _pragmas(connection) == (0, 0)
            session.execute(text("INSERT INTO stage.t VALUES (1)"))
            raise RuntimeError("the batch failed")
        # Every connection the pool holds (it made one) checks foreign keys again, and
        # checkpoints at commit; none has the file attached any more.
        with db.engine.connect() as first, db.engine.connect() as second:
            for connection in (first, second):
                assert _pragmas(connection) == (1, WAL_AUTOCHECKPOINT)
                names = connection.exec_driver_sql("PRAGMA database_list").all()
                assert [row[1] for row in names] == ["main"]
        assert sqlite3.connect(stage).execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        db.dispose()


def test_a_failed_bulk_write_raises_its_own_error_when_detaching_fails_too(
    tmp_path: Path,
) -> None:
    db = _sqlite(tmp_path)
    stage = tmp_path / "stage.db"
    with sqlite3.connect(stage) as setup:
        setup.execute("CREATE TABLE t (x)")
        setup.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    try:
        with (
            pytest.raises(ValueError, match="the batch failed"),
            db.write_attached(schema="stage", path=stage, bulk=True) as session,
        ):
            # A statement still open on the attached file: DETACH then fails ("locked"),
            # and the connection is discarded rather than pooled with the file attached.
            driver = session.connection().connection.driver_connection
            assert driver is not None
            still_open = driver.execute("SELECT x FROM stage.t")
            assert still_open.fetchone() == (1,)
            raise ValueError("the batch failed")
        with db.engine.connect() as connection:
            assert _pragmas(connection) == (1, WAL_AUTOCHECKPOINT)
            names = connection.exec_driver_sql("PRAGMA database_list").all()
            assert [row[1] for row in names] == ["main"]
    finally:
        db.dispose()


def _rows_in_database_file(db_file: Path, copy: Path) -> int:
    """Rows of table t in the database file alone, as if its log were lost."""
    shutil.copyfile(db_file, copy)
    connection = sqlite3.connect(copy)
    try:
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        connection.close()


FILL = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
    "INSERT INTO t SELECT i FROM n"
)


def test_background_checkpoints_copy_bulk_writes_into_the_database_file(
    tmp_path: Path,
) -> None:
    db = _sqlite(tmp_path)
    stage = tmp_path / "stage.db"
    sqlite3.connect(stage).close()
    try:
        with db.write() as session:
            session.execute(text("CREATE TABLE t (x)"))
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        with db.write_attached(schema="stage", path=stage, bulk=True) as session:
            session.execute(FILL)
        # A bulk commit leaves its pages in the log...
        assert _rows_in_database_file(tmp_path / "bulk.db", tmp_path / "copy.db") == 0
        with (
            db.background_checkpoints(every=0.01),
            db.write_attached(schema="stage", path=stage, bulk=True) as session,
        ):
            session.execute(FILL)
        # ...which the thread copies into the database file.
        assert _rows_in_database_file(tmp_path / "bulk.db", tmp_path / "copy.db") == 10_000
    finally:
        db.dispose()
