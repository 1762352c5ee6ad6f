"""Regressions found by a black-box review against SPEC and the reference
(`tests/blackbox/` runs the same contract over a real socket)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import User


def assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["errors"][0]
    assert error["status"] == str(status) and error["title"]
    return error


@pytest.mark.parametrize(
    "identifier",
    ["2147483648", "9223372036854775807", "9223372036854775808", "99999999999999999999", "-1"],
)
@pytest.mark.parametrize("resource", ["segments", "contacts"])
def test_ids_beyond_any_row_are_404_not_500(alice: User, resource: str, identifier: str) -> None:
    path = f"/api/{resource}/{identifier}"
    assert_error(alice.get(path), 404)
    assert_error(alice.post(path, json={"name": "x"}), 404)
    assert_error(alice.delete(path), 404)


def test_contacts_ids_beyond_any_row_are_listed_as_not_yours(alice: User) -> None:
    mine = alice.make_contact("+393331234567")
    ids = f"{mine},2147483648,999999999999999999"
    response = alice.post("/api/segments", json={"name": "c", "contacts_ids": ids})
    error = assert_error(response, 400)
    assert error["source"]["parameter"] == "contacts_ids"
    assert error["meta"]["missing"] == [2147483648, 999999999999999999]
    assert alice.get("/api/segments").json()["meta"]["total"] == 0


def test_item_paths_take_a_trailing_slash_without_a_redirect(alice: User) -> None:
    segment_id = alice.make_segment(name="one")
    contact_id = alice.make_contact("+393331234567")
    got = alice.get(f"/api/segments/{segment_id}/", follow_redirects=False)
    assert got.status_code == 200 and got.json()["data"]["id"] == segment_id
    updated = alice.post(f"/api/segments/{segment_id}/", data={"name": "two"})
    assert updated.status_code == 200
    assert alice.segment(segment_id)["name"] == "two"
    assert alice.get(f"/api/contacts/{contact_id}/", follow_redirects=False).status_code == 200
    assert alice.delete(f"/api/segments/{segment_id}/", follow_redirects=False).status_code == 204
    assert alice.delete(f"/api/contacts/{contact_id}/", follow_redirects=False).status_code == 204


@pytest.mark.parametrize("resource", ["segments", "contacts"])
def test_links_use_the_path_without_trailing_slash_as_the_reference(
    alice: User, resource: str
) -> None:
    links = alice.get(f"/api/{resource}/?results_per_page=10").json()["links"]
    assert links["self"] == f"http://testserver/api/{resource}?results_per_page=10&page=1"
    assert links["first"] == links["self"]


def test_a_parameter_sent_as_a_file_is_400_not_ignored(alice: User) -> None:
    """Ignored, it would make the segment a filter of every contact."""
    alice.make_contact("+393331234567")
    response = alice.post(
        "/api/segments",
        files={"name": (None, "list"), "phone_numbers": ("numbers.txt", b"+393331234568\n")},
    )
    error = assert_error(response, 400)
    assert error["source"]["parameter"] == "phone_numbers"
    assert alice.get("/api/segments").json()["meta"]["total"] == 0
    assert alice.get("/api/contacts").json()["meta"]["total"] == 1
    # a file part the endpoint does not read is an unknown parameter: ignored
    ignored = alice.post(
        "/api/segments", files={"name": (None, "ok"), "logo": ("logo.png", b"\x89PNG")}
    )
    assert ignored.status_code == 201


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"name=x"),
        ("multipart/form-data; boundary=zz", b"garbage"),
    ],
)
def test_malformed_multipart_is_a_plain_400(alice: User, content_type: str, body: bytes) -> None:
    response = alice.post("/api/segments", content=body, headers={"Content-Type": content_type})
    error = assert_error(response, 400)
    assert error["title"] == "Invalid parameter"
    assert "form body" in error["detail"]


def test_search_is_case_insensitive_beyond_ascii(alice: User) -> None:
    alice.make_segment(name="ÉLITE Città")
    alice.make_contact("+393331234567", name="ÉMILIE Perché")
    for needle in ("élite", "ÉLITE", "CITTÀ", "città"):
        names = [
            s["name"] for s in alice.get("/api/segments", params={"search": needle}).json()["data"]
        ]
        assert names == ["ÉLITE Città"], needle
    for needle in ("émilie", "PERCHÉ"):
        found = alice.get("/api/contacts", params={"search": needle}).json()["meta"]["total"]
        assert found == 1, needle


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"type": "bulk", "filters_countries": ["IT"]}, "filters_countries"),
        ({"type": "custom", "filters_continents": ["EU"]}, "filters_continents"),
        (
            {
                "type": "custom",
                "filters_custom_parameter_value": ["x"],
                "filters_custom_parameter_key": ["k"],
            },
            "filters_custom_parameter_key",
        ),
        (
            {"contacts_ids": "1", "filters_custom_parameter_key": ["k"]},
            "filters_custom_parameter_key",
        ),
    ],
)
def test_a_filter_parameter_on_another_type_is_named(
    alice: User, params: dict[str, Any], parameter: str
) -> None:
    alice.make_contact("+393331234567")
    body = {"name": "x", "phone_numbers": "+393331234568", **params}
    if "contacts_ids" in params or params.get("type") == "custom":
        body = {"name": "x", "contacts_ids": "1", **params}
    error = assert_error(alice.post("/api/segments", json=body), 400)
    assert error["source"]["parameter"] == parameter
    assert alice.get("/api/segments").json()["meta"]["total"] == 0


def test_filter_keys_match_exactly_values_case_insensitively(alice: User) -> None:
    alice.make_contact("+393331234567", custom_parameters={"Plan": "PRO"})
    alice.make_contact("+393331234568", custom_parameters={"plan": "pro"})

    def total(key: str, condition: str) -> int:
        return alice.total(
            alice.make_segment(
                filters_custom_parameter_key=[key],
                filters_custom_parameter_condition=[condition],
                filters_custom_parameter_value=["Pro"],
            )
        )

    assert total("plan", "exact") == 1
    assert total("Plan", "exact") == 1
    assert total("PLAN", "exact") == 0
    assert total("PLAN", "not_exact") == 2


@pytest.mark.parametrize("order_type, expected", [("desc", [2, 3, 1]), ("asc", [1, 3, 2])])
def test_never_updated_segments_sort_as_the_oldest_by_last_datetime(
    alice: User, order_type: str, expected: list[int]
) -> None:
    ids = [alice.make_segment(name=f"s{i}") for i in range(3)]
    assert alice.post(f"/api/segments/{ids[1]}", data={"name": "updated"}).status_code == 200
    listed = alice.get(f"/api/segments?order_by=last_datetime&order_type={order_type}").json()
    assert [row["id"] for row in listed["data"]] == [ids[i - 1] for i in expected]


@pytest.mark.parametrize("identifier", ["2147483648", "99999999999999999999"])
def test_member_endpoints_take_out_of_range_ids_as_absent(alice: User, identifier: str) -> None:
    segment_id = alice.make_segment(name="all")
    alice.make_contact("+393331234567")
    assert_error(alice.get(f"/api/segments/{identifier}/contacts"), 404)
    assert_error(alice.get(f"/api/segments/{segment_id}/contacts/{identifier}"), 404)
    if len(identifier) <= 18:  # after_id is a positive integer of at most 18 digits
        past = alice.get(f"/api/segments/{segment_id}/contacts?after_id={identifier}")
        assert past.status_code == 200, past.text
        assert past.json()["data"] == []
