"""What the dashboard's segment and contact forms hold between round trips.

A form is re-rendered from what was posted (with an error, a preview, a row added or
removed), so its state is plain data. `to_pairs` turns it back into the API's PHP-style
field names, which `segment_input` / `contact_input` validate exactly as for the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from segmenti.forms import Params
from segmenti.membership import filters
from segmenti.segments.forms import (
    CONDITION_FIELD,
    CONTINENTS_FIELD,
    COUNTRIES_FIELD,
    KEY_FIELD,
    VALUE_FIELD,
)

_KEY, _CONDITION, _VALUE = KEY_FIELD, CONDITION_FIELD, VALUE_FIELD
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

    @classmethod
    def from_segment(cls, segment: dict[str, Any]) -> SegmentForm:
        settings = segment["settings"] or {}
        spec = filters.Filter.from_settings(settings) if segment["type"] == "filter" else None
        return cls(
            name=segment["name"],
            type=segment["type"],
            phone_numbers="\n".join(settings.get("phone_numbers", ())),
            contacts_ids=", ".join(map(str, settings.get("contacts_ids", ()))),
            conditions=[
                ConditionRow(index, c.key, c.condition, c.value)
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

    def filter_pairs(self) -> list[tuple[str, str]]:
        # The empty country is what an HTML form sends for "none picked": it makes the
        # filter "given", so saving a filter with every condition removed replaces the
        # old definition instead of keeping it.
        pairs = [(f"{COUNTRIES_FIELD}[]", "")]
        for row in self.conditions:
            if not row.blank:
                pairs += [
                    (f"{_KEY}[{row.index}]", row.key),
                    (f"{_CONDITION}[{row.index}]", row.condition),
                    (f"{_VALUE}[{row.index}]", row.value),
                ]
        pairs += [(f"{COUNTRIES_FIELD}[]", code) for code in self.countries]
        pairs += [(f"{CONTINENTS_FIELD}[]", code) for code in self.continents]
        return pairs

    def to_pairs(self) -> list[tuple[str, str]]:
        """The API's fields for this form: only the chosen type's, so the hidden fields of
        the other types never make a "not a parameter of a filter segment" error."""
        pairs = [("name", self.name), ("type", self.type)]
        if self.type == "bulk":
            return [*pairs, ("phone_numbers", self.phone_numbers)]
        if self.type == "custom":
            return [*pairs, ("contacts_ids", self.contacts_ids)]
        return pairs + self.filter_pairs()


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

    def to_pairs(self) -> list[tuple[str, str]]:
        pairs = [
            ("phone_number", self.phone_number),
            ("name", self.name),
            ("has_opted_out", "1" if self.has_opted_out else "0"),
        ]
        for row in self.parameters:
            if not row.blank:
                pairs += [
                    (f"{_PARAMETER_KEY}[{row.index}]", row.key),
                    (f"{_PARAMETER_VALUE}[{row.index}]", row.value),
                ]
        return pairs
