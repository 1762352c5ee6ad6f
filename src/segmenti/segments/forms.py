"""Request parameters -> a validated `SegmentInput` (no database needed).

The API's names of a filter's parameters live here, and only here: PHP-style indexed
fields (`filters_custom_parameter_key[0]`, ...) and their JSON arrays. `filter_input`
pairs them by index and hands the values to the domain (`filters.build`), which checks
the domain's rules and says what is wrong without naming a parameter; an error is then
worded with the field the request used (`filters_custom_parameter_value[3] must be a
number ...`), as the API has always answered. The API checks only what belongs to the
wire (that a condition or value comes with a key of the same index, and what `Params`
refuses: nested brackets, file parts, bad indexes), and all of it before the domain's
rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from segmenti import errors
from segmenti.checks import check_text
from segmenti.forms import Params, parse_bool
from segmenti.membership import filters
from segmenti.segments.members import OptOuts
from segmenti.segments.service import TYPES, SegmentInput, normalize_bulk, parse_contacts_ids
from segmenti.settings import Settings

KEY_FIELD = "filters_custom_parameter_key"
CONDITION_FIELD = "filters_custom_parameter_condition"
VALUE_FIELD = "filters_custom_parameter_value"
COUNTRIES_FIELD = "filters_countries"
CONTINENTS_FIELD = "filters_continents"
FILTER_FIELDS = (KEY_FIELD, CONDITION_FIELD, VALUE_FIELD, COUNTRIES_FIELD, CONTINENTS_FIELD)
# A filter tree: a JSON object in a JSON body, the same JSON as text in a form field.
TREE_FIELD = "filter"
# The field of each part of a filter the domain can find wrong (`filters.InvalidFilter`);
# too many conditions is reported on the keys.
_FIELD_OF_PART = {
    "conditions": KEY_FIELD,
    "key": KEY_FIELD,
    "condition": CONDITION_FIELD,
    "value": VALUE_FIELD,
    "countries": COUNTRIES_FIELD,
    "continents": CONTINENTS_FIELD,
}


def filter_given(params: Params) -> bool:
    """True when the request carries any filter parameter."""
    return any(params.has(name) for name in FILTER_FIELDS)


def filter_input(params: Params, *, max_conditions: int) -> filters.Filter:
    """The filter of a request, validated; raises `errors.Invalid` naming the field."""
    keys = params.indexed(KEY_FIELD)
    conditions = params.indexed(CONDITION_FIELD)
    values = params.indexed(VALUE_FIELD)
    for field_name, entries in ((CONDITION_FIELD, conditions), (VALUE_FIELD, values)):
        for index in entries:
            if index not in keys:
                raise errors.Invalid(
                    f"{field_name}[{index}] has no {KEY_FIELD}[{index}]",
                    parameter=f"{field_name}[{index}]",
                )
    return filter_from_rows(
        [
            (index, key, conditions.get(index, ""), values.get(index, ""))
            for index, key in keys.items()
        ],
        countries=params.many(COUNTRIES_FIELD),
        continents=params.many(CONTINENTS_FIELD),
        max_conditions=max_conditions,
    )


def tree_input(params: Params, *, max_leaves: int) -> filters.Filter:
    """The filter tree of a request, validated; a bad node is named by its path from
    the parameter (`filter.all[1].any[0]`). With any flat filter field: 400."""
    flat = next((name for name in FILTER_FIELDS if params.has(name)), None)
    if flat is not None:
        raise errors.Invalid(
            f"{TREE_FIELD} and {flat} are two ways of giving a filter: send one of them",
            parameter=TREE_FIELD,
        )
    return tree_from_document(params.document(TREE_FIELD), max_leaves=max_leaves)


def tree_from_document(document: object, *, max_leaves: int) -> filters.Filter:
    """A filter tree from its JSON form (the API's field, the dashboard's builder),
    errors naming the node's path from `filter`."""
    try:
        return filters.build_tree(document, max_leaves=max_leaves)
    except filters.InvalidTree as error:
        path = TREE_FIELD + ("." + error.path if error.path else "")
        detail = error.problem
        if error.path:
            detail = path + detail.removeprefix(error.path)
        else:
            detail = TREE_FIELD + detail.removeprefix("the filter")
        raise errors.Invalid(detail, parameter=path) from None


def filter_from_rows(
    rows: Sequence[tuple[int, str, str, str]],
    *,
    countries: Sequence[str] | None,
    continents: Sequence[str] | None,
    max_conditions: int,
) -> filters.Filter:
    """A filter from numbered conditions (index, key, condition, value) and the codes
    picked: the request's fields paired by index, or the dashboard's form rows, whose
    inputs carry the same names. Raises `errors.Invalid` naming the field of that index."""
    try:
        return filters.build(
            [(key, condition, value) for _, key, condition, value in rows],
            countries=countries,
            continents=continents,
            max_conditions=max_conditions,
        )
    except filters.InvalidFilter as error:
        name = _FIELD_OF_PART[error.part]
        if error.position is not None:
            name += f"[{rows[error.position][0]}]"
        raise errors.Invalid(error.detail_for(name), parameter=name) from None


def segment_name(raw: str) -> str:
    """`name`, without surrounding spaces (the API's field and the dashboard's)."""
    return check_text("name", raw.strip(), min_length=1, max_length=256)


def segment_input(params: Params, settings: Settings) -> SegmentInput:
    name = params.text("name")
    if name is not None:
        name = segment_name(name)
    kind = params.text("type")
    if kind is not None:
        kind = kind.strip().lower()
        if kind not in TYPES:
            raise errors.Invalid(
                f"type must be one of {', '.join(TYPES)}, got {kind[:40]!r}", parameter="type"
            )
    phone_numbers = params.many("phone_numbers")
    contacts_ids = params.many("contacts_ids")
    return SegmentInput(
        name=name,
        type=kind,
        bulk=None
        if phone_numbers is None
        else normalize_bulk(phone_numbers, limit=settings.max_bulk_phone_numbers),
        contacts_ids=None if contacts_ids is None else parse_contacts_ids(contacts_ids),
        filter=_any_filter(params, settings),
        filter_parameter=TREE_FIELD
        if params.has(TREE_FIELD)
        else next((name for name in FILTER_FIELDS if params.has(name)), KEY_FIELD),
    )


def _any_filter(params: Params, settings: Settings) -> filters.Filter | None:
    if params.has(TREE_FIELD):
        return tree_input(params, max_leaves=settings.max_filter_leaves)
    if filter_given(params):
        return filter_input(params, max_conditions=settings.max_filter_conditions)
    return None


def opt_outs(params: Params) -> OptOuts:
    """`include_opted_out` and `has_opted_out` of a member list or a segment's export;
    an empty value is as good as absent."""

    def flag(name: str) -> bool | None:
        raw = params.text(name)
        return None if raw is None or raw.strip() == "" else parse_bool(name, raw)

    return OptOuts(
        include_opted_out=bool(flag("include_opted_out")), has_opted_out=flag("has_opted_out")
    )
