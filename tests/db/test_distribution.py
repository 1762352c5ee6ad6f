"""Where each table lives on Citus (db/distribution.py) and `segmenti db distribute`:
every table has a rule; the command places the tables on a Citus coordinator, keeps the
rows they held, does nothing the second time, and refuses other databases with why."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from segmenti.cli import app
from segmenti.db import migrate
from segmenti.db.distribution import ANCHOR, NOT_IN_METADATA, RULES, Placement
from segmenti.db.tables import metadata
from segmenti.db.tenant import across_tenants
from tests.conftest import CITUS_URL, PG_URL, needs_citus

runner = CliRunner()


def test_every_table_of_the_schema_has_a_rule() -> None:
    tables = {table.name for table in metadata.sorted_tables}
    missing = tables - set(RULES)
    assert not missing, (
        f"no Citus rule for {sorted(missing)}: add it to RULES in db/distribution.py (a "
        "tenant table with user_id is distributed by user_id unless read across users)"
    )
    assert set(RULES) <= tables, f"rules for tables that do not exist: {set(RULES) - tables}"
    assert not set(NOT_IN_METADATA) & tables


def test_tenant_tables_follow_the_rule_for_tenant_tables() -> None:
    """Distributed by user_id, co-located with users; or, read across users, a copy on
    every node. Nothing but the anchor is distributed by another column."""
    for table in metadata.sorted_tables:
        rule = RULES[table.name]
        assert rule.why, table.name
        if table.name == ANCHOR:
            assert (rule.placement, rule.column) == (Placement.DISTRIBUTED, "id")
        elif "user_id" in table.c:
            assert rule.placement in (Placement.DISTRIBUTED, Placement.REFERENCE), table.name
            if rule.placement is Placement.DISTRIBUTED:
                assert rule.column == "user_id", table.name
        else:
            assert rule.placement is not Placement.DISTRIBUTED, table.name
        names = {fk.name for fk in table.foreign_key_constraints}
        assert set(rule.drop_foreign_keys) <= names, table.name


def test_distribute_refuses_a_database_without_citus(database_url: str) -> None:
    if CITUS_URL:
        # The Citus run's databases all have the extension; the refusal of plain
        # PostgreSQL is tested in the PostgreSQL run.
        engine = create_engine(database_url)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM citus_tables")).scalar()
        engine.dispose()
        return
    result = runner.invoke(app, ["db", "distribute"], env={"SEGMENTI_DATABASE_URL": database_url})
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # Rich wraps long lines
    if PG_URL:
        assert "the citus extension is not in this database" in said
    else:
        assert "the database is sqlite: distributing needs PostgreSQL with the citus" in said


def _placements(url: str) -> dict[str, tuple[str, str, int]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT table_name::text, citus_table_type, distribution_column, colocation_id"
                " FROM citus_tables"
            )
        ).all()
    engine.dispose()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


@needs_citus
def test_distribute_places_every_table_keeps_rows_and_does_nothing_twice(empty_url: str) -> None:
    env = {"SEGMENTI_DATABASE_URL": empty_url}
    # Rows written before distributing (a PostgreSQL deployment moving to Citus).
    made = runner.invoke(app, ["users", "create", "Acme", "--json"], env=env)
    assert made.exit_code == 0, made.output
    user_id = json.loads(made.stdout)["user_id"]
    engine = create_engine(empty_url)
    with engine.begin() as connection, across_tenants("tests write rows before distributing"):
        connection.execute(
            text(
                "INSERT INTO contacts (user_id, phone_number, custom_parameters, datetime)"
                " VALUES (:user, '+393331234567', '{}', now())"
            ),
            {"user": user_id},
        )
    engine.dispose()

    first = runner.invoke(app, ["db", "distribute", "--json"], env=env)
    assert first.exit_code == 0, first.output
    assert sorted(json.loads(first.stdout)["placed"]) == sorted(RULES)

    placed = _placements(empty_url)
    anchor_group = placed[ANCHOR][2]
    for name, rule in RULES.items():
        kind, column, group = placed[name]
        if rule.placement is Placement.DISTRIBUTED:
            assert (kind, column, group) == ("distributed", rule.column, anchor_group), name
        else:
            assert kind == "reference", name
    assert "alembic_version" not in placed

    engine = create_engine(empty_url)
    with engine.connect() as connection, across_tenants("tests count every row"):
        assert connection.execute(text("SELECT count(*) FROM contacts")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM api_keys")).scalar() == 1
    engine.dispose()

    again = runner.invoke(app, ["db", "distribute"], env=env)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.stdout
    assert _placements(empty_url) == placed


@needs_citus
def test_a_table_added_by_a_migration_after_distributing_is_distributed(empty_url: str) -> None:
    env = {"SEGMENTI_DATABASE_URL": empty_url}
    assert runner.invoke(app, ["db", "distribute"], env=env).exit_code == 0
    engine = create_engine(empty_url)
    # Back to before dashboard_sessions existed, then up again: the migration creates
    # the table on the coordinator, and the upgrade distributes it like the others.
    migrate.downgrade(engine, "0004_parameters_without_rowid")
    assert "dashboard_sessions" not in _placements(empty_url)
    migrate.upgrade(engine)
    engine.dispose()
    placed = _placements(empty_url)
    assert placed["dashboard_sessions"] == ("distributed", "user_id", placed[ANCHOR][2])
