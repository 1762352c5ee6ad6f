"""The compilations of a filter agree: SQL (member lists), the index-driven COUNT
(counts from scratch) and Python (maintained counts). Random contacts and filters,
real SQLite."""

from __future__ import annotations

import string
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from segmenti.db.tables import contact_parameters, contacts, metadata, users
from segmenti.segments import filters
from segmenti.segments.filters import ContactState, indexed_parameters
from segmenti.segments.recount import UserColumns
from segmenti.timeutil import utcnow

ALPHABET = "aAbB%_\\'.ß1 -"
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

ENGINE = create_engine("sqlite://")
metadata.create_all(ENGINE)
with ENGINE.begin() as connection:
    connection.execute(insert(users).values(id=1, name="u", datetime=utcnow()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=filter_specs, people=contact_specs)
def test_sql_and_python_agree(spec: filters.Filter, people: list) -> None:  # type: ignore[type-arg]
    with ENGINE.connect() as connection, connection.begin() as transaction:
        expected = set()
        opted_out = set()
        predicate = filters.to_python(spec)
        for number, ((country, continent), raw, has_opted_out) in enumerate(people, start=1):
            connection.execute(
                insert(contacts).values(
                    id=number,
                    user_id=1,
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
                        user_id=1,
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
                select(contacts.c.id).where(filters.to_sql(spec, user_id=1))
            ).scalars()
        )
        found_correlated = set(
            connection.execute(
                select(contacts.c.id).where(filters.to_sql(spec, user_id=1, correlated=True))
            ).scalars()
        )
        counted = connection.execute(filters.count_sql(spec, user_id=1)).scalar_one()
        from_columns = UserColumns(Session(bind=connection), user_id=1).count(spec)
        transaction.rollback()
    assert found == expected
    assert found_correlated == expected
    assert counted == from_columns == len(expected - opted_out)


def test_columns_count_keys_with_more_than_255_and_65535_distinct_values() -> None:
    """Keys past 255 distinct values take two byte columns; past 65,535, SQL."""
    with ENGINE.connect() as connection, connection.begin() as transaction:
        connection.execute(
            insert(contacts),
            [
                {
                    "id": number,
                    "user_id": 1,
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
                    "user_id": 1,
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
        expected = [connection.execute(filters.count_sql(s, user_id=1)).scalar_one() for s in specs]
        columns = UserColumns(session, user_id=1)
        assert [columns.count(s) for s in specs] == expected
        assert expected[-1] == 1
        with patch("segmenti.segments.recount._MAX_TWO_BYTE_CODES", 100):
            through_sql = UserColumns(session, user_id=1)
            assert [through_sql.count(s) for s in specs] == expected
        transaction.rollback()


@given(text=st.text(alphabet=string.printable, max_size=8))
def test_parse_number_accepts_only_plain_decimals(text: str) -> None:
    number = filters.parse_number(text)
    stripped = text.strip()
    looks_decimal = bool(stripped) and all(c in "+-.0123456789" for c in stripped)
    if number is not None:
        assert looks_decimal and float(stripped) == number
