"""A read-only session (previews) gives its connection back to the pool writable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, text

from segmenti.db.tables import users
from segmenti.db.tenant import across_tenants
from segmenti.timeutil import utcnow


def test_every_pooled_connection_stays_writable_after_read_only_sessions(db: Any) -> None:
    # Two idle connections in the pool: the one a read-only session used and the one a
    # later checkout gets are then different ones.
    with db.engine.connect() as first, db.engine.connect() as second:
        first.exec_driver_sql("SELECT 1")
        second.exec_driver_sql("SELECT 1")
    for _ in range(3):
        with db.read_only() as session:
            session.execute(text("SELECT 1"))
    for number in range(4):  # more writes than pooled connections: each is used
        with db.write() as session, across_tenants("the test makes users"):
            session.execute(insert(users).values(name=f"writer {number}", datetime=utcnow()))
