"""starts_with is answered as an index range (conditions.prefix_upper_bound): it must
still mean "starts with" at the edges of the code point order, on both backends."""

from __future__ import annotations

import pytest

from segmenti.membership.conditions import prefix_upper_bound
from tests.conftest import User


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("ab", "ac"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff\U0010ffff", None),
        ("a\ud7ff", "a\ue000"),
        ("z", "{"),
    ],
)
def test_a_prefixs_upper_bound_is_the_least_string_above_all_it_starts(
    prefix: str, bound: str | None
) -> None:
    assert prefix_upper_bound(prefix) == bound


VALUES = ["ab", "abz", "ab\U0010ffff", "ac", "aa", "a", "a\U0010ffffz", "b", "ß", "ssx", "é", "ê"]


CASES = [
    ("ab", {"ab", "abz", "ab\U0010ffff"}),
    ("a\U0010ffff", {"a\U0010ffffz"}),
    ("A", {"ab", "abz", "ab\U0010ffff", "ac", "aa", "a", "a\U0010ffffz"}),
    ("SS", {"ß", "ssx"}),  # ß folds to "ss"
    ("é", {"é"}),
    ("", set(VALUES)),
]


def test_starts_with_at_the_edges_of_the_code_point_order(alice: User) -> None:
    ids = {
        alice.make_contact(f"+3933312345{n:02d}", custom_parameters={"v": value}): value
        for n, value in enumerate(VALUES)
    }
    segments = []
    for prefix, expected in CASES:
        positive, negated = (
            alice.make_segment(
                filters_custom_parameter_key=["v"],
                filters_custom_parameter_condition=[condition],
                filters_custom_parameter_value=[prefix],
            )
            for condition in ("starts_with", "not_starts_with")
        )
        assert (alice.total(positive), alice.total(negated)) == (
            len(expected),
            len(VALUES) - len(expected),
        ), prefix
        segments.append((positive, expected))
    # The maintained counts (Python) agree with the SQL counts after a delete.
    gone = next(contact_id for contact_id, value in ids.items() if value == "ab\U0010ffff")
    alice.delete(f"/api/contacts/{gone}")
    for positive, expected in segments:
        assert alice.total(positive) == len(expected - {"ab\U0010ffff"})
