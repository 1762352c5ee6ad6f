"""Large lists bound as one parameter (db/bulk.py), on the backend under test."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Integer, String, select

from segmenti.db import bulk
from segmenti.db.bulk import listed
from segmenti.db.engine import Database


def test_a_hundred_thousand_ids_come_back_as_integers_in_one_statement(db: Database) -> None:
    ids = list(range(1, 100_001))
    with db.read() as session:
        rows = listed(session, ids, type_=Integer)
        got = session.execute(select(rows.c.value).order_by(rows.c.value)).scalars().all()
        total = session.execute(select(rows.c.value + 1).where(rows.c.value == 7)).scalar_one()
    assert got == ids
    assert total == 8  # an integer, not a text


def test_numbers_come_back_as_given_and_a_value_with_a_comma_too(db: Database) -> None:
    numbers = ["+393331230001", "+14155550100", "x,y", ""]
    with db.read() as session:
        rows = listed(session, numbers, type_=String)
        got = session.execute(select(rows.c.value)).scalars().all()
    assert sorted(got) == sorted(numbers)
    with db.read() as session:
        rows = listed(session, [""], type_=String)
        assert session.execute(select(rows.c.value)).scalars().all() == [""]


def test_an_empty_list_has_no_rows(db: Database) -> None:
    with db.read() as session:
        rows = listed(session, [], type_=Integer)
        assert session.execute(select(rows.c.value)).all() == []


@pytest.mark.parametrize(
    "values",
    [
        ["+393331230001", None, "+14155550100"],
        [None],
        [None, None],
        [""],
        ["a,b", None],
        [],
        ["EU"] * 3,
    ],
)
def test_text_arrays_give_back_every_value_and_null(db: Database, values: list[Any]) -> None:
    if db.is_sqlite:
        pytest.skip("PostgreSQL's arrays")
    with db.read() as session:
        got = session.execute(select(bulk.text_array(values))).scalar_one()
    assert got == values
