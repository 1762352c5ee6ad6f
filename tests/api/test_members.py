"""Segment membership through the real app: member lists (paging by number and by
cursor), previews that write nothing, and explanations that agree with the lists."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import exc, func, insert, select

from segmenti.db.tables import contacts, segments, users
from segmenti.db.tenant import across_tenants
from segmenti.segments import members
from segmenti.timeutil import utcnow
from tests.conftest import User


def italian(n: int) -> str:
    return f"+3933312345{n:02d}"


def american(n: int) -> str:
    return f"+1415555{2600 + n}"


def member_ids(user: User, segment_id: int, query: str = "") -> list[int]:
    """Every member id, following `next` links from the first page."""
    url: str | None = f"/api/segments/{segment_id}/contacts?results_per_page=10&{query}"
    found: list[int] = []
    while url:
        response = user.get(url)
        assert response.status_code == 200, response.text
        found += [contact["id"] for contact in response.json()["data"]]
        url = response.json()["links"]["next"]
    return found


def query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


@pytest.fixture
def people(alice: User) -> dict[str, int]:
    return {
        "pro_it": alice.make_contact(italian(1), custom_parameters={"plan": "pro"}),
        "free_it": alice.make_contact(italian(2), custom_parameters={"plan": "free"}),
        "pro_us": alice.make_contact(american(1), custom_parameters={"plan": "Pro"}),
        "pro_it_out": alice.make_contact(
            italian(3), custom_parameters={"plan": "pro"}, has_opted_out=True
        ),
        "bare_it": alice.make_contact(italian(4)),
    }


# -- listing ----------------------------------------------------------------------------


def test_filter_members_are_contact_objects_in_id_order(
    alice: User, people: dict[str, int]
) -> None:
    pro = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    body = alice.get(f"/api/segments/{pro}/contacts").json()
    assert [c["id"] for c in body["data"]] == [people["pro_it"], people["pro_us"]]
    assert body["data"][0] == alice.get(f"/api/contacts/{people['pro_it']}").json()["data"]
    assert body["meta"] == {"page": 1, "results_per_page": 25, "total": 2, "total_pages": 1}
    assert body["meta"]["total"] == alice.total(pro)
    assert body["links"]["next"] is None and body["links"]["prev"] is None
    assert body["links"]["self"].startswith(f"http://testserver/api/segments/{pro}/contacts?")


@pytest.mark.parametrize(
    ("kind", "dense_members"),
    [("filter", 0), ("filter", 10**9), ("custom", 10**9), ("bulk", 10**9)],
)
def test_opted_out_members_only_when_asked(
    alice: User,
    people: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    dense_members: int,
) -> None:
    monkeypatch.setattr(members, "DENSE_MEMBERS", dense_members)
    pro_ids = [people["pro_it"], people["pro_us"], people["pro_it_out"]]
    fields: dict[str, Any] = {
        "filter": {
            "filters_custom_parameter_key": ["plan"],
            "filters_custom_parameter_value": ["pro"],
        },
        "custom": {"contacts_ids": ",".join(map(str, reversed(pro_ids)))},
        "bulk": {"phone_numbers": [american(1), italian(3), italian(1)]},
    }[kind]
    segment = alice.make_segment(**fields)
    counted = sorted(pro_ids[:2])
    everyone = sorted(pro_ids)
    assert member_ids(alice, segment) == counted
    assert member_ids(alice, segment, "include_opted_out=0") == counted
    assert member_ids(alice, segment, "include_opted_out=1") == everyone
    assert member_ids(alice, segment, "has_opted_out=1") == [people["pro_it_out"]]
    assert member_ids(alice, segment, "has_opted_out=0&include_opted_out=1") == counted
    meta = alice.get(f"/api/segments/{segment}/contacts?include_opted_out=true").json()["meta"]
    assert meta["total"] == 3
    meta = alice.get(f"/api/segments/{segment}/contacts?has_opted_out=1").json()["meta"]
    assert meta["total"] == 1
    assert alice.get(f"/api/segments/{segment}/contacts").json()["meta"]["total"] == 2


def test_deleted_contacts_leave_list_segments(alice: User, people: dict[str, int]) -> None:
    custom = alice.make_segment(contacts_ids=f"{people['free_it']},{people['bare_it']}")
    alice.delete(f"/api/contacts/{people['free_it']}")
    assert member_ids(alice, custom) == [people["bare_it"]]
    assert alice.get(f"/api/segments/{custom}/contacts").json()["meta"]["total"] == 1


@pytest.mark.parametrize(
    ("kind", "dense_members"), [("filter", 0), ("filter", 10**9), ("custom", 0)]
)
def test_paging_by_number_and_by_cursor_agree(
    alice: User, monkeypatch: pytest.MonkeyPatch, dense_members: int, kind: str
) -> None:
    # Both SQL shapes of a filter (correlated for dense segments, IN for rare ones).
    monkeypatch.setattr(members, "DENSE_MEMBERS", dense_members)
    ids = [
        alice.make_contact(
            italian(i) if i % 2 else american(i),
            custom_parameters={"n": str(i)},
            has_opted_out=i % 7 == 0,
        )
        for i in range(1, 36)
    ]
    if kind == "filter":
        segment = alice.make_segment(
            filters_custom_parameter_key=["n"],
            filters_custom_parameter_condition=["bigger_than"],
            filters_custom_parameter_value=["2"],
        )
        expected = [c for i, c in enumerate(ids, start=1) if i > 2 and i % 7]
    else:
        segment = alice.make_segment(contacts_ids=",".join(map(str, ids[::-2])))
        expected = [c for i, c in enumerate(ids, start=1) if i % 2 and i % 7]
    assert member_ids(alice, segment) == expected

    by_number = []
    for number in (1, 2, 3):
        body = alice.get(f"/api/segments/{segment}/contacts?results_per_page=10&page={number}")
        by_number += [c["id"] for c in body.json()["data"]]
    assert by_number == expected

    first = alice.get(f"/api/segments/{segment}/contacts?results_per_page=10").json()
    assert first["meta"]["total"] == len(expected) == alice.total(segment)
    next_link = first["links"]["next"]
    assert query_of(next_link)["after_id"] == [str(expected[9])]
    assert query_of(next_link)["page"] == ["2"]
    second = alice.get(next_link).json()
    assert second["meta"]["page"] == 2
    assert [c["id"] for c in second["data"]] == expected[10:20]
    for name in ("first", "prev", "last"):
        assert "after_id" not in query_of(second["links"][name]), name
    assert query_of(second["links"]["self"])["after_id"] == [str(expected[9])]


def test_cursor_and_page_links_keep_the_other_parameters(
    alice: User, people: dict[str, int]
) -> None:
    segment = alice.make_segment()  # no filters: every contact
    body = alice.get(
        f"/api/segments/{segment}/contacts?results_per_page=10&include_opted_out=1&after_id=1"
    ).json()
    assert [c["id"] for c in body["data"]] == sorted(people.values())[1:]
    assert body["links"]["next"] is None
    assert query_of(body["links"]["first"]) == {
        "results_per_page": ["10"],
        "include_opted_out": ["1"],
        "page": ["1"],
    }


def test_a_page_past_the_end_is_empty(alice: User, people: dict[str, int]) -> None:
    segment = alice.make_segment()
    body = alice.get(f"/api/segments/{segment}/contacts?page=9").json()
    assert body["data"] == [] and body["links"]["next"] is None
    assert body["meta"] == {"page": 9, "results_per_page": 25, "total": 4, "total_pages": 1}
    after_last = alice.get(f"/api/segments/{segment}/contacts?after_id={max(people.values())}")
    assert after_last.json()["data"] == []


def test_an_empty_segment_lists_nothing(alice: User) -> None:
    segment = alice.make_segment(filters_countries=["JP"])
    body = alice.get(f"/api/segments/{segment}/contacts").json()
    assert body["data"] == []
    assert body["meta"]["total"] == body["meta"]["total_pages"] == 0
    assert body["links"]["last"] is None and body["links"]["next"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("after_id=0", "after_id"),
        ("after_id=x", "after_id"),
        ("after_id=-3", "after_id"),
        ("include_opted_out=maybe", "include_opted_out"),
        ("has_opted_out=2", "has_opted_out"),
        ("page=0", "page"),
        ("results_per_page=7", "results_per_page"),
    ],
)
def test_bad_list_parameters_are_400_naming_them(alice: User, query: str, parameter: str) -> None:
    segment = alice.make_segment()
    response = alice.get(f"/api/segments/{segment}/contacts?{query}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"] == {"parameter": parameter}


# -- tenancy ----------------------------------------------------------------------------


def test_another_users_segment_or_contact_is_404(alice: User, bob: User) -> None:
    bobs_contact = bob.make_contact(italian(9), custom_parameters={"plan": "pro"})
    bobs_segment = bob.make_segment(contacts_ids=str(bobs_contact))
    alices_contact = alice.make_contact(italian(1))
    alices_segment = alice.make_segment()
    for path in (
        f"/api/segments/{bobs_segment}/contacts",
        f"/api/segments/{bobs_segment}/contacts/{bobs_contact}",
        f"/api/segments/{bobs_segment}/contacts/{alices_contact}",
        f"/api/segments/{alices_segment}/contacts/{bobs_contact}",
        "/api/segments/999999/contacts",
        f"/api/segments/{alices_segment}/contacts/999999",
        "/api/segments/abc/contacts",
        f"/api/segments/{alices_segment}/contacts/abc",
    ):
        response = alice.get(path)
        assert response.status_code == 404, path
        assert response.json()["errors"][0]["status"] == "404"
    # Alice's everyone-segment never lists Bob's contacts.
    assert member_ids(alice, alices_segment) == [alices_contact]


def test_members_need_an_api_key(alice: User, client: Any) -> None:
    segment = alice.make_segment()
    assert client.get(f"/api/segments/{segment}/contacts").status_code == 401
    assert client.post("/api/segments/preview", data={"name": "x"}).status_code == 401


# -- preview ----------------------------------------------------------------------------


def preview(user: User, **fields: Any) -> dict[str, Any]:
    response = user.post("/api/segments/preview", json=fields)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_filter_preview_counts_and_shows_what_create_would(
    alice: User, people: dict[str, int]
) -> None:
    fields = {
        "filters_custom_parameter_key": ["plan"],
        "filters_custom_parameter_value": ["pro"],
        "filters_countries": ["it"],
    }
    shown = preview(alice, **fields)
    assert shown["total_contacts"] == 1 and shown["new_contacts"] == 0
    assert [c["id"] for c in shown["contacts"]] == [people["pro_it"]]
    assert shown["contacts"][0] == alice.get(f"/api/contacts/{people['pro_it']}").json()["data"]
    assert alice.get("/api/segments").json()["meta"]["total"] == 0
    saved = alice.make_segment(**fields)
    assert alice.total(saved) == shown["total_contacts"]


def test_preview_shows_the_first_ten_members(alice: User) -> None:
    ids = [alice.make_contact(italian(i)) for i in range(12)]
    shown = preview(alice)  # no filters: every contact
    assert shown["total_contacts"] == 12
    assert [c["id"] for c in shown["contacts"]] == ids[:10]


def test_a_custom_preview_counts_and_shows_the_listed_contacts_not_opted_out(
    alice: User, people: dict[str, int]
) -> None:
    listed = [people["pro_us"], people["pro_it_out"], people["free_it"]]
    shown = preview(alice, contacts_ids=listed)
    assert shown["total_contacts"] == 2
    assert [c["id"] for c in shown["contacts"]] == sorted([people["pro_us"], people["free_it"]])


def test_custom_preview_refuses_ids_that_are_not_yours(
    alice: User, bob: User, people: dict[str, int]
) -> None:
    bobs = bob.make_contact(italian(9))
    response = alice.post(
        "/api/segments/preview", data={"contacts_ids": f"{people['pro_it']},{bobs},999999"}
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["source"] == {"parameter": "contacts_ids"}
    assert error["meta"]["missing"] == [bobs, 999999]


def test_bulk_preview_creates_no_contacts(alice: User, db: Any, people: dict[str, int]) -> None:
    def contact_count() -> int:
        with db.read() as session, across_tenants("the test counts every user's contacts"):
            return int(session.execute(select(func.count()).select_from(contacts)).scalar_one())

    before = contact_count()
    numbers = f"{american(1)}\n{italian(3)}\n0039 333 1234 5{60}\n{italian(1)}\n+1 415 555 2700"
    response = alice.post("/api/segments/preview", data={"phone_numbers": numbers})
    assert response.status_code == 200, response.text
    shown = response.json()["data"]
    assert contact_count() == before
    # pro_us and pro_it count; pro_it_out has opted out; two numbers would be new.
    assert shown["total_contacts"] == 4 and shown["new_contacts"] == 2
    ids = [c["id"] for c in shown["contacts"]]
    assert ids == [*sorted([people["pro_it"], people["pro_us"]]), None, None]
    assert [c["phone_number"] for c in shown["contacts"][2:]] == ["+393331234560", "+14155552700"]
    assert shown["contacts"][3]["country_code"] == "US"
    assert shown["contacts"][3]["continent_code"] == "NA"
    assert not shown["contacts"][3]["has_opted_out"]
    saved = alice.make_segment(phone_numbers=numbers)
    assert alice.total(saved) == shown["total_contacts"]
    assert contact_count() == before + 2


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"phone_numbers": "+39 333 123 4501\nnot a number"}, "phone_numbers"),
        ({"phone_numbers": "+393331234501", "contacts_ids": "1"}, "contacts_ids"),
        ({"type": "bulk", "contacts_ids": "1"}, "contacts_ids"),
        ({"type": "custom"}, "contacts_ids"),
        ({"type": "bulk"}, "phone_numbers"),
        ({"type": "triangle"}, "type"),
        ({"contacts_ids": "1,x"}, "contacts_ids"),
        ({"filters_countries": ["XX"]}, "filters_countries"),
        ({"filters_continents": ["ZZ"]}, "filters_continents"),
        (
            {
                "filters_custom_parameter_key": ["age"],
                "filters_custom_parameter_condition": ["bigger_than"],
                "filters_custom_parameter_value": ["ten"],
            },
            "filters_custom_parameter_value[0]",
        ),
        ({"name": ""}, "name"),
    ],
)
def test_preview_validates_as_create_does(
    alice: User, fields: dict[str, Any], parameter: str
) -> None:
    previewed = alice.post("/api/segments/preview", json=fields)
    created = alice.post("/api/segments", json={"name": "n", **fields})
    assert previewed.status_code == created.status_code == 400, previewed.text
    assert previewed.json()["errors"][0]["source"] == {"parameter": parameter}
    assert previewed.json() == created.json()


def test_preview_is_not_taken_for_an_update(alice: User, people: dict[str, int]) -> None:
    segment = alice.make_segment(name="kept", contacts_ids=str(people["pro_it"]))
    response = alice.post("/api/segments/preview", data={"contacts_ids": str(people["free_it"])})
    assert response.status_code == 200
    assert response.json()["data"]["total_contacts"] == 1
    assert alice.segment(segment)["settings"] == {"contacts_ids": [people["pro_it"]]}
    # Updates by id still reach the update route.
    updated = alice.post(f"/api/segments/{segment}", data={"name": "renamed"})
    assert updated.status_code == 200
    assert alice.segment(segment)["name"] == "renamed"
    assert alice.get("/api/segments/preview").status_code == 404


def test_read_only_sessions_refuse_writes_and_leave_connections_writable(
    alice: User, db: Any
) -> None:
    with pytest.raises(exc.DBAPIError), db.read_only() as session, across_tenants("new user"):
        session.execute(insert(users).values(name="intruder", datetime=utcnow()))
    with db.write() as session, across_tenants("the test makes a user"):
        session.execute(insert(users).values(name="welcome", datetime=utcnow()))
    with db.read() as session, across_tenants("the test reads every user's name"):
        names = session.execute(select(users.c.name)).scalars().all()
    assert "welcome" in names and "intruder" not in names
    assert alice.make_segment() > 0  # writes through the app still work


# -- why --------------------------------------------------------------------------------


def explain(user: User, segment_id: int, contact_id: int) -> dict[str, Any]:
    response = user.get(f"/api/segments/{segment_id}/contacts/{contact_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_filter_explanation_lists_each_condition(alice: User, people: dict[str, int]) -> None:
    segment = alice.make_segment(
        filters_custom_parameter_key=["plan", "age"],
        filters_custom_parameter_condition=["exact", "not_contains"],
        filters_custom_parameter_value=["PRO", "9"],
        filters_countries=["IT"],
        filters_continents=["EU", "NA"],
    )
    why = explain(alice, segment, people["pro_it"])
    assert why["member"] is True and why["counted"] is True and why["has_opted_out"] is False
    assert why["type"] == "filter" and why["segment_id"] == segment
    assert why["conditions"] == [
        {"key": "plan", "condition": "exact", "value": "PRO", "contact_value": "pro", "held": True},
        {
            "key": "age",
            "condition": "not_contains",
            "value": "9",
            "contact_value": None,
            "held": True,
        },
    ]
    assert why["countries"] == {"allowed": ["IT"], "contact_value": "IT", "held": True}
    assert why["continents"] == {"allowed": ["EU", "NA"], "contact_value": "EU", "held": True}

    why = explain(alice, segment, people["pro_us"])
    assert why["member"] is False and why["counted"] is False
    assert [c["held"] for c in why["conditions"]] == [True, True]
    assert why["countries"]["held"] is False and why["continents"]["held"] is True
    assert "countries IT" in why["reason"]

    why = explain(alice, segment, people["bare_it"])
    assert why["conditions"][0] == {
        "key": "plan",
        "condition": "exact",
        "value": "PRO",
        "contact_value": None,
        "held": False,
    }
    assert "no such key" in why["reason"]


def test_an_opted_out_member_is_a_member_but_not_counted(
    alice: User, people: dict[str, int]
) -> None:
    segment = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    why = explain(alice, segment, people["pro_it_out"])
    assert (why["member"], why["counted"], why["has_opted_out"]) == (True, False, True)
    assert "include_opted_out" in why["reason"]


def test_a_filter_without_conditions_holds_every_contact(
    alice: User, people: dict[str, int]
) -> None:
    segment = alice.make_segment()
    why = explain(alice, segment, people["bare_it"])
    assert why["conditions"] == [] and why["countries"] is None and why["continents"] is None
    assert (why["member"], why["counted"]) == (True, True)
    assert "no conditions" in why["reason"]


def test_list_explanations_say_whether_the_contact_is_listed(
    alice: User, people: dict[str, int]
) -> None:
    bulk = alice.make_segment(phone_numbers=[italian(1)])
    custom = alice.make_segment(contacts_ids=str(people["free_it"]))
    why = explain(alice, bulk, people["pro_it"])
    assert (why["type"], why["listed"], why["member"], why["counted"]) == ("bulk", True, True, True)
    assert "conditions" not in why
    why = explain(alice, custom, people["pro_it"])
    assert (why["type"], why["listed"], why["member"]) == ("custom", False, False)


def test_explanations_agree_with_member_lists(alice: User) -> None:
    rng = random.Random(5)
    plans = ["pro", "PRO", "free", "pro plus", "", "10", "9.5", "x%"]
    ids = []
    for i in range(16):
        parameters = {"plan": rng.choice(plans)} if rng.random() < 0.8 else {}
        if rng.random() < 0.5:
            parameters["n"] = str(rng.randint(-3, 12))
        ids.append(
            alice.make_contact(
                italian(i) if rng.random() < 0.6 else american(i),
                custom_parameters=parameters,
                has_opted_out=rng.random() < 0.25,
            )
        )
    segment_ids = [
        alice.make_segment(
            filters_custom_parameter_key=[key],
            filters_custom_parameter_condition=[condition],
            filters_custom_parameter_value=[value],
        )
        for key, condition, value in (
            ("plan", "exact", "pro"),
            ("plan", "not_exact", "pro"),
            ("plan", "contains", "%"),
            ("plan", "not_starts_with", "p"),
            ("plan", "ends_with", ""),
            ("n", "bigger_than", "4"),
            ("plan", "lower_than", "10"),
        )
    ]
    segment_ids.append(
        alice.make_segment(
            filters_custom_parameter_key=["plan", "n"],
            filters_custom_parameter_condition=["starts_with", "not_exact"],
            filters_custom_parameter_value=["p", "3"],
            filters_countries=["IT"],
        )
    )
    segment_ids.append(alice.make_segment(filters_continents=["NA"]))
    segment_ids.append(alice.make_segment(contacts_ids=",".join(map(str, ids[::3]))))
    for segment_id in segment_ids:
        everyone = set(member_ids(alice, segment_id, "include_opted_out=1"))
        counted = set(member_ids(alice, segment_id))
        for contact_id in ids:
            why = explain(alice, segment_id, contact_id)
            assert why["member"] == (contact_id in everyone), (segment_id, contact_id, why)
            assert why["counted"] == (contact_id in counted), (segment_id, contact_id, why)


# -- docs -------------------------------------------------------------------------------


def test_openapi_documents_the_membership_routes(client: Any) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    listing = paths["/api/segments/{segment_id}/contacts"]["get"]
    names = {parameter["name"] for parameter in listing["parameters"]}
    assert {"page", "results_per_page", "after_id", "include_opted_out", "has_opted_out"} <= names
    assert "requestBody" in paths["/api/segments/preview"]["post"]
    assert "200" in paths["/api/segments/{segment_id}/contacts/{contact_id}"]["get"]["responses"]


def test_segment_rows_are_untouched_by_reads(alice: User, db: Any, people: dict[str, int]) -> None:
    segment = alice.make_segment(contacts_ids=str(people["pro_it"]))
    with db.read() as session, across_tenants("the test reads every user's segments"):
        before = session.execute(select(segments)).all()
    member_ids(alice, segment, "include_opted_out=1")
    explain(alice, segment, people["pro_it"])
    preview(alice, contacts_ids=[people["free_it"]])
    with db.read() as session, across_tenants("the test reads every user's segments"):
        assert session.execute(select(segments)).all() == before
