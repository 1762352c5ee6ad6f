"""Request parameter parsing: PHP bracket names and JSON twins (no database)."""

from __future__ import annotations

import pytest

from segmenti import errors
from segmenti.forms import Params, parse_json_body


def test_php_style_names_repeat_index_and_keep_the_last_plain_value() -> None:
    params = Params.from_pairs(
        [
            ("filters_countries[]", "IT"),
            ("filters_countries[]", "FR"),
            ("filters_custom_parameter_key[3]", "b"),
            ("filters_custom_parameter_key[1]", "a"),
            ("name", "first"),
            ("name", "last"),
        ]
    )
    assert params.many("filters_countries") == ["IT", "FR"]
    assert params.indexed("filters_custom_parameter_key") == {1: "a", 3: "b"}
    assert list(params.indexed("filters_custom_parameter_key")) == [1, 3]
    assert params.text("name") == "last"
    assert params.text("absent") is None and not params.has("absent")


def test_empty_brackets_continue_after_the_highest_index_like_php() -> None:
    params = Params.from_pairs([("k[5]", "a"), ("k[]", "b"), ("k[]", "c")])
    assert params.indexed("k") == {5: "a", 6: "b", 7: "c"}


def test_json_arrays_are_indexed_by_position() -> None:
    params = parse_json_body(b'{"k": ["a", "b"], "n": 3, "flag": true, "none": null}')
    assert params.indexed("k") == {0: "a", 1: "b"}
    assert params.text("n") == "3" and params.text("flag") == "true"
    assert not params.has("none")


def test_an_empty_json_array_is_given_but_empty() -> None:
    params = parse_json_body(b'{"filters_countries": []}')
    assert params.has("filters_countries") and params.many("filters_countries") == []


@pytest.mark.parametrize("index", ["a", "1.5", "", " 1", "9" * 19])
def test_non_integer_indexes_are_invalid(index: str) -> None:
    params = Params.from_pairs([(f"k[{index}]", "x")])
    if index == "":
        assert params.indexed("k") == {0: "x"}
        return
    with pytest.raises(errors.Invalid) as caught:
        params.indexed("k")
    assert caught.value.parameter == f"k[{index}]"


def test_negative_and_huge_indexes_are_just_ordering() -> None:
    params = Params.from_pairs([("k[999999999]", "b"), ("k[-1]", "a")])
    assert params.indexed("k") == {-1: "a", 999999999: "b"}


def test_nested_brackets_are_invalid() -> None:
    params = Params.from_pairs([("k[0][1]", "x")])
    with pytest.raises(errors.Invalid):
        params.indexed("k")


@pytest.mark.parametrize("body", [b"[]", b"1", b'{"a": {"b": {"c": 1}}}', b'{"a": [[1]]}'])
def test_json_shapes_that_are_not_parameters_are_invalid(body: bytes) -> None:
    with pytest.raises(errors.Invalid):
        params = parse_json_body(body)
        params.text("a")
