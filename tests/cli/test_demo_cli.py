"""`segmenti demo` in-process, on the real database: the story it writes, at the default
size and at the smallest, and the same data for the same seed and run date."""

from __future__ import annotations

import csv
import io
import json
from contextlib import nullcontext
from datetime import date, datetime, time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from segmenti import demo, timeutil
from segmenti.cli import app
from segmenti.db.engine import Database
from tests.counting import stale_counts
from tests.unit.test_demo import expected_totals

runner = CliRunner()
TODAY = "2026-12-01"


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"SEGMENTI_DATABASE_URL": database_url}


def _demo(env: dict[str, str], *args: str) -> dict:
    result = runner.invoke(app, ["demo", "--json", *args], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _segments(client: TestClient, api_key: str) -> list[dict]:
    answer = client.get(
        "/api/segments",
        params={"results_per_page": 100, "order_by": "id", "order_type": "asc"},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


# The clock's day (None) or another: relative dates count from the day a segment is read,
# and the demo's data from its run date, so at another date, with the clock moved there,
# the same segments must have members (no calendar date hides in the data or the cast).
ANOTHER_DAY = date(2031, 2, 28)


@pytest.mark.parametrize(
    ("count", "run_date"),
    [(len(demo.CAST), None), (10_000, None), (len(demo.CAST), ANOTHER_DAY), (10_000, ANOTHER_DAY)],
    ids=["the-cast-alone", "default", "the-cast-alone-another-day", "default-another-day"],
)
def test_every_demo_segment_has_the_members_the_generator_says(
    env: dict[str, str], db: Database, client: TestClient, count: int, run_date: date | None
) -> None:
    clock = (
        timeutil.clock_at(lambda: datetime.combine(run_date, time(9, 30)))
        if run_date is not None
        else nullcontext()
    )
    with clock:
        args = ["--contacts", str(count)]
        if run_date is not None:
            args += ["--today", run_date.isoformat()]
        made = _demo(env, *args)
        segments = _segments(client, made["api_key"])
        today = timeutil.today()
        # Members listed, maintained and recounted on the same day as the totals.
        stale = stale_counts(db, made["user_id"])
    assert made["contacts"] == count
    assert made["today"] == today.isoformat()
    assert [s["name"] for s in segments] == [s.name for s in demo.CATALOGUE]
    assert made["segments"] == len(segments)
    totals = {s["name"]: s["total_contacts"] for s in segments}
    generated = list(demo.contacts(count, seed=1, today=today))
    assert totals == expected_totals(generated, today)
    assert [name for name, total in totals.items() if total == 0] == []
    assert stale == {}
    by_name = {s["name"]: s for s in segments}
    event_list = by_name["Fiera Milano: contatti dallo stand"]
    assert event_list["type"] == "bulk"
    # The event's numbers are the demo's own contacts: the bulk list created none.
    assert len(event_list["settings"]["contacts_ids"]) == len(
        event_list["settings"]["phone_numbers"]
    )
    test_list = by_name["Lista test interna"]
    assert (test_list["type"], test_list["total_contacts"]) == ("custom", 5)
    trees = [s for s in segments if "filter" in s["settings"]]
    assert len(trees) == sum("filter" in s.params for s in demo.CATALOGUE)


def test_the_default_size_is_ten_thousand_with_a_few_percent_opted_out(
    env: dict[str, str], client: TestClient
) -> None:
    made = _demo(env, "--today", TODAY)
    headers = {"Authorization": f"Bearer {made['api_key']}"}
    total = client.get("/api/contacts", headers=headers).json()["meta"]["total"]
    opted_out = client.get(
        "/api/contacts", params={"has_opted_out": "true"}, headers=headers
    ).json()["meta"]["total"]
    assert total == 10_000
    assert 0.02 < opted_out / total < 0.06


def test_the_same_seed_and_run_date_write_the_same_contacts(env: dict[str, str]) -> None:
    exports = []
    for seed in ("4", "4", "5"):
        made = _demo(
            env, "--contacts", "300", "--seed", seed, "--today", TODAY, "--name", f"demo {seed}"
        )
        exported = runner.invoke(
            app, ["contacts", "export", "--user", str(made["user_id"])], env=env
        )
        assert exported.exit_code == 0, exported.output
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        exports.append(sorted(tuple(sorted(row.items())) for row in rows))
    assert exports[0] == exports[1]
    assert exports[0] != exports[2]


def test_a_run_date_that_is_not_a_date_is_refused(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["demo", "--today", "yesterday"], env=env)
    assert result.exit_code == 2
    assert "--today" in result.output
