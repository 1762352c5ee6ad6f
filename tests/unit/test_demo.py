"""The demo's contacts and segment catalogue (no database)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta

import pytest

from segmenti import demo, phones
from segmenti.forms import Params
from segmenti.membership import filters
from segmenti.membership.conditions import NAMES, TREE_NAMES
from segmenti.segments.forms import segment_input
from segmenti.settings import Settings

TODAY = date(2026, 12, 1)
BLOCKS = {city.block for market in demo.MARKETS for city in market.cities}


def test_the_same_seed_and_date_give_the_same_contacts_and_another_seed_others() -> None:
    first = list(demo.contacts(500, seed=3, today=TODAY))
    assert first == list(demo.contacts(500, seed=3, today=TODAY))
    assert first != list(demo.contacts(500, seed=4, today=TODAY))


def test_a_later_run_date_moves_every_date_and_nothing_else() -> None:
    later = TODAY + timedelta(days=200)
    for before, after in zip(
        demo.contacts(500, seed=3, today=TODAY),
        demo.contacts(500, seed=3, today=later),
        strict=True,
    ):
        assert (before.phone, before.name, before.has_opted_out) == (
            after.phone,
            after.name,
            after.has_opted_out,
        )
        for key in ("signup_date", "last_purchase_date"):
            if key in before.custom_parameters:
                moved = date.fromisoformat(after.custom_parameters[key])
                assert moved - date.fromisoformat(before.custom_parameters[key]) == later - TODAY


@pytest.mark.parametrize("block", sorted(BLOCKS, key=lambda b: b.prefix), ids=lambda b: b.prefix)
def test_every_number_of_every_reserved_block_is_valid_for_its_country(
    block: demo.NumberBlock,
) -> None:
    countries = {m.country for m in demo.MARKETS for c in m.cities if c.block == block}
    # Italy's 10 million: its ends and every 997th number between.
    indexes = (
        range(block.size) if block.size <= 50_000 else [*range(0, block.size, 997), block.size - 1]
    )
    for index in indexes:
        number = block.number(index)
        assert phones.normalize_phone_slow(number).country_code in countries, number


def test_numbers_are_distinct_valid_and_from_the_reserved_blocks() -> None:
    generated = list(demo.contacts(60_000, seed=1, today=TODAY))
    numbers = [contact.phone.e164 for contact in generated]
    assert len(set(numbers)) == len(numbers)
    in_blocks = {
        block.number(i) for block in BLOCKS if block.size <= 50_000 for i in range(block.size)
    }
    italy = re.compile(r"\+3939\d{7}")
    for contact in generated:
        assert phones.normalize_phone_slow(contact.phone.e164) == contact.phone
        assert contact.phone.e164 in in_blocks or italy.fullmatch(contact.phone.e164)
    countries = Counter(contact.phone.country_code for contact in generated)
    assert countries.most_common(1)[0][0] == "IT"
    assert 0.8 < countries["IT"] / len(generated) < 0.95
    assert set(countries) == {market.country for market in demo.MARKETS}
    # The small reserved ranges are used up, not overrun: the rest go to Italy.
    assert countries["AU"] == 30
    assert countries["SE"] == 95


def test_names_and_cities_belong_to_the_contacts_country() -> None:
    markets = {market.country: market for market in demo.MARKETS}
    for contact in demo.contacts(5_000, seed=2, today=TODAY):
        market = markets[contact.phone.country_code or ""]
        first, last = contact.name.split(" ", 1)
        assert first in market.first_names and last in market.last_names, contact
        city = contact.custom_parameters.get("city")
        assert city is None or city in {c.name for c in market.cities}


def test_parameters_are_a_shops_and_dates_are_consistent() -> None:
    generated = list(demo.contacts(20_000, seed=1, today=TODAY))
    first_day = TODAY - timedelta(days=demo.HISTORY_DAYS)
    for contact in generated:
        parameters = contact.custom_parameters
        assert set(parameters) <= set(demo.PARAMETER_KEYS)
        signup = date.fromisoformat(parameters["signup_date"])
        assert first_day <= signup <= TODAY
        spent = float(parameters["total_spent"])
        if "last_purchase_date" in parameters:
            assert signup <= date.fromisoformat(parameters["last_purchase_date"]) <= TODAY
        else:
            assert spent == 0
        tier = parameters.get("loyalty_tier")
        assert (tier is None) == (spent == 0)
    plans = Counter(contact.custom_parameters["plan"] for contact in generated)
    assert plans["free"] > plans["basic"] > plans["pro"] > plans["business"] > 0
    tiers = Counter(contact.custom_parameters.get("loyalty_tier") for contact in generated)
    assert tiers["bronze"] > tiers["silver"] > tiers["gold"] > tiers["platinum"] > 0
    opted_out = sum(contact.has_opted_out for contact in generated) / len(generated)
    assert 0.02 < opted_out < 0.06


def _filter(segment: demo.DemoSegment) -> filters.Filter:
    spec = segment_input(Params.from_json(segment.api_params()), Settings()).filter
    assert spec is not None, segment.name
    return spec


def expected_totals(generated: list[demo.DemoContact], today: date) -> dict[str, int]:
    """Each catalogue segment's count of contacts not opted out, by the filters' own
    Python evaluation (the one explain uses) with relative dates counted from `today`,
    and for the lists from the contacts the picker took."""
    states = {
        c.phone.e164: filters.ContactState(
            c.phone.country_code,
            c.phone.continent_code,
            c.has_opted_out,
            filters.indexed_parameters(c.custom_parameters),
        )
        for c in generated
        if not c.has_opted_out
    }
    picker = demo.Picker(demo.CATALOGUE)
    for contact in generated:
        picker.see(contact)
    totals: dict[str, int] = {}
    for segment in demo.CATALOGUE:
        if segment.picks is not None:
            totals[segment.name] = sum(n in states for n in picker.numbers[segment.name])
        else:
            holds = filters.to_python(_filter(segment).on(today))
            totals[segment.name] = sum(map(holds, states.values()))
    return totals


@pytest.mark.parametrize("count", [len(demo.CAST), 100, 10_000])
@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("today", [TODAY, date(2031, 2, 28)], ids=str)
def test_every_segment_of_the_catalogue_has_members_at_any_size(
    count: int, seed: int, today: date
) -> None:
    generated = list(demo.contacts(count, seed=seed, today=today))
    empty = [name for name, total in expected_totals(generated, today).items() if total == 0]
    assert empty == []
    picker = demo.Picker(demo.CATALOGUE)
    for contact in generated:
        picker.see(contact)
    for segment in demo.CATALOGUE:
        if segment.picks is not None:
            assert len(picker.numbers[segment.name]) <= segment.limit, segment.name


def test_segment_names_read_like_an_operators() -> None:
    names = [segment.name for segment in demo.CATALOGUE]
    assert len(set(names)) == len(names)
    # Every condition's name but `in`, a word of both languages ("Clienti in Lombardia").
    words = [name for name in TREE_NAMES if name != "in"]
    raw = re.compile("|".join(rf"\b{re.escape(name)}\b" for name in words) + r"|#\s*\d")
    for name in names:
        assert not raw.search(name), name
        assert 0 < len(name) <= 256


def test_segments_are_valid_api_input_and_use_the_whole_filter_language() -> None:
    flat_conditions: set[str] = set()
    tree_conditions: set[str] = set()
    groups: set[str] = set()
    for segment in demo.CATALOGUE:
        params = segment.api_params()
        if segment.type == "bulk":
            params["phone_numbers"] = ["+442079460001"]
        elif segment.type == "custom":
            continue  # its contacts_ids are known only once its contacts are stored
        data = segment_input(Params.from_json(params), Settings())
        if data.filter is None:
            continue
        if data.filter.tree is None:
            flat_conditions.update(condition.condition for condition in data.filter.conditions)
            continue
        for leaf in filters.leaves(data.filter.tree):
            if isinstance(leaf, filters.Condition):
                tree_conditions.add(leaf.condition)
        groups.update(_groups(segment.params["filter"]))
    assert flat_conditions == set(NAMES)
    assert flat_conditions | tree_conditions == set(TREE_NAMES)
    assert groups == {"all", "any", "not"}
    assert {segment.type for segment in demo.CATALOGUE} == {"bulk", "custom", "filter"}


def _groups(node: dict) -> set[str]:
    found = {group for group in ("all", "any", "not") if group in node}
    children = node.get("all") or node.get("any") or ([node["not"]] if "not" in node else [])
    return found.union(*(_groups(child) for child in children))


def test_tree_segments_count_dates_from_today_never_from_a_calendar_date() -> None:
    # A date written out would empty "Inactive for 90 days" with time.
    dated = [
        segment for segment in demo.CATALOGUE if segment.type == "filter" and _filter(segment).dated
    ]
    assert len(dated) >= 3
    for segment in demo.CATALOGUE:
        assert not re.search(r"\d{4}-\d{2}-\d{2}", str(segment.params)), segment.name
