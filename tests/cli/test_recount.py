"""`segmenti segments recount`: every total_contacts recomputed from scratch."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import update
from typer.testing import CliRunner

from segmenti.cli import app
from segmenti.db.tables import segments
from segmenti.db.tenant import across_tenants
from tests.conftest import User

runner = CliRunner()


def test_recount_restores_counts_that_were_edited_behind_its_back(
    alice: User, bob: User, db: Any, database_url: str
) -> None:
    a = alice.make_contact("+393331234501", custom_parameters={"plan": "pro", "age": "40"})
    alice.make_contact("+393331234502", custom_parameters={"plan": "free"}, has_opted_out=True)
    alice.make_contact("+14155552671", custom_parameters={"plan": "PRO", "age": "x"})
    pro = alice.make_segment(
        filters_custom_parameter_key=["plan", "age"],
        filters_custom_parameter_condition=["exact", "not_exact"],
        filters_custom_parameter_value=["pro", "x"],
    )
    italy = alice.make_segment(filters_countries=["it"])
    listed = alice.make_segment(contacts_ids=str(a))
    bobs = bob.make_segment()
    expected = {pro: 1, italy: 1, listed: 1}
    assert {s: alice.total(s) for s in expected} == expected
    # As a restore from an older backup might leave them.
    with db.write() as session, across_tenants("the test breaks every user's counts"):
        session.execute(update(segments).values(total_contacts=99))

    result = runner.invoke(
        app,
        ["segments", "recount", "--user", str(alice.id), "--json"],
        env={"SEGMENTI_DATABASE_URL": database_url},
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["segments"] == 3
    assert sorted(c["segment_id"] for c in report["corrected"]) == sorted(expected)
    assert {s: alice.total(s) for s in expected} == expected
    assert bob.total(bobs) == 99  # --user leaves other users alone
    everyone = runner.invoke(
        app, ["segments", "recount"], env={"SEGMENTI_DATABASE_URL": database_url}
    )
    assert everyone.exit_code == 0, everyone.output
    assert "1 corrected" in everyone.output
    assert bob.total(bobs) == 0
