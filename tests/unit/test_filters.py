"""The conditions' registry, and the compilations of a filter agreeing: SQL (member
lists), the index-driven COUNT (counts from scratch), Python (maintained counts) and the
recount's byte columns. Random contacts and filters over every registered condition,
real SQLite, and PostgreSQL too when the tests have one (SEGMENTI_TEST_DATABASE_URL)."""

from __future__ import annotations

import ast
import string
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ColumnElement, Engine, create_engine, insert, select
from sqlalchemy.dialects import postgresql as postgresql_dialects
from sqlalchemy.dialects import sqlite as sqlite_dialects
from sqlalchemy.orm import Session

import segmenti
from segmenti.db.tables import contact_parameters, contacts, metadata, users
from segmenti.membership import conditions, filters
from segmenti.membership.conditions import ConditionKind, IndexRange, Operand
from segmenti.membership.filters import ContactState, indexed_parameters
from segmenti.segments.recount import UserColumns
from segmenti.timeutil import utcnow
from tests.conftest import PG_URL

# ß folds to two characters, é and 𝄞 take two and four bytes in UTF-8: suffixes and
# substrings are compared in characters of the folded value on every backend.
ALPHABET = "aAbB%_\\'.ß1 -é𝄞"
values = st.text(alphabet=ALPHABET + "0123456789", max_size=5) | st.sampled_from(
    ["1", "-2", "2.5", ".5", "1e2", "", " 3 ", "SS", "ss"]
)
keys = st.sampled_from(["plan", "age", "p%"])


def conditions_named(names: st.SearchStrategy[str]) -> st.SearchStrategy[filters.Condition]:
    return st.builds(filters.Condition, key=keys, condition=names, value=values).filter(
        lambda c: not c.kind.numeric or filters.parse_number(c.value) is not None
    )


any_condition = conditions_named(st.sampled_from(conditions.NAMES))


def filter_specs(name: str) -> st.SearchStrategy[filters.Filter]:
    """Filters with at least one condition `name`, among up to two others."""
    return st.builds(
        filters.Filter,
        conditions=st.tuples(
            conditions_named(st.just(name)), st.lists(any_condition, max_size=2)
        ).flatmap(lambda drawn: st.permutations([drawn[0], *drawn[1]]).map(tuple)),
        countries=st.none() | st.just(("IT",)),
        continents=st.none() | st.just(("EU", "NA")),
    )


contact_specs = st.lists(
    st.tuples(
        st.sampled_from([("IT", "EU"), ("US", "NA"), ("JP", "AS"), (None, None)]),
        st.dictionaries(keys, values, max_size=3),
        st.booleans(),
    ),
    max_size=8,
)

SQLITE = create_engine("sqlite://")
metadata.create_all(SQLITE)
# Created inside each example's transaction, which is rolled back: on PostgreSQL the
# tests' shared database may hold other tests' rows, never this user's.
USER_ID = 1_000_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield SQLITE
        return
    if not PG_URL:
        pytest.skip("no PostgreSQL server (SEGMENTI_TEST_DATABASE_URL)")
    postgresql = create_engine(request.getfixturevalue("_template"))
    yield postgresql
    postgresql.dispose()


@pytest.mark.parametrize("name", conditions.NAMES)
def test_sql_python_and_recount_agree_for_every_registered_condition(
    engine: Engine, name: str
) -> None:
    """For each registered condition, random filters holding it (and up to two others)
    over random contacts: every compilation selects the same contacts."""

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(spec=filter_specs(name), people=contact_specs)
    def agree(spec: filters.Filter, people: list) -> None:  # type: ignore[type-arg]
        check_agreement(engine, spec, people)

    agree()


def check_agreement(engine: Engine, spec: filters.Filter, people: list) -> None:  # type: ignore[type-arg]
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(insert(users).values(id=USER_ID, name="u", datetime=utcnow()))
        expected = set()
        opted_out = set()
        predicate = filters.to_python(spec)
        for number, ((country, continent), raw, has_opted_out) in enumerate(people, start=1):
            connection.execute(
                insert(contacts).values(
                    id=number,
                    user_id=USER_ID,
                    phone_number=f"+{number}",
                    custom_parameters=raw,
                    country_code=country,
                    continent_code=continent,
                    has_opted_out=has_opted_out,
                    datetime=utcnow(),
                )
            )
            for key, (folded, value_number) in indexed_parameters(raw).items():
                connection.execute(
                    insert(contact_parameters).values(
                        contact_id=number,
                        user_id=USER_ID,
                        key=key,
                        value_folded=folded,
                        value_number=value_number,
                    )
                )
            state = ContactState(country, continent, False, indexed_parameters(raw))
            if predicate(state):
                expected.add(number)
            if has_opted_out:
                opted_out.add(number)
        found = set(
            connection.execute(
                select(contacts.c.id).where(filters.to_sql(spec, user_id=USER_ID))
            ).scalars()
        )
        found_correlated = set(
            connection.execute(
                select(contacts.c.id).where(filters.to_sql(spec, user_id=USER_ID, correlated=True))
            ).scalars()
        )
        counted = connection.execute(filters.count_sql(spec, user_id=USER_ID)).scalar_one()
        from_columns = UserColumns(Session(bind=connection), user_id=USER_ID).count(spec)
        # A tree walked from each condition that may drive it, selective or not.
        walked = [
            (
                set(connection.execute(filters.walk_sql(spec, driver, user_id=USER_ID)).scalars()),
                connection.execute(
                    filters.walk_count_sql(spec, driver, user_id=USER_ID)
                ).scalar_one(),
            )
            for driver in filters.driver_candidates(spec)
        ]
        transaction.rollback()
    assert found == expected
    assert found_correlated == expected
    assert counted == from_columns == len(expected - opted_out)
    for walked_ids, walked_count in walked:
        assert walked_ids == expected - opted_out
        assert walked_count == len(walked_ids)


def test_columns_count_keys_with_more_than_255_and_65535_distinct_values() -> None:
    """Keys past 255 distinct values take two byte columns; past 65,535, SQL."""
    with SQLITE.connect() as connection, connection.begin() as transaction:
        connection.execute(insert(users).values(id=USER_ID, name="u", datetime=utcnow()))
        connection.execute(
            insert(contacts),
            [
                {
                    "id": number,
                    "user_id": USER_ID,
                    "phone_number": f"+{number}",
                    "custom_parameters": {},
                    "has_opted_out": number % 7 == 0,
                    "datetime": utcnow(),
                }
                for number in range(1, 701)
            ],
        )
        connection.execute(
            insert(contact_parameters),
            [
                {
                    "contact_id": number,
                    "user_id": USER_ID,
                    "key": "n",
                    "value_folded": str(number),
                    "value_number": float(number),
                }
                for number in range(1, 701)
            ],
        )
        session = Session(bind=connection)
        specs = [
            filters.Filter(conditions=(filters.Condition("n", condition, value),))
            for condition, value in (
                ("bigger_than", "299"),
                ("lower_than", "517"),
                ("ends_with", "7"),
                ("not_starts_with", "6"),
                ("exact", "600"),
            )
        ]
        expected = [
            connection.execute(filters.count_sql(s, user_id=USER_ID)).scalar_one() for s in specs
        ]
        columns = UserColumns(session, user_id=USER_ID)
        assert [columns.count(s) for s in specs] == expected
        assert expected[-1] == 1
        with patch("segmenti.segments.recount._MAX_TWO_BYTE_CODES", 100):
            through_sql = UserColumns(session, user_id=USER_ID)
            assert [through_sql.count(s) for s in specs] == expected
        transaction.rollback()


@given(text=st.text(alphabet=string.printable, max_size=8))
def test_parse_number_accepts_only_plain_decimals(text: str) -> None:
    number = filters.parse_number(text)
    stripped = text.strip()
    looks_decimal = bool(stripped) and all(c in "+-.0123456789" for c in stripped)
    if number is not None:
        assert looks_decimal and float(stripped) == number


# -- the registry ---------------------------------------------------------------------


@pytest.mark.parametrize("name", conditions.NAMES)
def test_every_registered_condition_has_sql_an_index_role_python_a_recount_form_and_wording(
    name: str,
) -> None:
    kind = conditions.named(name)
    assert isinstance(kind, ConditionKind) and kind.name == name
    operand = Operand(filters.fold("4"), filters.parse_number("4"))
    # SQL: a clause over any alias of contact_parameters, on both backends.
    alias = contact_parameters.alias("probe")
    held = kind.held_sql(alias, operand)
    assert isinstance(held, ColumnElement)
    for dialect in (sqlite_dialects.dialect(), postgresql_dialects.dialect()):
        compiled = str(held.compile(dialect=dialect))
        assert "probe." in compiled or compiled == "1 = 1" or compiled == "true"
        assert "LIKE" not in compiled.upper()
    assert isinstance(kind.member_sql(contacts.c.id.in_(select(alias.c.contact_id))), ColumnElement)
    # The count's index role.
    assert isinstance(kind.index, IndexRange)
    assert kind.drives_count == (kind.index.drives and not kind.negated)
    # Python: a test of one stored (folded value, number).
    test = kind.value_test(operand)
    assert test("4", 4.0) in (True, False) and test("x", None) in (True, False)
    # The recount's form: the complement of the holders, or the holders.
    assert kind.member_mask(0b0101, 0b1111) == (0b1010 if kind.negated else 0b0101)
    # Wording.
    assert kind.label and kind.phrase("plan", "pro") == f"plan {name} 'pro'"


def test_each_negated_condition_is_the_twin_of_a_registered_positive_one() -> None:
    labels = [kind.label for kind in conditions.REGISTRY.values()]
    assert len(set(labels)) == len(labels)
    assert conditions.DEFAULT in conditions.REGISTRY
    for name, kind in conditions.REGISTRY.items():
        if kind.negated:
            positive = conditions.named(name.removeprefix("not_"))
            assert not positive.negated and name == f"not_{positive.name}"
            assert (positive.index, positive.numeric) == (kind.index, kind.numeric)


@pytest.mark.parametrize(
    "module", ["membership/filters.py", "segments/recount.py", "segments/members.py"]
)
def test_no_module_but_the_registry_names_a_condition(module: str) -> None:
    """Adding a condition is one edit in conditions.py: the modules that compile,
    recount and explain filters walk the registry and spell no condition's name."""
    source = (Path(segmenti.__file__).parent / module).read_text()
    named = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in conditions.REGISTRY
    }
    assert named == set()


def test_build_reads_conditions_loosely_and_codes_as_picked() -> None:
    spec = filters.build(
        [("plan", " EXACT ", "pro"), ("age", "", "3"), ("age", "Bigger_Than", "2")],
        countries=["it", "", "IT", "us"],
        continents=[""],
        max_conditions=3,
    )
    assert spec == filters.Filter(
        conditions=(
            filters.Condition("plan", "exact", "pro"),
            filters.Condition("age", "exact", "3"),
            filters.Condition("age", "bigger_than", "2"),
        ),
        countries=("IT", "US"),
        continents=None,
    )


@pytest.mark.parametrize(
    ("given", "codes", "part", "position", "detail"),
    [
        (
            [("k", "exact", "v")] * 3,
            {},
            "conditions",
            None,
            "a filter takes at most 2 conditions, got 3",
        ),
        (
            [("k", "exact", "v"), ("", "exact", "v")],
            {},
            "key",
            1,
            "key[1] must be 1 to 64 characters",
        ),
        ([("k\x00", "exact", "v")], {}, "key", 0, "key[0] must not contain NUL characters"),
        ([("k", "exact", "v\x00")], {}, "value", 0, "value[0] must not contain NUL characters"),
        (
            [("k", "like", "v")],
            {},
            "condition",
            0,
            "condition[0]: unknown condition 'like'; allowed: " + ", ".join(conditions.NAMES),
        ),
        ([("k", "exact", "v" * 513)], {}, "value", 0, "value[0] must be at most 512 characters"),
        (
            [("k", "lower_than", "1e2")],
            {},
            "value",
            0,
            "value[0] must be a number for lower_than, got '1e2'",
        ),
        (
            [],
            {"countries": ["XX"]},
            "countries",
            None,
            "countries: unknown ISO 3166-1 alpha-2 country 'XX'",
        ),
        (
            [],
            {"continents": ["ZZ"]},
            "continents",
            None,
            "continents: unknown continent (AF, AN, AS, EU, NA, OC, SA) 'ZZ'",
        ),
    ],
)
def test_build_says_what_is_wrong_without_naming_a_request_parameter(
    given: list[tuple[str, str, str]],
    codes: dict[str, list[str]],
    part: str,
    position: int | None,
    detail: str,
) -> None:
    with pytest.raises(filters.InvalidFilter) as raised:
        filters.build(given, max_conditions=2, **codes)
    error = raised.value
    assert (error.part, error.position, error.detail) == (part, position, detail)
    assert error.parameter == (part if position is None else f"{part}[{position}]")
    # Worded again with the name an input layer gives the parameter (segments/forms.py).
    renamed = detail if part == "conditions" else detail.replace(error.parameter, "field[7]", 1)
    assert error.detail_for("field[7]") == renamed
