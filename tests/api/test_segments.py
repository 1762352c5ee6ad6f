"""The Segments API as the reference and SPEC describe it, through the real app."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import User


def test_reference_create_custom_segment_with_multipart_form(alice: User) -> None:
    ids = [alice.make_contact(f"+3933312345{i:02d}") for i in range(5)]
    response = alice.post(
        "/api/segments",
        files={
            "name": (None, "Example name"),
            "type": (None, "custom"),
            "contacts_ids": (None, ",".join(map(str, ids))),
        },
    )
    assert response.status_code == 201
    segment_id = response.json()["data"]["id"]
    assert response.json() == {"data": {"id": segment_id}}
    segment = alice.segment(segment_id)
    assert segment["name"] == "Example name"
    assert segment["type"] == "custom"
    assert segment["settings"] == {"contacts_ids": ids}
    assert segment["total_contacts"] == 5
    assert segment["user_id"] == alice.id
    assert segment["last_datetime"] is None
    assert len(segment["datetime"]) == 19 and segment["datetime"][10] == " "


@pytest.mark.parametrize("path", ["/api/segments", "/api/segments/"])
def test_list_works_with_and_without_trailing_slash(alice: User, path: str) -> None:
    alice.make_segment(name="one")
    response = alice.get(path)
    assert response.status_code == 200
    body = response.json()
    assert [s["name"] for s in body["data"]] == ["one"]
    assert body["meta"] == {"page": 1, "results_per_page": 25, "total": 1, "total_pages": 1}


def test_a_create_with_a_trailing_slash_answers_201(alice: User) -> None:
    response = alice.post("/api/segments/", data={"name": "slash"})
    assert response.status_code == 201


def test_list_envelope_links_are_absolute_and_keep_the_query(alice: User) -> None:
    for i in range(12):
        alice.make_segment(name=f"s{i}")
    body = alice.get("/api/segments?results_per_page=10&type=filter&page=1").json()
    assert body["meta"] == {"page": 1, "results_per_page": 10, "total": 12, "total_pages": 2}
    links = body["links"]
    assert links["self"].startswith("http://testserver/api/segments?")
    assert "type=filter" in links["next"] and "page=2" in links["next"]
    assert "results_per_page=10" in links["last"] and "page=2" in links["last"]
    assert links["prev"] is None
    second = alice.get("/api/segments?results_per_page=10&type=filter&page=2").json()
    assert len(second["data"]) == 2
    assert second["links"]["next"] is None
    assert "page=1" in second["links"]["prev"]


def test_empty_list_has_zero_pages_and_no_last_link(alice: User) -> None:
    body = alice.get("/api/segments").json()
    assert body["data"] == []
    assert body["meta"]["total_pages"] == 0
    assert body["links"]["last"] is None
    assert body["links"]["next"] is None and body["links"]["prev"] is None


def test_page_past_the_end_is_empty_not_an_error(alice: User) -> None:
    alice.make_segment()
    response = alice.get("/api/segments?page=5")
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["meta"]["page"] == 5


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("results_per_page=7", "results_per_page"),
        ("results_per_page=0", "results_per_page"),
        ("results_per_page=x", "results_per_page"),
        ("order_by=password", "order_by"),
        ("order_type=sideways", "order_type"),
        ("type=smart", "type"),
    ],
)
def test_bad_list_parameters_answer_400_naming_the_parameter(
    alice: User, query: str, parameter: str
) -> None:
    response = alice.get(f"/api/segments?{query}")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["status"] == "400"
    assert error["source"] == {"parameter": parameter}


@pytest.mark.parametrize("size", [10, 25, 50, 100, 250, 500, 1000])
def test_every_allowed_results_per_page_is_honoured(alice: User, size: int) -> None:
    assert (
        alice.get(f"/api/segments?results_per_page={size}").json()["meta"]["results_per_page"]
        == size
    )


def test_segments_list_newest_first_unless_ordered_by_name_or_id(alice: User) -> None:
    first = alice.make_segment(name="b")
    second = alice.make_segment(name="a")
    third = alice.make_segment(name="c")
    ids = [s["id"] for s in alice.get("/api/segments").json()["data"]]
    assert ids == [third, second, first]
    by_name = alice.get("/api/segments?order_by=name&order_type=asc").json()["data"]
    assert [s["name"] for s in by_name] == ["a", "b", "c"]
    by_id = alice.get("/api/segments?order_by=id&order_type=asc").json()["data"]
    assert [s["id"] for s in by_id] == [first, second, third]


def test_segments_can_be_ordered_by_total_contacts(alice: User) -> None:
    small = alice.make_segment(phone_numbers="+393331234501")
    large = alice.make_segment(phone_numbers="+393331234501,+393331234502")
    rows = alice.get("/api/segments?order_by=total_contacts&order_type=desc").json()["data"]
    assert [r["id"] for r in rows] == [large, small]


def test_segments_list_narrows_by_type_and_by_a_literal_case_insensitive_search(
    alice: User,
) -> None:
    alice.make_segment(name="Pro users Italy")
    alice.make_segment(name="Bulk list", phone_numbers="+393331234501")
    assert [s["name"] for s in alice.get("/api/segments?type=bulk").json()["data"]] == ["Bulk list"]
    assert [s["name"] for s in alice.get("/api/segments?search=PRO%20user").json()["data"]] == [
        "Pro users Italy"
    ]
    # The search is literal: % and _ are not wildcards.
    assert alice.get("/api/segments?search=%25").json()["data"] == []
    assert alice.get("/api/segments?search=_").json()["data"] == []


def test_get_unknown_segment_is_404(alice: User) -> None:
    response = alice.get("/api/segments/999")
    assert response.status_code == 404
    assert response.json()["errors"][0]["status"] == "404"


def test_non_integer_segment_id_is_404(alice: User) -> None:
    assert alice.get("/api/segments/abc").status_code == 404


# -- type inference ----------------------------------------------------------------------


def test_type_is_inferred_from_the_parameters(alice: User) -> None:
    contact = alice.make_contact("+393331234501")
    bulk = alice.make_segment(phone_numbers="+393331234502")
    custom = alice.make_segment(contacts_ids=str(contact))
    filtered = alice.make_segment(filters_countries=["IT"])
    nothing = alice.make_segment()
    assert alice.segment(bulk)["type"] == "bulk"
    assert alice.segment(custom)["type"] == "custom"
    assert alice.segment(filtered)["type"] == "filter"
    assert alice.segment(nothing)["type"] == "filter"


def test_phone_numbers_and_contacts_ids_together_without_type_is_400(alice: User) -> None:
    contact = alice.make_contact("+393331234501")
    response = alice.post(
        "/api/segments",
        data={"name": "x", "phone_numbers": "+393331234502", "contacts_ids": str(contact)},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"type": "custom", "phone_numbers": "+393331234502"}, "phone_numbers"),
        ({"type": "bulk", "phone_numbers": "+393331234502", "contacts_ids": "1"}, "contacts_ids"),
        ({"type": "bulk", "phone_numbers": "+393331234502", "filters_countries[]": "IT"}, None),
        ({"type": "filter", "contacts_ids": "1"}, "contacts_ids"),
    ],
)
def test_a_parameter_of_another_type_is_400(
    alice: User, fields: dict[str, str], parameter: str | None
) -> None:
    response = alice.post("/api/segments", data={"name": "x", **fields})
    assert response.status_code == 400
    if parameter:
        assert response.json()["errors"][0]["source"]["parameter"] == parameter
    assert alice.get("/api/segments").json()["meta"]["total"] == 0


# -- name --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "   ", "x" * 257])
def test_bad_names_are_400(alice: User, name: str | None) -> None:
    data = {} if name is None else {"name": name}
    response = alice.post("/api/segments", data=data)
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["parameter"] == "name"


def test_name_is_trimmed_and_may_be_256_characters(alice: User) -> None:
    segment_id = alice.make_segment(name="  " + "n" * 256 + "  ")
    assert alice.segment(segment_id)["name"] == "n" * 256


# -- bulk ----------------------------------------------------------------------------------


def test_bulk_normalizes_dedupes_and_creates_contacts(alice: User) -> None:
    existing = alice.make_contact("+393331234501", name="Existing", custom_parameters={"a": "b"})
    numbers = "+39 333 123 4501\n0039-333-123-4502; +39 (333) 123.4503,+393331234502\n"
    segment_id = alice.make_segment(phone_numbers=numbers)
    segment = alice.segment(segment_id)
    assert segment["type"] == "bulk"
    assert segment["settings"]["phone_numbers"] == [
        "+393331234501",
        "+393331234502",
        "+393331234503",
    ]
    assert segment["settings"]["contacts_ids"][0] == existing
    assert segment["total_contacts"] == 3
    # The existing contact is reused untouched; the new ones have no name or parameters.
    contact = alice.get(f"/api/contacts/{existing}").json()["data"]
    assert contact["name"] == "Existing" and contact["custom_parameters"] == {"a": "b"}
    new = alice.get(f"/api/contacts/{segment['settings']['contacts_ids'][1]}").json()["data"]
    assert new["name"] == "" and new["custom_parameters"] == {}
    assert new["country_code"] == "IT" and new["continent_code"] == "EU"
    assert new["has_opted_out"] is False and new["last_datetime"] is None
    # Stored as a timestamp like any contact's (same rendering, not before the older one).
    assert len(new["datetime"]) == len(contact["datetime"])
    assert new["datetime"] >= contact["datetime"]
    assert alice.get("/api/contacts").json()["meta"]["total"] == 3


def test_bulk_accepts_repeated_phone_numbers_fields(alice: User) -> None:
    response = alice.post(
        "/api/segments",
        data={"name": "x", "phone_numbers[]": ["+393331234501", "+14155552671"]},
    )
    assert response.status_code == 201
    assert alice.total(response.json()["data"]["id"]) == 2


def test_bulk_with_an_invalid_number_lists_positions_and_writes_nothing(alice: User) -> None:
    response = alice.post(
        "/api/segments",
        data={"name": "x", "phone_numbers": "+393331234501\nnot a number\n3331234567\n+1"},
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["source"] == {"parameter": "phone_numbers"}
    positions = [entry["position"] for entry in error["meta"]["invalid"]]
    assert positions == [2, 3, 4]
    assert "#2" in error["detail"]
    assert alice.get("/api/contacts").json()["meta"]["total"] == 0
    assert alice.get("/api/segments").json()["meta"]["total"] == 0


def test_bulk_over_the_limit_is_400(make_user: Any, settings: Any, client: Any) -> None:
    from segmenti.app import create_app

    small = create_app(
        settings.__class__(database_url=settings.database_url, max_bulk_phone_numbers=3)
    )
    from fastapi.testclient import TestClient

    user = make_user()
    with TestClient(small) as limited:
        numbers = ",".join(f"+3933312345{i:02d}" for i in range(4))
        response = limited.post(
            "/api/segments", headers=user.headers, data={"name": "x", "phone_numbers": numbers}
        )
        assert response.status_code == 400
        assert "at most 3" in response.json()["errors"][0]["detail"]
        # Duplicates do not count against the limit.
        numbers = ",".join(["+393331234501"] * 4 + ["+393331234502"])
        response = limited.post(
            "/api/segments", headers=user.headers, data={"name": "x", "phone_numbers": numbers}
        )
        assert response.status_code == 201
    small.state.db.dispose()


@pytest.mark.parametrize("value", ["", " \n ,;"])
def test_bulk_without_numbers_is_400(alice: User, value: str) -> None:
    response = alice.post(
        "/api/segments", data={"name": "x", "type": "bulk", "phone_numbers": value}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["parameter"] == "phone_numbers"


def test_bulk_type_without_phone_numbers_is_400(alice: User) -> None:
    response = alice.post("/api/segments", data={"name": "x", "type": "bulk"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["parameter"] == "phone_numbers"


# -- custom ---------------------------------------------------------------------------------


def test_custom_dedupes_keeping_first_seen_order(alice: User) -> None:
    a = alice.make_contact("+393331234501")
    b = alice.make_contact("+393331234502")
    segment_id = alice.make_segment(contacts_ids=f"{b}, {a},{b}")
    assert alice.segment(segment_id)["settings"] == {"contacts_ids": [b, a]}
    assert alice.total(segment_id) == 2


def test_custom_accepts_repeated_contacts_ids_and_json_arrays(alice: User) -> None:
    a = alice.make_contact("+393331234501")
    b = alice.make_contact("+393331234502")
    response = alice.post("/api/segments", data={"name": "x", "contacts_ids[]": [str(a), str(b)]})
    assert response.status_code == 201
    assert alice.segment(alice.make_segment(contacts_ids=[a, b]))["settings"] == {
        "contacts_ids": [a, b]
    }


def test_custom_with_ids_that_are_not_yours_lists_them(alice: User, bob: User) -> None:
    mine = alice.make_contact("+393331234501")
    theirs = bob.make_contact("+393331234502")
    response = alice.post(
        "/api/segments", data={"name": "x", "contacts_ids": f"{mine},{theirs},999"}
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["source"] == {"parameter": "contacts_ids"}
    assert error["meta"]["missing"] == [theirs, 999]
    assert alice.get("/api/segments").json()["meta"]["total"] == 0


@pytest.mark.parametrize("ids", ["", "a,b", "0", "-1", "1.5", "1,,x"])
def test_custom_with_malformed_ids_is_400(alice: User, ids: str) -> None:
    response = alice.post(
        "/api/segments", data={"name": "x", "type": "custom", "contacts_ids": ids}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["parameter"] == "contacts_ids"


# -- filter definitions ----------------------------------------------------------------


def test_filter_settings_hold_only_what_was_given(alice: User) -> None:
    segment_id = alice.make_segment(
        filters_custom_parameter_key=["plan", "age"],
        filters_custom_parameter_condition=["", "bigger_than"],
        filters_custom_parameter_value=["pro", "30"],
        filters_countries=["it", "FR"],
    )
    assert alice.segment(segment_id)["settings"] == {
        "filters_custom_parameters": [
            {"key": "plan", "condition": "exact", "value": "pro"},
            {"key": "age", "condition": "bigger_than", "value": "30"},
        ],
        "filters_countries": ["IT", "FR"],
    }


def test_filter_form_indexes_tie_conditions_and_need_not_be_contiguous(alice: User) -> None:
    response = alice.post(
        "/api/segments",
        data={
            "name": "x",
            "filters_custom_parameter_key[7]": "age",
            "filters_custom_parameter_value[7]": "30",
            "filters_custom_parameter_condition[7]": "lower_than",
            "filters_custom_parameter_key[2]": "plan",
            "filters_custom_parameter_value[2]": "pro",
            "filters_continents[]": ["EU", "na"],
        },
    )
    assert response.status_code == 201
    settings = alice.segment(response.json()["data"]["id"])["settings"]
    assert settings == {
        "filters_custom_parameters": [
            {"key": "plan", "condition": "exact", "value": "pro"},
            {"key": "age", "condition": "lower_than", "value": "30"},
        ],
        "filters_continents": ["EU", "NA"],
    }


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"filters_countries[]": "XX"}, "filters_countries"),
        ({"filters_countries[]": "Italy"}, "filters_countries"),
        ({"filters_continents[]": "EUROPE"}, "filters_continents"),
        (
            {
                "filters_custom_parameter_key[0]": "a",
                "filters_custom_parameter_condition[0]": "like",
            },
            "filters_custom_parameter_condition[0]",
        ),
        ({"filters_custom_parameter_key[0]": "k" * 65}, "filters_custom_parameter_key[0]"),
        ({"filters_custom_parameter_key[0]": ""}, "filters_custom_parameter_key[0]"),
        (
            {
                "filters_custom_parameter_key[0]": "a",
                "filters_custom_parameter_value[0]": "v" * 513,
            },
            "filters_custom_parameter_value[0]",
        ),
        ({"filters_custom_parameter_value[3]": "pro"}, "filters_custom_parameter_value[3]"),
        (
            {"filters_custom_parameter_condition[1]": "exact"},
            "filters_custom_parameter_condition[1]",
        ),
        (
            {
                "filters_custom_parameter_key[0]": "age",
                "filters_custom_parameter_condition[0]": "bigger_than",
                "filters_custom_parameter_value[0]": "thirty",
            },
            "filters_custom_parameter_value[0]",
        ),
        (
            {
                "filters_custom_parameter_key[0]": "age",
                "filters_custom_parameter_condition[0]": "lower_than",
                "filters_custom_parameter_value[0]": "1e2",
            },
            "filters_custom_parameter_value[0]",
        ),
        ({"filters_custom_parameter_key[a]": "plan"}, "filters_custom_parameter_key[a]"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(
    alice: User, fields: dict[str, str], parameter: str
) -> None:
    response = alice.post("/api/segments", data={"name": "x", **fields})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["source"]["parameter"] == parameter
    assert alice.get("/api/segments").json()["meta"]["total"] == 0


@pytest.mark.parametrize(
    ("fields", "parameter", "detail"),
    [
        (
            {
                "filters_custom_parameter_key[2]": "plan",
                "filters_custom_parameter_key[7]": "age",
                "filters_custom_parameter_condition[7]": "Lower_Than",
                "filters_custom_parameter_value[7]": "old",
            },
            "filters_custom_parameter_value[7]",
            "filters_custom_parameter_value[7] must be a number for lower_than, got 'old'",
        ),
        (
            {"filters_custom_parameter_key[]": ["plan", "a\x00b"]},
            "filters_custom_parameter_key[1]",
            "filters_custom_parameter_key[1] must not contain NUL characters",
        ),
        (
            {"filters_custom_parameter_key[4]": "a", "filters_custom_parameter_condition[4]": "is"},
            "filters_custom_parameter_condition[4]",
            "filters_custom_parameter_condition[4]: unknown condition 'is'; allowed: exact, "
            "not_exact, contains, not_contains, starts_with, not_starts_with, ends_with, "
            "not_ends_with, bigger_than, lower_than",
        ),
        (
            {"filters_countries[]": ["it", "Italia"]},
            "filters_countries",
            "filters_countries: unknown ISO 3166-1 alpha-2 country 'Italia'",
        ),
    ],
)
def test_a_bad_filter_is_worded_with_the_field_and_index_the_request_used(
    alice: User, fields: dict[str, Any], parameter: str, detail: str
) -> None:
    """The domain says what is wrong; the API names the field as it was sent."""
    response = alice.post("/api/segments", data={"name": "x", **fields})
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert (error["source"]["parameter"], error["detail"]) == (parameter, detail)


def test_more_than_50_conditions_is_400(alice: User) -> None:
    data = {"name": "x"}
    for i in range(51):
        data[f"filters_custom_parameter_key[{i}]"] = f"k{i}"
    response = alice.post("/api/segments", data=data)
    assert response.status_code == 400
    assert "at most 50" in response.json()["errors"][0]["detail"]
    del data["filters_custom_parameter_key[50]"]
    assert alice.post("/api/segments", data=data).status_code == 201


# -- update ----------------------------------------------------------------------------------


def test_update_name_keeps_settings_and_sets_last_datetime(alice: User) -> None:
    contact = alice.make_contact("+393331234501")
    segment_id = alice.make_segment(contacts_ids=str(contact))
    response = alice.post(f"/api/segments/{segment_id}", data={"name": "renamed"})
    assert response.status_code == 200
    assert response.json() == {"data": {"id": segment_id}}
    segment = alice.segment(segment_id)
    assert segment["name"] == "renamed"
    assert segment["settings"] == {"contacts_ids": [contact]}
    assert segment["total_contacts"] == 1
    assert segment["last_datetime"] is not None


def test_update_same_type_with_parameters_replaces_settings(alice: User) -> None:
    a = alice.make_contact("+393331234501")
    b = alice.make_contact("+393331234502")
    segment_id = alice.make_segment(contacts_ids=f"{a},{b}")
    alice.post(f"/api/segments/{segment_id}", data={"type": "custom", "contacts_ids": str(b)})
    assert alice.segment(segment_id)["settings"] == {"contacts_ids": [b]}
    assert alice.total(segment_id) == 1


def test_update_filter_with_no_filter_parameters_keeps_settings(alice: User) -> None:
    segment_id = alice.make_segment(filters_countries=["IT"])
    alice.post(f"/api/segments/{segment_id}", data={"type": "filter", "name": "n"})
    assert alice.segment(segment_id)["settings"] == {"filters_countries": ["IT"]}


def test_update_changing_type_needs_that_types_parameters(alice: User) -> None:
    segment_id = alice.make_segment(filters_countries=["IT"])
    response = alice.post(f"/api/segments/{segment_id}", data={"type": "custom"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["parameter"] == "contacts_ids"
    assert alice.segment(segment_id)["type"] == "filter"
    assert alice.segment(segment_id)["last_datetime"] is None


def test_an_update_may_turn_a_filter_segment_into_a_bulk_one(alice: User) -> None:
    segment_id = alice.make_segment(filters_countries=["IT"])
    response = alice.post(
        f"/api/segments/{segment_id}", data={"type": "bulk", "phone_numbers": "+14155552671"}
    )
    assert response.status_code == 200
    segment = alice.segment(segment_id)
    assert segment["type"] == "bulk"
    assert segment["settings"]["phone_numbers"] == ["+14155552671"]
    assert segment["total_contacts"] == 1


def test_update_unknown_segment_is_404(alice: User) -> None:
    assert alice.post("/api/segments/42", data={"name": "x"}).status_code == 404


def test_update_with_bad_input_changes_nothing(alice: User) -> None:
    segment_id = alice.make_segment(name="keep", filters_countries=["IT"])
    response = alice.post(
        f"/api/segments/{segment_id}", data={"name": "new", "filters_countries[]": "ZZ"}
    )
    assert response.status_code == 400
    segment = alice.segment(segment_id)
    assert segment["name"] == "keep" and segment["settings"] == {"filters_countries": ["IT"]}


# -- delete --------------------------------------------------------------------------------


def test_delete_answers_204_and_keeps_contacts(alice: User) -> None:
    segment_id = alice.make_segment(phone_numbers="+393331234501")
    response = alice.delete(f"/api/segments/{segment_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert alice.get(f"/api/segments/{segment_id}").status_code == 404
    assert alice.delete(f"/api/segments/{segment_id}").status_code == 404
    assert alice.get("/api/contacts").json()["meta"]["total"] == 1


# -- bodies ------------------------------------------------------------------------------


def test_urlencoded_multipart_and_json_bodies_are_equivalent(alice: User) -> None:
    fields = {
        "name": "x",
        "filters_custom_parameter_key[0]": "plan",
        "filters_custom_parameter_value[0]": "pro",
        "filters_countries[]": "IT",
    }
    urlencoded = alice.post("/api/segments", data=fields).json()["data"]["id"]
    multipart = alice.post(
        "/api/segments", files={name: (None, value) for name, value in fields.items()}
    ).json()["data"]["id"]
    as_json = alice.make_segment(
        name="x",
        filters_custom_parameter_key=["plan"],
        filters_custom_parameter_value=["pro"],
        filters_countries=["IT"],
    )
    settings = [alice.segment(i)["settings"] for i in (urlencoded, multipart, as_json)]
    assert settings[0] == settings[1] == settings[2]


def test_unknown_parameters_are_ignored(alice: User) -> None:
    response = alice.post("/api/segments", data={"name": "x", "colour": "blue"})
    assert response.status_code == 201


def test_bulk_settings_pair_every_number_with_its_own_contact(alice: User) -> None:
    alice.make_contact("+14155552671")
    numbers = ["+393331234501", "+14155552671", "+33612345678", "+81312345678", "+393331234502"]
    segment = alice.segment(alice.make_segment(phone_numbers="\n".join(numbers)))
    assert segment["settings"]["phone_numbers"] == numbers
    for number, contact_id in zip(numbers, segment["settings"]["contacts_ids"], strict=True):
        assert alice.get(f"/api/contacts/{contact_id}").json()["data"]["phone_number"] == number
