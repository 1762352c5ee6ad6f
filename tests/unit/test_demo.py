"""The demo data generator (no database)."""

from __future__ import annotations

from collections import Counter

from segmenti import demo, phones
from segmenti.forms import Params
from segmenti.membership.conditions import NAMES
from segmenti.segments.forms import segment_input
from segmenti.settings import Settings


def test_the_same_seed_gives_the_same_contacts_and_another_seed_others() -> None:
    assert list(demo.contacts(200, seed=3)) == list(demo.contacts(200, seed=3))
    assert list(demo.contacts(200, seed=3)) != list(demo.contacts(200, seed=4))


def test_numbers_are_valid_distinct_and_spread_over_continents() -> None:
    generated = list(demo.contacts(3_000, seed=1))
    numbers = [contact.phone.e164 for contact in generated]
    assert len(set(numbers)) == len(numbers)
    for contact in generated:
        assert phones.normalize_phone_slow(contact.phone.e164) == contact.phone
    continents = Counter(contact.phone.continent_code for contact in generated)
    assert set(continents) == {"EU", "NA", "SA", "AS", "AF", "OC"}
    assert continents.most_common(1)[0][0] == "EU"


def test_parameters_are_skewed_and_sometimes_missing() -> None:
    generated = list(demo.contacts(3_000, seed=1))
    plans = Counter(contact.custom_parameters["plan"] for contact in generated)
    assert plans["free"] > plans["basic"] > plans["pro"] > plans["enterprise"] > 0
    assert any("age" not in contact.custom_parameters for contact in generated)
    assert all(set(c.custom_parameters) <= set(demo.PARAMETER_KEYS) for c in generated)
    opted_out = sum(contact.has_opted_out for contact in generated)
    assert 0 < opted_out < 300


def test_segments_mix_types_cover_every_condition_and_are_valid_api_input() -> None:
    numbers = [contact.phone.e164 for contact in demo.contacts(100, seed=1)]
    defined = list(demo.segments(40, seed=1, numbers=numbers))
    assert defined == list(demo.segments(40, seed=1, numbers=numbers))
    assert Counter(segment.type for segment in defined).keys() == {"bulk", "custom", "filter"}
    used = set()
    for segment in defined:
        if segment.type == "custom":
            continue  # its contacts_ids are known only once its contacts are stored
        data = segment_input(Params.from_json(segment.params), Settings())
        if segment.type == "filter":
            assert data.filter is not None
            assert 1 <= len(data.filter.conditions) <= 5
            used.update(condition.condition for condition in data.filter.conditions)
    assert used == set(NAMES)
