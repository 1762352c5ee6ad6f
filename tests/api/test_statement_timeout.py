"""The statement timeout (issue 12, item 2): a request's statement that runs past
SEGMENTI_STATEMENT_TIMEOUT_SECONDS is cancelled by the database (PostgreSQL) or
interrupted (SQLite) and answered 503 "Query took too long", nothing is saved, and the
connection, the pool and the write lock are free afterwards. The commands have their
own limit, none by default."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import TextClause, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from segmenti.cli import support as cli_support
from segmenti.contacts import importer
from segmenti.db.engine import Database, timed_out
from segmenti.segments import service
from segmenti.settings import Settings
from tests.conftest import User

# A limit the slow statements below overrun many times over.
TIMEOUT = 0.5


def slow_statement(dialect: str, seconds: float) -> TextClause:
    """A statement that keeps the database busy for about `seconds` (at least)."""
    if dialect == "postgresql":
        return text("SELECT pg_sleep(:seconds)").bindparams(seconds=seconds)
    # SQLite: about 6 million steps of a recursive CTE a second on this machine, and
    # nothing sleeps: the statement is working, as a hostile count would be.
    return text(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :steps)"
        " SELECT count(*) FROM c"
    ).bindparams(steps=int(seconds * 6_000_000))


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app of this module's `client`, `db` and `alice` (tests/conftest.py) answers
    under a short statement timeout."""
    return Settings(database_url=database_url, statement_timeout_seconds=TIMEOUT)


def test_a_statement_past_the_timeout_answers_503_and_leaves_the_database_free(
    alice: User, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = db.engine.dialect.name
    create = service.create_segment

    def create_then_stall(session: Session, **kwargs: Any) -> int:
        # Inside the segment's write transaction, after its insert: on SQLite it holds
        # the database's write lock while it stalls.
        segment_id = create(session, **kwargs)
        session.execute(slow_statement(dialect, 30))
        return segment_id

    monkeypatch.setattr(service, "create_segment", create_then_stall)
    started = time.monotonic()
    response = alice.post("/api/segments", json={"name": "stalled", "filters_countries": ["IT"]})
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.text
    (error,) = response.json()["errors"]
    assert error["title"] == "Query took too long"
    assert "0.5 s" in error["detail"] and "nothing was saved" in error["detail"]
    assert response.headers["Retry-After"] == "1"
    assert elapsed < 5, f"answered after {elapsed:.1f} s"

    if dialect == "postgresql":
        # PostgreSQL cancelled the statement itself: no backend is still sleeping.
        with db.engine.connect() as connection:
            sleeping = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                    " AND query LIKE 'SELECT pg_sleep%'"
                )
            ).scalar_one()
        assert sleeping == 0

    monkeypatch.setattr(service, "create_segment", create)
    # Nothing of the request was saved, and every connection of the pool is usable: as
    # many requests as the pool holds, each writing (so the write lock is free too).
    assert alice.get("/api/segments").json()["meta"]["total"] == 0
    started = time.monotonic()
    for n in range(db.settings.db_pool_size + 2):
        alice.make_contact(f"+3934712345{n:02d}")
    assert time.monotonic() - started < 5
    assert alice.make_segment(name="after", filters_countries=["IT"])
    assert alice.get("/api/segments").json()["meta"]["total"] == 1


def test_a_read_past_the_timeout_is_cut_too(
    alice: User, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = db.engine.dialect.name
    listing = service.list_segments

    def list_slowly(session: Session, **kwargs: Any) -> Any:
        session.execute(slow_statement(dialect, 30))
        return listing(session, **kwargs)

    monkeypatch.setattr(service, "list_segments", list_slowly)
    response = alice.get("/api/segments")
    assert response.status_code == 503
    assert response.json()["errors"][0]["title"] == "Query took too long"
    monkeypatch.setattr(service, "list_segments", listing)
    assert alice.get("/api/segments").status_code == 200


def test_a_statement_within_the_timeout_is_left_alone(database_url: str) -> None:
    # A limit far above the statement's work, so a loaded machine (the SQLite statement
    # is CPU-bound) cannot stretch it past the limit; the watchdog must not fire.
    db = Database(Settings(database_url=database_url, statement_timeout_seconds=20))
    try:
        with db.read() as session:
            rows = session.execute(slow_statement(db.engine.dialect.name, 0.2)).all()
        assert len(rows) == 1
    finally:
        db.dispose()


def test_the_commands_have_their_own_limit_none_by_default(database_url: str) -> None:
    # The server's limit, tiny, is set: the commands do not take it.
    settings = Settings(database_url=database_url, statement_timeout_seconds=0.1)
    db = cli_support.database(settings)
    try:
        assert db.statement_timeout_seconds == 0
        with db.read() as session:
            session.execute(slow_statement(db.engine.dialect.name, 0.6))
    finally:
        db.dispose()

    limited = Settings(database_url=database_url, cli_statement_timeout_seconds=0.1)
    db = cli_support.database(limited)
    try:
        with pytest.raises(OperationalError) as raised, db.read() as session:
            session.execute(slow_statement(db.engine.dialect.name, 30))
        assert timed_out(raised.value)
    finally:
        db.dispose()


def test_the_limit_reaches_postgresql_as_its_statement_timeout(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no statement_timeout (a watchdog interrupts instead)")
    # Beside the options the URL gives, which are kept.
    with_options = make_url(database_url).update_query_dict({"options": "-c work_mem=5MB"})
    url = with_options.render_as_string(hide_password=False)
    server = Database(Settings(database_url=url, statement_timeout_seconds=2.5))
    command = cli_support.database(Settings(database_url=database_url))
    try:
        with server.read() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar_one() == "2500ms"
            assert session.execute(text("SHOW work_mem")).scalar_one() == "5MB"
        with command.read() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar_one() == "0"
    finally:
        server.dispose()
        command.dispose()


def test_an_upload_cut_by_the_timeout_says_what_its_batches_hold(
    alice: User, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = db.engine.dialect.name
    write_batch = importer._write_batch

    def stall(session: Session, *args: Any, **kwargs: Any) -> Any:
        session.execute(slow_statement(dialect, 30))
        return write_batch(session, *args, **kwargs)

    monkeypatch.setattr(importer, "_write_batch", stall)
    response = alice.post(
        "/api/contacts/import",
        files={"file": ("c.csv", b"phone_number,name\n+393471234567,Ada\n", "text/csv")},
    )
    assert response.status_code == 503, response.text
    (error,) = response.json()["errors"]
    assert error["title"] == "Query took too long"
    assert "nothing was written" in error["detail"]
    monkeypatch.setattr(importer, "_write_batch", write_batch)
    assert alice.get("/api/contacts").json()["meta"]["total"] == 0
