"""The search rule's parsing, and the owner term the SQLite triggers and the queries
must spell alike."""

from __future__ import annotations

import sqlite3

import pytest

from segmenti.contacts.search import fts_query, like_pattern, parse, phone_digits
from segmenti.db import search_index


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("0039 3471", "+393471"),
        ("+39 (347) 123-45.67", "+393471234567"),
        ("347", "347"),
        ("34", None),  # fewer than 3 digits
        ("00 1", "+1"),
        ("+3934x", None),  # a letter: not a number
        ("39+34", None),  # + only in front
        ("٣٤٥٦", None),  # digits of other scripts are not phone digits
    ],
)
def test_a_text_looks_like_a_number_with_its_e164_digits(text: str, digits: str | None) -> None:
    assert phone_digits(text) == digits


def test_short_texts_and_short_digits_are_not_indexed() -> None:
    assert parse("  ") is None
    assert not parse("abc").indexed  # type: ignore[union-attr]
    assert parse("abcd").indexed  # type: ignore[union-attr]
    assert not parse("00 1").indexed  # type: ignore[union-attr]  # "+1": no trigram


def test_user_text_stays_inside_one_phrase_and_one_pattern() -> None:
    wanted = parse('a" OR owner : "b')
    assert wanted is not None
    query = fts_query(wanted, 7)
    assert query.endswith('(name : "a"" OR owner : ""b")')
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


@pytest.mark.parametrize("user_id", [1, 7, 4095, 4096, 123_456_789, 2**31 - 1])
def test_the_owner_term_is_the_same_in_sql_and_python(user_id: int) -> None:
    connection = sqlite3.connect(":memory:")
    trigger = search_index.SQLITE_CREATE[1]
    expression = trigger[trigger.index("char(") : trigger.index("4095)),") + len("4095))")]
    sql = expression.replace("new.user_id", str(user_id))
    (spelt,) = connection.execute(f"SELECT {sql}").fetchone()
    assert spelt == search_index.owner_token(user_id)
    assert len(spelt) == 3
