"""Filter trees (`filter`): all / any / not groups, value lists, presence, and dates
relative to today, through the real app on SQLite (and PostgreSQL with
SEGMENTI_TEST_DATABASE_URL): the contract's shapes, its 400s with node paths, exact
counts through every write and across UTC midnight, explanations, and tenancy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from segmenti import timeutil
from segmenti.cli import app as cli_app
from segmenti.db.engine import Database
from segmenti.db.tables import segments
from segmenti.db.tenant import Tenant
from segmenti.membership import counts, filters
from tests.conftest import User
from tests.counting import stale_counts

PLAN_PRO = {"key": "plan", "condition": "exact", "value": "pro"}


def tree_total(user: User, tree: Any) -> int:
    segment_id = user.make_segment(filter=tree)
    return user.total(segment_id)


def people(user: User) -> dict[str, int]:
    """Five contacts: Italy and the US, plans, ages, sign-up days, one without keys."""
    return {
        "ada": user.make_contact(
            "+393331234501",
            custom_parameters={"plan": "pro", "age": "40", "signup": "2026-11-20"},
        ),
        "bea": user.make_contact(
            "+393331234502",
            custom_parameters={"plan": "free", "age": "25", "signup": "2026-10-01T08:00Z"},
        ),
        "cal": user.make_contact(
            "+14155552671", custom_parameters={"plan": "team", "age": "", "signup": "soon"}
        ),
        "dan": user.make_contact("+14155552672", custom_parameters={"plan": "PRO"}),
        "eve": user.make_contact("+393331234503"),
    }


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    """The app's clock, set by the test: `clock[0] = datetime(...)`."""
    moment = [datetime(2026, 12, 1, 12, 0, 0)]
    with timeutil.clock_at(lambda: moment[0]):
        yield moment


# -- the contract ---------------------------------------------------------------------


def test_a_tree_segment_is_a_filter_segment_with_its_normalized_tree_as_settings(
    alice: User,
) -> None:
    people(alice)
    tree = {
        "all": [
            {"any": [PLAN_PRO, {"key": "age", "condition": "BIGGER_THAN", "value": "30"}]},
            {"not": {"country": ["us"]}},
        ]
    }
    segment_id = alice.make_segment(filter=tree)
    segment = alice.segment(segment_id)
    assert segment["type"] == "filter"
    assert segment["settings"] == {
        "filter": {
            "all": [
                {"any": [PLAN_PRO, {"key": "age", "condition": "bigger_than", "value": "30"}]},
                {"not": {"country": ["US"]}},
            ]
        }
    }
    assert segment["total_contacts"] == 1  # ada: pro and Italian; dan is in the US


def test_flat_segments_keep_their_settings_exactly(alice: User) -> None:
    segment_id = alice.make_segment(
        filters_custom_parameter_key=["plan"],
        filters_custom_parameter_value=["pro"],
        filters_countries=["it"],
    )
    assert alice.segment(segment_id)["settings"] == {
        "filters_custom_parameters": [PLAN_PRO],
        "filters_countries": ["IT"],
    }


def test_a_tree_comes_as_json_text_in_a_form_or_multipart_field(alice: User) -> None:
    people(alice)
    text = json.dumps({"any": [PLAN_PRO, {"key": "plan", "condition": "exact", "value": "free"}]})
    form = alice.post("/api/segments", data={"name": "form", "filter": text})
    assert form.status_code == 201, form.text
    multipart = alice.post(
        "/api/segments", files={"name": (None, "multipart"), "filter": (None, text)}
    )
    assert multipart.status_code == 201, multipart.text
    for response in (form, multipart):
        assert alice.total(response.json()["data"]["id"]) == 3  # ada, bea, dan (PRO folds)


def test_update_and_preview_take_a_tree(alice: User) -> None:
    people(alice)
    segment_id = alice.make_segment(filters_countries=["IT"])
    response = alice.post(f"/api/segments/{segment_id}", json={"filter": {"not": PLAN_PRO}})
    assert response.status_code == 200, response.text
    assert alice.total(segment_id) == 3
    assert alice.segment(segment_id)["settings"] == {"filter": {"not": PLAN_PRO}}
    preview = alice.post("/api/segments/preview", json={"filter": {"all": [PLAN_PRO]}})
    assert preview.status_code == 200, preview.text
    assert preview.json()["data"]["total_contacts"] == 2
    assert len(preview.json()["data"]["contacts"]) == 2


@pytest.mark.parametrize(
    ("tree", "total"),
    [
        ({"all": []}, 5),
        ({"not": {"all": []}}, 0),
        ({"key": "plan", "condition": "in", "value": ["Pro", "team"]}, 3),
        ({"key": "plan", "condition": "not_in", "value": ["pro", "team"]}, 2),  # bea, eve
        ({"key": "age", "condition": "exists"}, 3),  # "" exists
        ({"key": "age", "condition": "not_exists"}, 2),
        ({"key": "signup", "condition": "date_after", "value": "2026-10-01"}, 1),
        ({"key": "signup", "condition": "date_before", "value": "2026-11-20"}, 1),
        ({"key": "signup", "condition": "date_after", "value": "-30d"}, 1),  # ada
        ({"key": "signup", "condition": "date_before", "value": "+0d"}, 2),
        ({"not": {"key": "signup", "condition": "date_before", "value": "2100-01-01"}}, 3),
        (
            {
                "any": [
                    {"continent": ["na"]},
                    {"key": "age", "condition": "lower_than", "value": "30"},
                ]
            },
            3,
        ),
        ({"not": {"country": ["IT"]}}, 2),
        ({"all": [{"not": {"not": PLAN_PRO}}, {"country": ["US"]}]}, 1),
        ({"key": "plan", "condition": "not_contains", "value": "r"}, 2),  # cal, eve
    ],
)
def test_tree_semantics(alice: User, clock: list[datetime], tree: Any, total: int) -> None:
    people(alice)
    assert tree_total(alice, tree) == total
    assert stale_counts(alice.client.app.state.db, alice.id) == {}  # type: ignore[attr-defined]


def leaf(key: str = "plan", condition: str = "exact", value: Any = "pro") -> dict[str, Any]:
    return {"key": key, "condition": condition, "value": value}


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = leaf()
    for _ in range(depth):
        node = {"all": [node]}
    return node


@pytest.mark.parametrize(
    ("body", "parameter", "words"),
    [
        (
            {"filter": {"all": [leaf(), {"any": [{"bogus": 1}]}]}},
            "filter.all[1].any[0]",
            "unknown node",
        ),
        ({"filter": {"any": []}}, "filter", "at least one"),
        ({"filter": {"all": leaf()}}, "filter", "list of nodes"),
        ({"filter": {"all": [], "any": []}}, "filter", "takes no other field"),
        ({"filter": {"not": [leaf()]}}, "filter.not", "JSON object"),
        ({"filter": {"all": [leaf(condition="like")]}}, "filter.all[0]", "unknown condition"),
        ({"filter": {"all": [leaf(condition="exists")]}}, "filter.all[0]", "takes no value"),
        ({"filter": {"key": "plan", "condition": "exact"}}, "filter", "needs a value"),
        ({"filter": leaf(condition="in", value="pro")}, "filter", "list of 1 to 1000"),
        ({"filter": leaf(condition="in", value=[])}, "filter", "list of 1 to 1000"),
        ({"filter": leaf(condition="in", value=["x"] * 1001)}, "filter", "list of 1 to 1000"),
        ({"filter": leaf(condition="in", value=["ok", 3])}, "filter", "must be a string"),
        ({"filter": leaf(value=7)}, "filter", "must be a string"),
        ({"filter": leaf(key="")}, "filter", "key must be 1 to 64"),
        ({"filter": leaf(value="x" * 513)}, "filter", "at most 512"),
        ({"filter": leaf(condition="bigger_than", value="ten")}, "filter", "must be a number"),
        ({"filter": leaf(condition="date_after", value="30d ago")}, "filter", "YYYY-MM-DD"),
        ({"filter": leaf(condition="date_after", value="2026-02-30")}, "filter", "YYYY-MM-DD"),
        ({"filter": {"all": [{"not": {"country": ["XX"]}}]}}, "filter.all[0].not", "unknown"),
        ({"filter": {"continent": ["EU", "ZZ"]}}, "filter", "unknown continent"),
        ({"filter": {"country": []}}, "filter", "at least one code"),
        ({"filter": {**leaf(), "extra": 1}}, "filter", "not extra"),
        ({"filter": nested(7)}, "filter" + ".all[0]" * 6, "at most 6 levels"),
        ({"filter": {"all": [leaf()] * 101}}, "filter.all[100]", "at most 100"),
        ({"filter": "[1, 2"}, "filter", "not valid JSON"),
        ({"filter": {"all": []}, "filters_countries": ["IT"]}, "filter", "send one of them"),
        ({"filter": {"all": []}, "type": "bulk"}, "filter", "not a parameter of a bulk"),
    ],
)
def test_bad_trees_answer_400_naming_the_node(
    alice: User, body: dict[str, Any], parameter: str, words: str
) -> None:
    for path in ("/api/segments", "/api/segments/preview"):
        response = alice.post(path, json={"name": "bad", **body})
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["source"]["parameter"] == parameter
        assert words in error["detail"], error["detail"]
    assert alice.get("/api/segments").json()["meta"]["total"] == 0  # nothing half written


def test_six_levels_and_a_hundred_leaves_are_allowed(alice: User) -> None:
    people(alice)
    assert tree_total(alice, nested(6)) == 2  # ada, dan (PRO)
    assert tree_total(alice, {"any": [leaf(value=str(n)) for n in range(99)] + [leaf()]}) == 2


def test_the_largest_tree_works_on_every_backend(alice: User) -> None:
    """100 `in` leaves of 1,000 values: 100,000 values, more than PostgreSQL's 65,535
    bound parameters a statement, bound as one array (or JSON text) per leaf."""
    ids = people(alice)
    tree = {
        "any": [
            leaf(condition="in", value=[f"v{leaf_number}-{n}" for n in range(999)] + ["pro"])
            for leaf_number in range(100)
        ]
    }
    segment_id = alice.make_segment(filter=tree)
    assert alice.total(segment_id) == 2
    members = alice.get(f"/api/segments/{segment_id}/contacts").json()["data"]
    assert [m["id"] for m in members] == [ids["ada"], ids["dan"]]
    alice.make_contact("+393331234509", custom_parameters={"plan": "v7-998"})
    assert alice.total(segment_id) == 3
    export = alice.get(f"/api/segments/{segment_id}/contacts.csv")
    assert export.status_code == 200 and export.text.count("\n") == 4


# -- exact counts through every write -----------------------------------------------


TREES = [
    {
        "any": [
            PLAN_PRO,
            {"all": [{"country": ["US"]}, {"not": {"key": "plan", "condition": "exists"}}]},
        ]
    },
    {"not": {"any": [leaf(condition="in", value=["free", "team"]), {"continent": ["NA"]}]}},
    {"all": [leaf("signup", "date_after", "-40d"), {"not": leaf("age", "lower_than", "30")}]},
    {"all": [{"key": "age", "condition": "exists"}, {"any": [{"country": ["IT"]}]}]},
]


def test_counts_stay_exact_through_contact_writes_imports_bulk_and_recount(
    alice: User, db: Database, database_url: str, clock: list[datetime]
) -> None:
    ids = people(alice)
    segment_ids = [alice.make_segment(filter=tree) for tree in TREES]
    assert stale_counts(db, alice.id) == {}
    alice.post(f"/api/contacts/{ids['bea']}", json={"custom_parameters": {"plan": "pro"}})
    alice.post(f"/api/contacts/{ids['cal']}", json={"has_opted_out": "1"})
    alice.delete(f"/api/contacts/{ids['dan']}")
    alice.make_contact("+14155552673", custom_parameters={"age": "50", "signup": "2026-11-30"})
    assert stale_counts(db, alice.id) == {}
    imported = alice.post(
        "/api/contacts/import",
        files={
            "file": (
                "c.csv",
                "phone_number,plan,signup\n+393331234560,team,2026-11-25\n+393331234501,free,\n",
                "text/csv",
            )
        },
    )
    assert imported.status_code in (200, 201), imported.text
    assert stale_counts(db, alice.id) == {}
    alice.make_segment(phone_numbers="+393331234570,+14155552690")  # new contacts, no keys
    assert stale_counts(db, alice.id) == {}
    with db.write() as session:
        session.execute(Tenant(alice.id).update(segments).values(total_contacts=99))
    result = CliRunner().invoke(
        cli_app,
        ["segments", "recount", "--user", str(alice.id)],
        env={"SEGMENTI_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert stale_counts(db, alice.id) == {}
    assert all(alice.total(s) != 99 for s in segment_ids)


# -- dates relative to today ------------------------------------------------------------


class Recorder:
    """A `counts.Watcher` of every segment, recording the moves it is told."""

    def __init__(self) -> None:
        self.moves: list[counts.Moves] = []

    def watched(self, session: Any, *, user_id: int, version: str | None = None) -> list[int]:
        return list(session.execute(Tenant(user_id).select(segments.c.id)).scalars())

    def moved(self, session: Any, moves: counts.Moves) -> None:
        self.moves.append(moves)


def test_membership_changes_at_utc_midnight_without_any_write(
    alice: User, bob: User, db: Database, clock: list[datetime]
) -> None:
    ids = people(alice)  # ada signed up 2026-11-20, bea 2026-10-01
    clock[0] = datetime(2026, 12, 20, 23, 59, 59)
    recent = alice.make_segment(filter=leaf("signup", "date_after", "-30d"))  # after 11-20
    coming = alice.make_segment(filter=leaf("signup", "date_before", "-80d"))  # before 10-01
    fixed = alice.make_segment(filter=leaf("signup", "date_after", "2026-11-01"))
    assert (alice.total(recent), alice.total(coming), alice.total(fixed)) == (0, 0, 1)
    clock[0] = datetime(2026, 12, 19, 23, 59, 59)  # the day before: ada is recent
    assert alice.total(recent) == 0  # counted for the 20th: a clock going back shifts nothing
    clock[0] = datetime(2026, 12, 20, 23, 59, 59)
    with counts.watching(Recorder()) as recorder:
        clock[0] = datetime(2026, 12, 21, 0, 0, 1)  # a second after midnight, no write
        assert (alice.total(coming), alice.total(recent)) == (1, 0)
        listed = alice.get(f"/api/segments/{coming}/contacts").json()
        assert [c["id"] for c in listed["data"]] == [ids["bea"]]
        assert listed["meta"]["total"] == 1
    assert [(dict(m.entered), dict(m.left)) for m in recorder.moves] == [
        ({coming: frozenset({ids["bea"]})}, {})
    ]
    assert stale_counts(db, alice.id) == {}
    # A server down for days catches up on its first read.
    clock[0] = datetime(2027, 3, 1, 9, 0, 0)
    assert (alice.total(coming), alice.total(fixed)) == (2, 1)  # before 2026-12-11
    with db.read() as session:
        days = set(
            session.execute(
                Tenant(alice.id).select(segments.c.counted_day).where(segments.c.id != fixed)
            ).scalars()
        )
    assert days == {datetime(2027, 3, 1).date()}
    # Contact writes on the new day count against the new day.
    alice.make_contact("+393331234599", custom_parameters={"signup": "2027-02-28"})
    assert alice.total(recent) == 1
    assert stale_counts(db, alice.id) == {}


def test_a_write_counted_for_yesterday_is_moved_on_by_the_first_read(
    alice: User, db: Database, clock: list[datetime]
) -> None:
    """A contact written just before midnight is counted for its day; the shift then
    recounts for the new one before anyone reads."""
    clock[0] = datetime(2026, 12, 20, 23, 59, 59)
    segment_id = alice.make_segment(filter=leaf("signup", "date_after", "-1d"))  # after 12-19
    alice.make_contact("+393331234501", custom_parameters={"signup": "2026-12-20"})
    with db.read() as session:
        stored = session.execute(
            Tenant(alice.id).select(segments.c.total_contacts).where(segments.c.id == segment_id)
        ).scalar_one()
    assert stored == 1
    clock[0] = datetime(2026, 12, 21, 0, 0, 0)  # now "after 12-20": nobody
    assert alice.total(segment_id) == 0
    assert stale_counts(db, alice.id) == {}


def test_one_shift_per_day_whoever_asks_first(
    alice: User, db: Database, clock: list[datetime]
) -> None:
    people(alice)
    segment_id = alice.make_segment(filter=leaf("signup", "date_after", "-30d"))
    clock[0] += timedelta(days=1)
    from segmenti.segments import service

    service.dates_current(db, user_id=alice.id)
    with db.write() as session:  # as if another process: nothing left to do
        counts.lock_tenant(session, user_id=alice.id, exclusive=True, writes_contacts=False)
        assert not counts.days_shifted(session, user_id=alice.id, today=timeutil.today())
        assert not counts.has_stale_days(session, user_id=alice.id, today=timeutil.today())
    assert alice.total(segment_id) == 1


# -- explain, members, export --------------------------------------------------------------


def test_explain_gives_a_verdict_per_node_and_the_leaves_that_decided(alice: User) -> None:
    ids = people(alice)
    tree = {
        "all": [{"any": [PLAN_PRO, leaf("age", "bigger_than", "30")]}, {"not": {"country": ["US"]}}]
    }
    segment_id = alice.make_segment(filter=tree)
    ada = alice.get(f"/api/segments/{segment_id}/contacts/{ids['ada']}").json()["data"]
    assert (ada["member"], ada["counted"], ada["type"]) == (True, True, "filter")
    assert ada["tree"]["held"] is True
    assert ada["tree"]["decided_by"] == [
        "filter.all[0].any[0]",
        "filter.all[0].any[1]",
        "filter.all[1].not",
    ]
    assert [c["held"] for c in ada["conditions"]] == [True, True]
    dan = alice.get(f"/api/segments/{segment_id}/contacts/{ids['dan']}").json()["data"]
    assert dan["member"] is False
    assert dan["tree"]["decided_by"] == ["filter.all[1].not"]
    assert dan["tree"]["children"][1]["children"][0] == {
        "path": "filter.all[1].not",
        "node": "country",
        "allowed": ["US"],
        "contact_value": "US",
        "held": True,
        "decided_by": ["filter.all[1].not"],
    }
    assert "filter.all[1].not" in dan["reason"] and dan["reason"].startswith("not a member")


# -- tenancy ------------------------------------------------------------------------------


def test_trees_count_and_show_only_their_owners_contacts(
    alice: User, bob: User, clock: list[datetime]
) -> None:
    people(alice)
    people(bob)
    segment_id = alice.make_segment(filter={"not": PLAN_PRO})
    assert alice.total(segment_id) == 3
    assert bob.get(f"/api/segments/{segment_id}").status_code == 404
    assert bob.get(f"/api/segments/{segment_id}/contacts").status_code == 404
    bob.make_contact("+393331234588", custom_parameters={"plan": "free"})
    assert alice.total(segment_id) == 3
    bobs = bob.make_segment(filter={"key": "signup", "condition": "date_after", "value": "-30d"})
    clock[0] += timedelta(days=1)
    assert alice.total(segment_id) == 3  # alice's read leaves bob's day alone
    assert bob.total(bobs) == 1


# -- OpenAPI ------------------------------------------------------------------------------


def test_openapi_describes_the_tree_recursively_with_examples(alice: User) -> None:
    document = alice.get("/api/openapi.json").json()
    components = document["components"]["schemas"]
    node = components["FilterNode"]
    by_title = {choice.get("title"): choice for choice in node["oneOf"]}
    assert by_title["all"]["properties"]["all"]["items"] == {
        "$ref": "#/components/schemas/FilterNode"
    }
    assert by_title["not"]["properties"]["not"] == {"$ref": "#/components/schemas/FilterNode"}
    assert "date_after" in components["FilterCondition"]["properties"]["condition"]["enum"]
    # The example is a valid tree.
    example = node["example"]
    assert alice.post("/api/segments/preview", json={"filter": example}).status_code == 200
    body = document["paths"]["/api/segments"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["filter"]["$ref"].endswith(
        "/FilterNode"
    )
    form = body["multipart/form-data"]["schema"]["properties"]["filter"]
    assert json.loads(form["example"]) == example


def test_many_dated_segments_shift_from_the_recount_columns(
    alice: User, db: Database, clock: list[datetime]
) -> None:
    people(alice)
    trees = [
        leaf("signup", "date_after", "-12d"),  # after 11-19: ada
        {"not": leaf("signup", "date_after", "-12d")},
        {"any": [leaf("signup", "date_before", "-61d"), PLAN_PRO]},  # before 10-01: nobody
        {"all": [leaf("signup", "date_after", "-62d"), {"country": ["IT"]}]},  # after 09-30
    ]
    segment_ids = [alice.make_segment(filter=tree) for tree in trees]
    assert [alice.total(s) for s in segment_ids] == [1, 4, 2, 2]
    clock[0] += timedelta(days=1)  # after 11-20, before 10-02, after 10-01
    assert [alice.total(s) for s in segment_ids] == [0, 5, 3, 1]
    assert stale_counts(db, alice.id) == {}


# -- the walk from a selective condition ----------------------------------------------


@pytest.mark.parametrize(
    ("selective", "share", "walks"),
    [(1, 10, False), (2, 10, False), (10_000, 10, True), (1, 3, True)],
)
def test_a_tree_counts_and_previews_alike_walked_from_its_rarest_condition_or_not(
    alice: User,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    selective: int,
    share: int,
    walks: bool,
) -> None:
    """`plan = free` is held by 2 of 6 contacts (one opted out), `plan in (...)` by 5:
    the first drives when fewer than `selective` hold it, whatever the kinds' order, or
    (on SQLite) at most a `share`th of the contacts; otherwise none does and the tree is counted
    whole. Same answers every way."""
    monkeypatch.setattr(filters, "SELECTIVE", selective)
    monkeypatch.setattr(filters, "SHARE", share)
    people(alice)
    alice.make_contact("+393331234509", custom_parameters={"plan": "free"}, has_opted_out=True)
    free = {"key": "plan", "condition": "exact", "value": "free"}
    tree = {
        "all": [
            {"key": "plan", "condition": "in", "value": ["pro", "team", "free"]},
            free,
            {"any": [{"country": ["IT"]}, {"key": "age", "condition": "exists"}]},
        ]
    }
    with db.read() as session:
        driver = counts.selective_driver(
            session, user_id=alice.id, spec=filters.build_tree(tree, max_leaves=100)
        )
    if share == 3 and db.engine.dialect.name != "sqlite":
        walks = False  # the share of the contacts counts on SQLite only
    assert driver == (filters.Condition("plan", "exact", "free") if walks else None)
    assert tree_total(alice, tree) == 1  # bea
    preview = alice.post("/api/segments/preview", json={"filter": tree}).json()["data"]
    assert preview["total_contacts"] == 1
    assert [contact["phone_number"] for contact in preview["contacts"]] == ["+393331234502"]
    nobody = {"all": [free, {"country": ["US"]}]}
    preview = alice.post("/api/segments/preview", json={"filter": nobody}).json()["data"]
    assert preview == {"total_contacts": 0, "new_contacts": 0, "contacts": []}


def test_a_walked_preview_shows_the_first_ten_members_in_id_order(alice: User) -> None:
    """The walk meets its holders in value order (`plan` = "vip", then "vip2"): the
    preview still shows the ten lowest ids."""
    made = [
        alice.make_contact(
            f"+3933312346{number:02d}",
            custom_parameters={"plan": "vip2" if number % 2 else "vip", "n": str(number)},
        )
        for number in range(14)
    ]
    tree = {
        "all": [
            {"key": "plan", "condition": "in", "value": ["vip", "vip2"]},
            {"not": {"key": "n", "condition": "exact", "value": "3"}},
        ]
    }
    preview = alice.post("/api/segments/preview", json={"filter": tree}).json()["data"]
    assert preview["total_contacts"] == 13
    expected = [contact_id for contact_id in made if contact_id != made[3]][:10]
    assert [contact["id"] for contact in preview["contacts"]] == expected
