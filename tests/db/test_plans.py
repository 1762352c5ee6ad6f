"""Query plans that must not depend on the server's memory settings (PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from segmenti import auth
from segmenti.contacts import service
from segmenti.db.engine import Database
from segmenti.membership import counts, filters
from segmenti.phones import normalize_phone
from segmenti.settings import Settings
from tests.conftest import PG_URL


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's planner (SEGMENTI_TEST_DATABASE_URL)")
@pytest.mark.parametrize("condition", ["not_exact", "not_contains", "not_starts_with"])
def test_a_negated_condition_counts_with_an_anti_join_not_a_subplan(
    database_url: str, condition: str
) -> None:
    """NOT IN (holders) is hashed only while the holders fit in work_mem; past that
    PostgreSQL scans them once per contact (a count at 1M contacts ran past the statement
    timeout). The negated conditions are NOT EXISTS there: an anti-join at any size."""
    db = Database(Settings(database_url=database_url))
    try:
        with db.write() as session:
            user_id, _key = auth.create_user(session, name="Acme")
        for number, signup in enumerate(["2026-01-02", "2025-12-31", "2024-06-01"]):
            data = service.ContactInput(
                phone=normalize_phone(f"+39333000000{number}"),
                custom_parameters={"signup_date": signup},
            )
            with db.write() as session:
                service.create_contact(session, user_id=user_id, data=data)
        spec = filters.Filter(conditions=(filters.Condition("signup_date", condition, "2026"),))
        statement = filters.count_sql(spec, user_id=user_id)
        sql = str(
            statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        with db.read() as session:
            # The smallest work_mem: a hashed NOT IN would not fit even these holders.
            session.execute(text("SET LOCAL work_mem = '64kB'"))
            plan = "\n".join(session.execute(text("EXPLAIN " + sql)).scalars())
            total = counts.count_filter(session, user_id=user_id, spec=spec)
    finally:
        db.dispose()
    assert "Anti Join" in plan, plan
    assert "SubPlan" not in plan, plan
    expected = {"not_exact": 3, "not_contains": 2, "not_starts_with": 2}[condition]
    assert total == expected
