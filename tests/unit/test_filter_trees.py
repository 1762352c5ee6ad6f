"""Filter trees: SQL (both shapes, on SQLite and PostgreSQL), the index-driven COUNT,
the Python evaluator and the recount's byte columns select the same contacts, for
random trees of every registered condition over random contacts (hypothesis, pinned
in pyproject.toml, as tests/unit/test_filters.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from segmenti.membership import conditions, filters
from tests.unit.test_filters import check_agreement, contact_specs, engine, keys, values

__all__ = ["engine"]  # the fixture, parametrized over both backends

DAY = date(2026, 12, 1)
dates = st.sampled_from(["2026-11-30", "2026-12-01", "2026-12-02", "-1d", "+0d", "+1d", "-400d"])
# Stored values that are dates, not dates, or dates followed by a time.
dated_values = values | st.sampled_from(
    ["2026-11-30", "2026-12-01T10:00", "2026-12-02", "2026-13-45", "2026-1-01", "x2026-12-01"]
)


def leaf(name: str) -> st.SearchStrategy[filters.Condition]:
    kind = conditions.named(name)
    if kind.takes == "list":
        value: st.SearchStrategy[Any] = st.lists(values, min_size=1, max_size=3).map(tuple)
    elif kind.takes == "none":
        value = st.none()
    elif kind.takes == "date":
        value = dates
    else:
        value = values
    return st.builds(filters.Condition, key=keys, condition=st.just(name), value=value).filter(
        lambda c: not c.kind.numeric or filters.parse_number(c.value) is not None
    )


leaves = st.one_of(
    *(leaf(name) for name in conditions.TREE_NAMES),
    st.builds(filters.Places, st.just("country"), st.sampled_from([("IT",), ("US", "JP")])),
    st.builds(filters.Places, st.just("continent"), st.just(("EU",))),
)
nodes = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda c: filters.All(tuple(c))),
        st.lists(children, min_size=1, max_size=3).map(lambda c: filters.AnyOf(tuple(c))),
        children.map(filters.Not),
    ),
    max_leaves=8,
)
contacts_with_dates = st.lists(
    st.tuples(
        st.sampled_from([("IT", "EU"), ("US", "NA"), ("JP", "AS"), (None, None)]),
        st.dictionaries(keys, dated_values, max_size=3),
        st.booleans(),
    ),
    max_size=8,
)


def test_sql_python_and_recount_agree_on_random_trees(engine: Engine) -> None:
    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(tree=nodes, people=contacts_with_dates | contact_specs)
    def agree(tree: filters.Node, people: list) -> None:  # type: ignore[type-arg]
        check_agreement(engine, filters.Filter(tree=tree).on(DAY), people)

    agree()


@given(tree=nodes)
def test_a_tree_survives_its_settings_and_its_validation(tree: filters.Node) -> None:
    spec = filters.Filter(tree=tree)
    assert filters.Filter.from_settings(spec.as_settings()) == spec
    try:
        normalized = filters.build_tree(spec.as_settings()["filter"], max_leaves=100)
    except filters.InvalidTree as error:
        assert "levels deep" in error.problem  # random `not` chains may nest deeper
        return
    # Validation normalizes (lists de-duplicated) once: its output validates to itself.
    assert filters.build_tree(normalized.as_settings()["filter"], max_leaves=100) == normalized


def test_a_flat_filter_is_an_all_of_its_leaves() -> None:
    flat = filters.Filter(
        conditions=(filters.Condition("plan", "exact", "pro"),), countries=("IT",)
    )
    assert flat.root == filters.All(
        (filters.Places("country", ("IT",)), filters.Condition("plan", "exact", "pro"))
    )
    assert filters.Filter(tree=flat.root).as_flat() == flat


states = st.builds(
    filters.ContactState,
    st.sampled_from(["IT", "US", "JP", None]),
    st.sampled_from(["EU", "NA", "AS", None]),
    st.just(False),
    st.dictionaries(keys, dated_values, max_size=3).map(filters.indexed_parameters),
)


@given(tree=nodes, people=st.lists(states, max_size=12))
def test_a_simplified_tree_selects_the_same_contacts(
    tree: filters.Node, people: list[filters.ContactState]
) -> None:
    given_tree = filters.Filter(tree=tree).on(DAY).root
    simple = filters.simplified(given_tree)
    as_given, as_simplified = filters.node_python(given_tree), filters.node_python(simple)
    assert [as_given(person) for person in people] == [as_simplified(person) for person in people]


def _groups(node: filters.Node) -> list[filters.Node]:
    if isinstance(node, filters.All | filters.AnyOf):
        return [node, *(group for child in node.children for group in _groups(child))]
    if isinstance(node, filters.Not):
        return [node, *_groups(node.child)]
    return []


@given(tree=nodes)
def test_a_simplified_tree_has_no_nested_alike_groups_single_children_or_double_nots(
    tree: filters.Node,
) -> None:
    for group in _groups(filters.simplified(tree)):
        if isinstance(group, filters.Not):
            assert not isinstance(group.child, filters.Not)
            continue
        assert isinstance(group, filters.All | filters.AnyOf)
        assert len(group.children) != 1
        assert not any(type(child) is type(group) for child in group.children)


def test_simplifying_flattens_collapses_and_cancels() -> None:
    pro = filters.Condition("plan", "exact", "pro")
    old = filters.Condition("age", "bigger_than", "60")
    italy = filters.Places("country", ("IT",))
    tree = filters.All((filters.All((pro, filters.AnyOf((old,)))), filters.Not(filters.Not(italy))))
    assert filters.simplified(tree) == filters.All((pro, old, italy))
    # Which a flat filter then counts, from the index.
    assert filters.Filter(tree=tree).as_flat() == filters.Filter((pro, old), ("IT",), None)
    assert filters.simplified(filters.AnyOf((filters.AnyOf((pro, old)), italy))) == (
        filters.AnyOf((pro, old, italy))
    )
