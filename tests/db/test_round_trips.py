"""What a request costs in round trips before its own work: the key's look-up outside
any transaction, and the pool's ping only for connections idle for a while."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from segmenti.db import engine as engine_module
from segmenti.db.engine import Database
from segmenti.settings import Settings
from tests.conftest import PG_URL

pg_only = pytest.mark.skipif(not PG_URL, reason="PostgreSQL's transactions and pool")


def _transaction_status(session: object) -> str:
    driver = session.connection().connection.driver_connection  # type: ignore[attr-defined]
    return str(driver.info.transaction_status.name)


@pg_only
def test_a_look_up_runs_outside_any_transaction_and_leaves_the_connection_transactional(
    database_url: str,
) -> None:
    db = Database(Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0))
    try:
        with db.look_up() as session:
            session.execute(text("SELECT 1")).scalar_one()
            # No BEGIN was sent: the read was the statement's one round trip.
            assert _transaction_status(session) == "IDLE"
        # The same (only) pooled connection, back in READ COMMITTED transactions.
        with db.read() as session:
            session.execute(text("SELECT 1")).scalar_one()
            assert _transaction_status(session) == "INTRANS"
            isolation = session.execute(text("SHOW transaction_isolation")).scalar_one()
            assert isolation == "read committed"
    finally:
        db.dispose()


@pg_only
def test_a_request_is_authenticated_outside_any_transaction(
    alice: object, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = Database.look_up

    def watched_look_up(self: Database):  # type: ignore[no-untyped-def]
        seen.append("look_up")
        return original(self)

    monkeypatch.setattr(Database, "look_up", watched_look_up)
    assert alice.get("/api/segments").status_code == 200  # type: ignore[attr-defined]
    assert seen == ["look_up"]


def _backend_pid(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pg_only
def test_a_connection_dropped_while_idle_is_replaced_not_failed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0))
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        dropped = _backend_pid(db)
        with admin.connect() as connection:  # as a server restart would
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        # Idle for longer than the threshold, without waiting a second in the test.
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(db) != dropped
    finally:
        admin.dispose()
        db.dispose()


@pg_only
def test_a_connection_handed_back_within_the_second_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0))
    pings: list[object] = []
    try:
        _backend_pid(db)
        monkeypatch.setattr(db.engine.dialect, "do_ping", pings.append)
        _backend_pid(db)
        assert pings == []
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        _backend_pid(db)
        assert len(pings) == 1
    finally:
        db.dispose()
