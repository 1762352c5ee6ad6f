"""The compilations of a filter agree: SQL (member lists), the index-driven COUNT
(counts from scratch) and Python (maintained counts). Random contacts and filters,
real SQLite, and PostgreSQL too when the tests have one (SEGMENTI_TEST_DATABASE_URL)."""

from __future__ import annotations

import string
from collections.abc import Iterator
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.orm import Session

from segmenti.db.tables import contact_parameters, contacts, metadata, users
from segmenti.membership import filters
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
conditions = st.builds(
    filters.Condition,
    key=keys,
    condition=st.sampled_from(filters.CONDITIONS),
    value=values,
).filter(lambda c: c.condition not in filters.NUMERIC or filters.parse_number(c.value) is not None)
filter_specs = st.builds(
    filters.Filter,
    conditions=st.lists(conditions, max_size=3).map(tuple),
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


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=filter_specs, people=contact_specs)
def test_sql_and_python_agree(engine: Engine, spec: filters.Filter, people: list) -> None:  # type: ignore[type-arg]
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
        transaction.rollback()
    assert found == expected
    assert found_correlated == expected
    assert counted == from_columns == len(expected - opted_out)


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
