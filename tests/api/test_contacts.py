"""The Contacts API (SPEC "Contacts API")."""

from __future__ import annotations

import pytest

from tests.conftest import User


def test_create_and_get_a_contact(alice: User) -> None:
    response = alice.post(
        "/api/contacts",
        data={
            "phone_number": "0039 333 123 4567",
            "name": "Maria Rossi",
            "custom_parameter_key[0]": "plan",
            "custom_parameter_value[0]": "pro",
            "custom_parameter_key[1]": "age",
            "custom_parameter_value[1]": "31",
        },
    )
    assert response.status_code == 201
    contact_id = response.json()["data"]["id"]
    contact = alice.get(f"/api/contacts/{contact_id}").json()["data"]
    assert contact == {
        "id": contact_id,
        "user_id": alice.id,
        "name": "Maria Rossi",
        "phone_number": "+393331234567",
        "custom_parameters": {"plan": "pro", "age": "31"},
        "continent_code": "EU",
        "country_code": "IT",
        "has_opted_out": False,
        "last_datetime": None,
        "datetime": contact["datetime"],
    }


@pytest.mark.parametrize(
    ("number", "country", "continent"),
    [
        ("+14155552671", "US", "NA"),
        ("+81312345678", "JP", "AS"),
        ("+5511912345678", "BR", "SA"),
        ("+61412345678", "AU", "OC"),
        ("+2348031234567", "NG", "AF"),
    ],
)
def test_country_and_continent_come_from_the_number(
    alice: User, number: str, country: str, continent: str
) -> None:
    contact = alice.get(f"/api/contacts/{alice.make_contact(number)}").json()["data"]
    assert (contact["country_code"], contact["continent_code"]) == (country, continent)


def test_a_number_the_user_already_has_is_409(alice: User, bob: User) -> None:
    alice.make_contact("+393331234567")
    response = alice.post("/api/contacts", data={"phone_number": "+39 333 1234567"})
    assert response.status_code == 409
    assert response.json()["errors"][0]["source"] == {"parameter": "phone_number"}
    # Another user may hold the same number.
    assert bob.post("/api/contacts", data={"phone_number": "+393331234567"}).status_code == 201


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({}, "phone_number"),
        ({"phone_number": ""}, "phone_number"),
        ({"phone_number": "3331234567"}, "phone_number"),
        ({"phone_number": "+39 abc"}, "phone_number"),
        ({"phone_number": "+393331234567", "name": "n" * 257}, "name"),
        ({"phone_number": "+393331234567", "has_opted_out": "maybe"}, "has_opted_out"),
        (
            {"phone_number": "+393331234567", "custom_parameter_key[0]": "k" * 65},
            "custom_parameter_key[0]",
        ),
        (
            {"phone_number": "+393331234567", "custom_parameter_key[0]": ""},
            "custom_parameter_key[0]",
        ),
        (
            {
                "phone_number": "+393331234567",
                "custom_parameter_key[0]": "k",
                "custom_parameter_value[0]": "v" * 513,
            },
            "custom_parameter_key[0]",
        ),
        (
            {"phone_number": "+393331234567", "custom_parameter_value[0]": "v"},
            "custom_parameter_value[0]",
        ),
    ],
)
def test_bad_contacts_are_400_naming_the_parameter(
    alice: User, fields: dict[str, str], parameter: str
) -> None:
    response = alice.post("/api/contacts", data=fields)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["source"]["parameter"] == parameter
    assert alice.get("/api/contacts").json()["meta"]["total"] == 0


def test_custom_parameter_limits_are_inclusive(alice: User) -> None:
    contact = alice.make_contact("+393331234567", custom_parameters={"k" * 64: "v" * 512, "e": ""})
    params = alice.get(f"/api/contacts/{contact}").json()["data"]["custom_parameters"]
    assert params == {"k" * 64: "v" * 512, "e": ""}


def test_update_replaces_given_custom_parameters_and_keeps_the_rest(alice: User) -> None:
    contact = alice.make_contact("+393331234567", name="A", custom_parameters={"a": "1", "b": "2"})
    response = alice.post(
        f"/api/contacts/{contact}",
        data={"custom_parameter_key[0]": "c", "custom_parameter_value[0]": "3"},
    )
    assert response.status_code == 200
    data = alice.get(f"/api/contacts/{contact}").json()["data"]
    assert data["custom_parameters"] == {"c": "3"}
    assert data["name"] == "A"
    assert data["last_datetime"] is not None
    alice.post(f"/api/contacts/{contact}", data={"name": "B"})
    data = alice.get(f"/api/contacts/{contact}").json()["data"]
    assert data["custom_parameters"] == {"c": "3"} and data["name"] == "B"


def test_update_to_a_number_taken_by_another_contact_is_409(alice: User) -> None:
    alice.make_contact("+393331234501")
    other = alice.make_contact("+393331234502")
    response = alice.post(f"/api/contacts/{other}", data={"phone_number": "+393331234501"})
    assert response.status_code == 409
    assert alice.get(f"/api/contacts/{other}").json()["data"]["phone_number"] == "+393331234502"


def test_delete_contact_removes_it_from_segments(alice: User) -> None:
    contact = alice.make_contact("+393331234501")
    segment_id = alice.make_segment(contacts_ids=str(contact))
    assert alice.delete(f"/api/contacts/{contact}").status_code == 204
    assert alice.get(f"/api/contacts/{contact}").status_code == 404
    assert alice.delete(f"/api/contacts/{contact}").status_code == 404
    assert alice.total(segment_id) == 0


def test_contacts_list_newest_first_narrowed_by_search_country_and_opt_out(alice: User) -> None:
    alice.make_contact("+393331234501", name="Maria Rossi")
    alice.make_contact("+14155552671", name="John", has_opted_out=True)
    alice.make_contact("+393331234503", name="Luca")

    def names(query: str) -> list[str]:
        return [c["name"] for c in alice.get(f"/api/contacts?{query}").json()["data"]]

    assert names("") == ["Luca", "John", "Maria Rossi"]
    assert names("search=rossi") == ["Maria Rossi"]
    assert names("search=4155") == ["John"]
    assert names("country_code=it") == ["Luca", "Maria Rossi"]
    assert names("has_opted_out=1") == ["John"]
    assert names("has_opted_out=0&country_code=US") == []
    assert alice.get("/api/contacts?results_per_page=10").json()["meta"]["total_pages"] == 1
    assert alice.get("/api/contacts?results_per_page=11").status_code == 400


def test_a_json_body_may_give_custom_parameters_as_key_and_value_arrays(alice: User) -> None:
    response = alice.post(
        "/api/contacts",
        json={
            "phone_number": "+393331234567",
            "custom_parameter_key": ["plan"],
            "custom_parameter_value": ["pro"],
            "has_opted_out": False,
        },
    )
    assert response.status_code == 201
    contact = alice.get(f"/api/contacts/{response.json()['data']['id']}").json()["data"]
    assert contact["custom_parameters"] == {"plan": "pro"}
