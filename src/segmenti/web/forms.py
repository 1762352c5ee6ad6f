"""What the dashboard's segment and contact forms hold between round trips.

A form is re-rendered from what was posted (with an error, a preview, a row added or
removed), so its state is plain data. `to_input` builds the services' input from it
(`SegmentInput`, `ContactInput`) through the checks the API's fields go through; the
form's fields are named as the API's are, so an error's `parameter` names the field it
belongs next to, and its words are the API's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from segmenti.checks import check_parameters
from segmenti.contacts.forms import contact_name, phone_number
from segmenti.contacts.service import ContactInput
from segmenti.forms import Params, parse_choice
from segmenti.membership import filters
from segmenti.segments.forms import (
    CONDITION_FIELD,
    CONTINENTS_FIELD,
    COUNTRIES_FIELD,
    KEY_FIELD,
    TREE_FIELD,
    VALUE_FIELD,
    filter_from_rows,
    segment_name,
    tree_from_document,
)
from segmenti.segments.service import TYPES, SegmentInput, normalize_bulk, parse_contacts_ids
from segmenti.settings import Settings

_KEY, _CONDITION, _VALUE = KEY_FIELD, CONDITION_FIELD, VALUE_FIELD
_FILTER_MODE = "filter_mode"
_PARAMETER_KEY, _PARAMETER_VALUE = "custom_parameter_key", "custom_parameter_value"


@dataclass
class ConditionRow:
    index: int
    key: str = ""
    condition: str = "exact"
    value: str = ""

    @property
    def blank(self) -> bool:
        """A row the person has not started filling in: not a condition yet."""
        return not self.key and not self.value


@dataclass
class ParameterRow:
    index: int
    key: str = ""
    value: str = ""

    @property
    def blank(self) -> bool:
        return not self.key and not self.value


def _next_index(rows: Sequence[ConditionRow | ParameterRow]) -> int:
    return max((row.index for row in rows), default=-1) + 1


def _form_action(pairs: Iterable[tuple[str, str]]) -> str:
    return next((value for name, value in pairs if name == "action"), "save")


def removed_row(action: str) -> int | None:
    """The index of `remove:N`, the value of a row's Remove button."""
    name, _, index = action.partition(":")
    if name == "remove" and index.lstrip("-").isdigit():
        return int(index)
    return None


@dataclass
class SegmentForm:
    name: str = ""
    type: str = "filter"
    phone_numbers: str = ""
    contacts_ids: str = ""
    conditions: list[ConditionRow] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    continents: list[str] = field(default_factory=list)
    action: str = "save"
    # "rows": the reference's conditions, all of which hold (the fields above);
    # "tree": a filter tree, edited by the builder (static/app.js) as the JSON text of
    # the API's `filter` field, which is also the field without JavaScript.
    filter_mode: str = "rows"
    filter_tree: str = '{"all": []}'

    @classmethod
    def from_segment(cls, segment: dict[str, Any]) -> SegmentForm:
        settings = segment["settings"] or {}
        if segment["type"] == "filter" and TREE_FIELD in settings:
            return cls(
                name=segment["name"],
                type="filter",
                filter_mode="tree",
                filter_tree=json.dumps(settings[TREE_FIELD], ensure_ascii=False),
            )
        spec = filters.Filter.from_settings(settings) if segment["type"] == "filter" else None
        return cls(
            name=segment["name"],
            type=segment["type"],
            phone_numbers="\n".join(settings.get("phone_numbers", ())),
            contacts_ids=", ".join(map(str, settings.get("contacts_ids", ()))),
            conditions=[
                ConditionRow(index, c.key, c.condition, str(c.value))
                for index, c in enumerate(spec.conditions if spec else ())
            ],
            countries=list(spec.countries or ()) if spec else [],
            continents=list(spec.continents or ()) if spec else [],
        )

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]]) -> SegmentForm:
        """The form as posted. Raises `errors.Invalid` for a malformed row index."""
        params = Params.from_pairs(pairs)
        keys, conditions, values = (params.indexed(n) for n in (_KEY, _CONDITION, _VALUE))
        indexes = sorted({*keys, *conditions, *values})
        return cls(
            name=params.text("name") or "",
            type=(params.text("type") or "filter").strip().lower(),
            phone_numbers="\n".join(params.many("phone_numbers") or ()),
            contacts_ids=",".join(params.many("contacts_ids") or ()),
            conditions=[
                ConditionRow(
                    i, keys.get(i, ""), conditions.get(i, "exact") or "exact", values.get(i, "")
                )
                for i in indexes
            ],
            countries=[c for c in params.many(COUNTRIES_FIELD) or () if c],
            continents=[c for c in params.many(CONTINENTS_FIELD) or () if c],
            action=_form_action(pairs),
            filter_mode="tree" if params.text(_FILTER_MODE) == "tree" else "rows",
            filter_tree=params.text(TREE_FIELD) or '{"all": []}',
        )

    def apply_row_action(self) -> bool:
        """Adds or removes a condition row as the button pressed asks; False if none."""
        if self.action == "add":
            self.conditions.append(ConditionRow(_next_index(self.conditions)))
            return True
        index = removed_row(self.action)
        if index is not None:
            self.conditions = [row for row in self.conditions if row.index != index]
            return True
        return False

    def to_input(self, settings: Settings, *, named: bool = True) -> SegmentInput:
        """The segment this form defines, validated. Only the chosen type's fields are
        read, so the hidden fields of the other types never make an error. `named=False`
        leaves the name out (the preview counts without one: an empty name is no error
        yet). A filter is always given: saving one with every condition removed
        replaces the old definition instead of keeping it."""
        kind = parse_choice("type", self.type, TYPES, "filter")
        return SegmentInput(
            name=segment_name(self.name) if named else None,
            type=kind,
            bulk=normalize_bulk([self.phone_numbers], limit=settings.max_bulk_phone_numbers)
            if kind == "bulk"
            else None,
            contacts_ids=parse_contacts_ids([self.contacts_ids]) if kind == "custom" else None,
            filter=self._tree(settings)
            if kind == "filter" and self.filter_mode == "tree"
            else filter_from_rows(
                [
                    (row.index, row.key, row.condition, row.value)
                    for row in self.conditions
                    if not row.blank
                ],
                countries=self.countries,
                continents=self.continents,
                max_conditions=settings.max_filter_conditions,
            )
            if kind == "filter"
            else None,
        )

    def _tree(self, settings: Settings) -> filters.Filter:
        """The builder's tree, checked as the API's `filter` field is."""
        params = Params()
        params.add(TREE_FIELD, self.filter_tree)
        return tree_from_document(
            params.document(TREE_FIELD), max_leaves=settings.max_filter_leaves
        )


@dataclass
class ContactForm:
    phone_number: str = ""
    name: str = ""
    has_opted_out: bool = False
    parameters: list[ParameterRow] = field(default_factory=list)
    action: str = "save"

    @classmethod
    def from_contact(cls, contact: dict[str, Any]) -> ContactForm:
        return cls(
            phone_number=contact["phone_number"],
            name=contact["name"],
            has_opted_out=contact["has_opted_out"],
            parameters=[
                ParameterRow(index, key, value)
                for index, (key, value) in enumerate(contact["custom_parameters"].items())
            ],
        )

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]]) -> ContactForm:
        params = Params.from_pairs(pairs)
        keys, values = params.indexed(_PARAMETER_KEY), params.indexed(_PARAMETER_VALUE)
        return cls(
            phone_number=params.text("phone_number") or "",
            name=params.text("name") or "",
            # The checkbox follows a hidden "0": the last value is the one that counts.
            has_opted_out=(params.text("has_opted_out") or "0") not in ("0", ""),
            parameters=[
                ParameterRow(i, keys.get(i, ""), values.get(i, ""))
                for i in sorted({*keys, *values})
            ],
            action=_form_action(pairs),
        )

    def apply_row_action(self) -> bool:
        if self.action == "add":
            self.parameters.append(ParameterRow(_next_index(self.parameters)))
            return True
        index = removed_row(self.action)
        if index is not None:
            self.parameters = [row for row in self.parameters if row.index != index]
            return True
        return False

    def to_input(self) -> ContactInput:
        """The contact this form describes, validated. The form always shows every
        parameter, so the rows left are all of them: none means "remove them all"."""
        return ContactInput(
            phone=phone_number(self.phone_number),
            name=contact_name(self.name),
            custom_parameters=check_parameters(
                (f"{_PARAMETER_KEY}[{row.index}]", row.key, row.value)
                for row in self.parameters
                if not row.blank
            ),
            has_opted_out=self.has_opted_out,
        )
