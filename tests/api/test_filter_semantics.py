"""What a filter means (SPEC "What a filter means"), checked through total_contacts,
which is maintained incrementally, and against a count from scratch."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from segmenti.db.tables import contacts
from segmenti.membership import conditions, filters
from segmenti.membership.counts import count_filter
from tests.conftest import User


def filter_total(user: User, key: str, condition: str, value: str) -> int:
    segment_id = user.make_segment(
        filters_custom_parameter_key=[key],
        filters_custom_parameter_condition=[condition],
        filters_custom_parameter_value=[value],
    )
    return user.total(segment_id)


@pytest.fixture
def people(alice: User) -> User:
    alice.make_contact("+393331234501", custom_parameters={"plan": "Pro", "age": "31"})
    alice.make_contact("+393331234502", custom_parameters={"plan": "PROFESSIONAL", "age": "9.5"})
    alice.make_contact("+393331234503", custom_parameters={"plan": "free", "age": "n/a"})
    alice.make_contact("+393331234504", custom_parameters={"age": "-3"})
    alice.make_contact("+393331234505")
    return alice


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("exact", "pro", 1),
        ("exact", "PRO", 1),
        ("not_exact", "pro", 4),
        ("contains", "RO", 2),
        ("not_contains", "ro", 3),
        ("starts_with", "pro", 2),
        ("not_starts_with", "pro", 3),
        ("ends_with", "ee", 1),
        ("not_ends_with", "ee", 4),
        ("contains", "", 3),
        ("not_contains", "", 2),
    ],
)
def test_string_conditions_are_case_insensitive(
    people: User, condition: str, value: str, expected: int
) -> None:
    assert filter_total(people, "plan", condition, value) == expected


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("bigger_than", "10", 1),  # 31; "9.5" < "10" numerically, n/a never matches
        ("bigger_than", "9", 2),
        ("lower_than", "10", 2),  # 9.5 and -3
        ("lower_than", "-3", 0),
        ("bigger_than", "-3.5", 3),
        ("lower_than", ".5", 1),
        ("bigger_than", " 30 ", 1),
    ],
)
def test_numeric_conditions_compare_numbers(
    people: User, condition: str, value: str, expected: int
) -> None:
    assert filter_total(people, "age", condition, value) == expected


@pytest.mark.parametrize("stored", ["1e2", "n/a", "", "1,5", "0x10", "inf", "NaN", "1.", "+-1"])
def test_values_that_are_not_numbers_never_satisfy_numeric_conditions(
    alice: User, stored: str
) -> None:
    alice.make_contact("+393331234501", custom_parameters={"n": stored})
    assert filter_total(alice, "n", "bigger_than", "-1000000") == 0
    assert filter_total(alice, "n", "lower_than", "1000000") == 0


@pytest.mark.parametrize("stored", ["+5", "-3", "2.50", ".5", " 7 ", "007"])
def test_values_written_as_numbers_satisfy_numeric_conditions(alice: User, stored: str) -> None:
    alice.make_contact("+393331234501", custom_parameters={"n": stored})
    assert filter_total(alice, "n", "bigger_than", "-1000") == 1


@pytest.mark.parametrize("special", ["%", "_", "*", "'", '"', "\\", "a%b", "50%_off", "$.x"])
def test_special_characters_are_literal_in_values(alice: User, special: str) -> None:
    alice.make_contact("+393331234501", custom_parameters={"code": f"x{special}y"})
    alice.make_contact("+393331234502", custom_parameters={"code": "xzzzy"})
    assert filter_total(alice, "code", "contains", special) == 1
    assert filter_total(alice, "code", "exact", f"x{special}y") == 1
    assert filter_total(alice, "code", "starts_with", f"x{special}") == 1
    assert filter_total(alice, "code", "ends_with", f"{special}y") == 1
    assert filter_total(alice, "code", "not_contains", special) == 1


@pytest.mark.parametrize("key", ["a.b", "$.plan", "a'b", 'a"b', "p%", "p_", "a[0]", "\\"])
def test_special_characters_are_literal_in_keys(alice: User, key: str) -> None:
    alice.make_contact("+393331234501", custom_parameters={key: "v"})
    alice.make_contact("+393331234502", custom_parameters={"other": "v"})
    assert filter_total(alice, key, "exact", "v") == 1


def test_exact_and_contains_fold_unicode_case(alice: User) -> None:
    alice.make_contact("+393331234501", custom_parameters={"city": "STRASSE Ärzte"})
    assert filter_total(alice, "city", "exact", "straße ärzte") == 1
    assert filter_total(alice, "city", "contains", "ÄRZ") == 1


def test_a_contact_without_the_key_matches_every_not_condition_and_no_positive_one(
    alice: User,
) -> None:
    alice.make_contact("+393331234501")
    for name in conditions.NAMES:  # the flat fields take the reference's conditions
        kind = conditions.named(name)
        value = "1" if kind.numeric else "x"
        assert filter_total(alice, "missing", name, value) == int(kind.negated), name


def test_conditions_countries_and_continents_all_hold(alice: User) -> None:
    alice.make_contact("+393331234501", custom_parameters={"plan": "pro"})  # IT
    alice.make_contact("+14155552671", custom_parameters={"plan": "pro"})  # US
    alice.make_contact("+33612345678", custom_parameters={"plan": "free"})  # FR
    segment_id = alice.make_segment(
        filters_custom_parameter_key=["plan"],
        filters_custom_parameter_value=["pro"],
        filters_continents=["EU"],
    )
    assert alice.total(segment_id) == 1
    assert alice.total(alice.make_segment(filters_countries=["it", "us"])) == 2
    assert alice.total(alice.make_segment(filters_countries=["FR"], filters_continents=["NA"])) == 0


def test_no_filters_selects_every_contact(alice: User) -> None:
    alice.make_contact("+393331234501")
    alice.make_contact("+14155552671")
    assert alice.total(alice.make_segment()) == 2


def test_counts_exclude_opted_out_contacts(alice: User) -> None:
    alice.make_contact("+393331234501", has_opted_out=True)
    alice.make_contact("+393331234502")
    assert alice.total(alice.make_segment()) == 1


# -- live membership --------------------------------------------------------------------


def test_filter_counts_follow_contacts_created_changed_and_deleted(alice: User) -> None:
    segment_id = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    not_pro = alice.make_segment(
        filters_custom_parameter_key=["plan"],
        filters_custom_parameter_condition=["not_exact"],
        filters_custom_parameter_value=["pro"],
    )
    assert (alice.total(segment_id), alice.total(not_pro)) == (0, 0)
    contact = alice.make_contact("+393331234501", custom_parameters={"plan": "pro"})
    assert (alice.total(segment_id), alice.total(not_pro)) == (1, 0)
    alice.post(f"/api/contacts/{contact}", json={"custom_parameters": {"plan": "free"}})
    assert (alice.total(segment_id), alice.total(not_pro)) == (0, 1)
    alice.post(f"/api/contacts/{contact}", json={"custom_parameters": {"plan": "PRO"}})
    assert (alice.total(segment_id), alice.total(not_pro)) == (1, 0)
    alice.post(f"/api/contacts/{contact}", json={"has_opted_out": True})
    assert (alice.total(segment_id), alice.total(not_pro)) == (0, 0)
    alice.post(f"/api/contacts/{contact}", json={"has_opted_out": False})
    assert alice.total(segment_id) == 1
    alice.delete(f"/api/contacts/{contact}")
    assert (alice.total(segment_id), alice.total(not_pro)) == (0, 0)


def test_country_filter_follows_a_changed_phone_number(alice: User) -> None:
    italy = alice.make_segment(filters_countries=["IT"])
    contact = alice.make_contact("+393331234501")
    assert alice.total(italy) == 1
    alice.post(f"/api/contacts/{contact}", json={"phone_number": "+14155552671"})
    assert alice.total(italy) == 0


def test_bulk_segment_contacts_enter_matching_filter_segments(alice: User) -> None:
    italy = alice.make_segment(filters_countries=["IT"])
    everyone = alice.make_segment()
    alice.make_segment(phone_numbers="+393331234501,+393331234502,+14155552671")
    assert alice.total(italy) == 2
    assert alice.total(everyone) == 3


def test_list_segments_follow_deletes_and_opt_outs(alice: User) -> None:
    a = alice.make_contact("+393331234501")
    b = alice.make_contact("+393331234502")
    custom = alice.make_segment(contacts_ids=f"{a},{b}")
    bulk = alice.make_segment(phone_numbers="+393331234501,+393331234502")
    alice.post(f"/api/contacts/{a}", json={"has_opted_out": "1"})
    assert (alice.total(custom), alice.total(bulk)) == (1, 1)
    alice.delete(f"/api/contacts/{b}")
    assert (alice.total(custom), alice.total(bulk)) == (0, 0)
    alice.post(f"/api/contacts/{a}", json={"has_opted_out": "0"})
    assert (alice.total(custom), alice.total(bulk)) == (1, 1)


def test_maintained_counts_equal_counts_from_scratch(alice: User, db: Any) -> None:
    """Many writes of every kind, then every segment's count against a fresh COUNT."""
    plans = ["pro", "free", "Pro plus", "50%"]
    segment_ids = []
    for condition in conditions.NAMES:  # the flat fields take the reference's conditions
        kind = conditions.named(condition)
        value = "3" if kind.numeric else "pro"
        segment_ids.append(
            alice.make_segment(
                filters_custom_parameter_key=["n" if kind.numeric else "plan"],
                filters_custom_parameter_condition=[condition],
                filters_custom_parameter_value=[value],
            )
        )
    segment_ids.append(alice.make_segment(filters_continents=["EU", "NA"]))
    ids = []
    for i in range(30):
        number = f"+3933312345{i:02d}" if i % 3 else f"+1415555{2600 + i}"
        ids.append(
            alice.make_contact(number, custom_parameters={"plan": plans[i % 4], "n": str(i % 7)})
        )
    segment_ids.append(alice.make_segment(contacts_ids=",".join(map(str, ids[::2]))))
    for i, contact in enumerate(ids):
        if i % 4 == 0:
            alice.post(f"/api/contacts/{contact}", json={"has_opted_out": True})
        if i % 5 == 0:
            alice.post(f"/api/contacts/{contact}", json={"custom_parameters": {"plan": "PRO"}})
        if i % 6 == 0:
            alice.delete(f"/api/contacts/{contact}")
    with db.read() as session:
        for segment_id in segment_ids:
            segment = alice.segment(segment_id)
            if segment["type"] == "filter":
                spec = filters.Filter.from_settings(segment["settings"])
                expected = count_filter(session, user_id=alice.id, spec=spec)
            else:
                expected = session.execute(
                    select(func.count())
                    .select_from(contacts)
                    .where(
                        contacts.c.user_id == alice.id,
                        contacts.c.id.in_(segment["settings"]["contacts_ids"]),
                        contacts.c.has_opted_out.is_(False),
                    )
                ).scalar_one()
            assert segment["total_contacts"] == expected, segment


def test_members_where_selects_what_total_contacts_counts(alice: User, db: Any) -> None:
    from segmenti.segments.members import members_where

    a = alice.make_contact("+393331234501", custom_parameters={"plan": "pro"})
    b = alice.make_contact("+393331234502", custom_parameters={"plan": "pro"}, has_opted_out=True)
    alice.make_contact("+14155552671", custom_parameters={"plan": "free"})
    custom = alice.make_segment(contacts_ids=f"{a},{b}")
    pro = alice.make_segment(
        filters_custom_parameter_key=["plan"], filters_custom_parameter_value=["pro"]
    )
    with db.read() as session:
        for segment_id in (custom, pro):
            segment = alice.segment(segment_id)
            for include_opted_out, expected in ((False, [a]), (True, [a, b])):
                where = members_where(
                    user_id=alice.id,
                    segment_id=segment_id,
                    type=segment["type"],
                    settings=segment["settings"],
                    include_opted_out=include_opted_out,
                )
                found = session.execute(
                    select(contacts.c.id).where(where).order_by(contacts.c.id)
                ).scalars()
                assert list(found) == expected
            assert segment["total_contacts"] == 1
