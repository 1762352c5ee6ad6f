"""`segmenti demo` in-process, on the real database: the story it writes, at the default
size and at the smallest, and the same data for the same seed and run date."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from segmenti import demo, timeutil
from segmenti.cli import app
from segmenti.db.engine import Database
from tests.counting import stale_counts

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


@pytest.mark.parametrize("count", [len(demo.CAST), 10_000], ids=["the-cast-alone", "default"])
def test_every_demo_segment_has_members_and_an_operators_name(
    env: dict[str, str], db: Database, client: TestClient, count: int
) -> None:
    # Today's date, not a fixed one: segments with dates relative to today (nested filters)
    # count from the real today, and must have members whatever day the test runs.
    made = _demo(env, "--contacts", str(count))
    assert made["contacts"] == count
    assert made["today"] == timeutil.utcnow().date().isoformat()
    assert made["waiting_for_nested_filters"] == [s.name for s in demo.waiting()]
    segments = _segments(client, made["api_key"])
    assert [s["name"] for s in segments] == [s.name for s in demo.catalogue()]
    assert made["segments"] == len(segments)
    empty = [s["name"] for s in segments if s["total_contacts"] == 0]
    assert empty == []
    assert stale_counts(db, made["user_id"]) == {}
    by_name = {s["name"]: s for s in segments}
    event_list = by_name["Fiera Milano: contatti dallo stand"]
    assert event_list["type"] == "bulk"
    # The event's numbers are the demo's own contacts: the bulk list created none.
    assert len(event_list["settings"]["contacts_ids"]) == len(
        event_list["settings"]["phone_numbers"]
    )
    test_list = by_name["Lista test interna"]
    assert (test_list["type"], test_list["total_contacts"]) == ("custom", 5)


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
