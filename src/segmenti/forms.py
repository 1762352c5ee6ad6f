"""Request parameters, whatever the body's encoding.

The reference API speaks PHP-style form fields: `filters_countries[]` repeated,
`filters_custom_parameter_key[0]`, `[1]`, ... JSON clients send the same names with
arrays. Both become one `Params` object, so services never see the encoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import parse_qsl

from segmenti import errors
from segmenti.checks import check_parameters

# `name`, `name[]` or `name[index]`; anything deeper is refused for the names we use.
_FIELD_NAME = re.compile(r"^(?P<base>[^\[\]]+)(?P<brackets>(\[[^\[\]]*\])*)$")
_INDEX = re.compile(r"^-?\d{1,18}$")


@dataclass
class _Field:
    values: list[str] = field(default_factory=list)  # plain and `[]` entries, in order
    indexed: dict[str, str] = field(default_factory=dict)  # `[index]` entries
    nested: bool = False  # sent with deeper brackets, `a[0][1]`: never valid here
    file: bool = False  # sent as a multipart file part: never a valid value here
    # A JSON object as sent in a JSON body, for parameters that are documents (`document`)
    document: Any = None
    # That object holds objects or lists: it is only readable as a document
    structured: bool = False


class Params:
    """The parameters of one request, by base name."""

    def __init__(self) -> None:
        self._fields: dict[str, _Field] = {}

    # -- building ---------------------------------------------------------------
    def add(self, name: str, value: str) -> None:
        match = _FIELD_NAME.match(name)
        if match is None:
            return  # not a name any endpoint knows; unknown parameters are ignored
        base, brackets = match["base"], match["brackets"]
        entry = self._fields.setdefault(base, _Field())
        if not brackets or brackets == "[]":
            entry.values.append(value)
        elif brackets.count("[") == 1:
            entry.indexed[brackets[1:-1]] = value
        else:
            entry.nested = True

    def add_file(self, name: str) -> None:
        """Records a multipart file part: reading that parameter answers 400 rather than
        the parameter silently counting as absent (which could turn a bulk segment into
        a filter of every contact)."""
        match = _FIELD_NAME.match(name)
        if match is not None:
            self._fields.setdefault(match["base"], _Field()).file = True

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, Any]]) -> Params:
        """Parameters from (name, value) pairs; a value that is not text is a file part."""
        params = cls()
        for name, value in pairs:
            if isinstance(value, str):
                params.add(name, value)
            else:
                params.add_file(name)
        return params

    @classmethod
    def from_json(cls, document: Any) -> Params:
        if not isinstance(document, dict):
            raise errors.Invalid("the JSON body must be an object of parameters")
        params = cls()
        for name, value in document.items():
            if value is None:
                continue
            if isinstance(value, list):
                for item in value:
                    params.add(name, _scalar(name, item))
                params._fields.setdefault(name.removesuffix("[]"), _Field())
            elif isinstance(value, dict):
                entry = params._fields.setdefault(name, _Field())
                entry.document = value
                for key, item in value.items():
                    if isinstance(item, dict | list):
                        entry.structured = True
                        continue
                    entry.indexed[_unicode(f"{name}.{key!r}", key)] = _scalar(name, item)
            else:
                params.add(name, _scalar(name, value))
        return params

    def merged_with(self, other: Params) -> Params:
        """These parameters with `other`'s replacing any of the same name."""
        merged = Params()
        merged._fields = {**self._fields, **other._fields}
        return merged

    def canonical(self) -> str:
        """Every parameter as one stable string, the same whether the request came as a
        form or as JSON (what an Idempotency-Key's request is compared by)."""
        return json.dumps(
            {
                name: [entry.values, sorted(entry.indexed.items()), entry.nested]
                + ([entry.document] if entry.structured else [])
                for name, entry in sorted(self._fields.items())
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    # -- reading ----------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self._fields

    def text(self, name: str) -> str | None:
        """The parameter's value (the last one when repeated), or None when absent."""
        entry = self._field(name)
        if entry is None:
            return None
        if entry.indexed:
            raise errors.Invalid(f"{name} takes a single value", parameter=name)
        return entry.values[-1] if entry.values else None

    def many(self, name: str) -> list[str] | None:
        """All values of a list parameter (`name[]` repeated or a JSON array)."""
        entry = self._field(name)
        if entry is None:
            return None
        return entry.values + [entry.indexed[key] for key in _sorted_indexes(name, entry)]

    def indexed(self, name: str) -> dict[int, str]:
        """`name[i]` entries by integer index; `name[]` entries take the next indexes,
        as PHP numbers them. JSON arrays are indexed by position."""
        entry = self._field(name)
        if entry is None:
            return {}
        result = {int(key): entry.indexed[key] for key in _sorted_indexes(name, entry)}
        next_index = max(result, default=-1) + 1
        for offset, value in enumerate(entry.values):
            result[next_index + offset] = value
        return result

    def mapping(self, name: str) -> dict[str, str] | None:
        """A JSON object parameter (`{"plan": "pro"}`), keys as given."""
        entry = self._field(name)
        if entry is None:
            return None
        if entry.values:
            raise errors.Invalid(f"{name} must be an object of keys to values", parameter=name)
        return dict(entry.indexed)

    def document(self, name: str) -> Any:
        """A parameter that is a JSON document: the object as sent in a JSON body, or
        the same JSON as the text of a form field. None when absent."""
        entry = self._fields.get(name)
        if entry is not None and entry.document is not None:
            return entry.document
        text = self.text(name)
        if text is None:
            return None
        try:
            return json.loads(text)
        except RecursionError:
            raise errors.Invalid(f"{name} is nested too deeply", parameter=name) from None
        except ValueError as exc:
            raise errors.Invalid(f"{name} is not valid JSON: {exc}", parameter=name) from None

    def _field(self, name: str) -> _Field | None:
        entry = self._fields.get(name)
        if entry is not None and entry.structured:
            raise errors.Invalid(
                f"{name} must be a string, a number or a list of them", parameter=name
            )
        if entry is not None and entry.nested:
            raise errors.Invalid(f"{name} does not take nested brackets", parameter=name)
        if entry is not None and entry.file:
            raise errors.Invalid(
                f"{name} was sent as a file; send it as a form field "
                f"(curl reads a file into a field with --form '{name}=<file')",
                parameter=name,
            )
        return entry


def _sorted_indexes(name: str, entry: _Field) -> list[str]:
    seen: dict[int, str] = {}
    for key in entry.indexed:
        if not _INDEX.match(key):
            raise errors.Invalid(
                f"{name}[{key[:40]}]: the index in brackets must be an integer",
                parameter=f"{name}[{key[:40]}]",
            )
        # `[1]` and `[01]` would silently overwrite each other.
        if int(key) in seen:
            raise errors.Invalid(
                f"{name}[{seen[int(key)]}] and {name}[{key}] name the same index",
                parameter=f"{name}[{key}]",
            )
        seen[int(key)] = key
    return sorted(entry.indexed, key=int)


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return _unicode(name, value)
    raise errors.Invalid(f"{name} must be a string, a number or a list of them", parameter=name)


def _unicode(name: str, text: str) -> str:
    """JSON escapes can spell lone surrogates (`"\\ud800"`), which are not text: no
    database can store them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.Invalid(
            f"{name[:80]} is not valid Unicode text (a lone surrogate escape)",
            parameter=name[:80],
        ) from None
    return text


def _refuse_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def parse_json_body(body: bytes) -> Params:
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise errors.Invalid(f"the body is not valid JSON: {_short(exc)}") from None
    return Params.from_json(document)


def parse_urlencoded(body: bytes, *, max_fields: int) -> Params:
    """An application/x-www-form-urlencoded body, which must be UTF-8 (raw or
    percent-encoded): other bytes are a 400, never silently replaced or reinterpreted.
    A field may be as large as the body (a bulk of 100,000 numbers is over 1 MB)."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except UnicodeDecodeError:
        raise errors.Invalid("the form body is not valid UTF-8") from None
    except ValueError as exc:
        raise errors.Invalid(f"the form body could not be read: {_short(exc)}") from None
    return Params.from_pairs(pairs)


def _short(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0][:200] or exc.__class__.__name__


# -- typed readers shared by the endpoints -----------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise errors.Invalid(f"{name} must be a boolean (1/0, true/false)", parameter=name)


@overload
def parse_choice(name: str, raw: str | None, allowed: tuple[str, ...], default: str) -> str: ...
@overload
def parse_choice(
    name: str, raw: str | None, allowed: tuple[str, ...], default: None
) -> str | None: ...
def parse_choice(
    name: str, raw: str | None, allowed: tuple[str, ...], default: str | None
) -> str | None:
    """One of `allowed` (case and surrounding spaces ignored), or `default` when absent
    or empty: the list orders and type filters of the API and the dashboard."""
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value not in allowed:
        raise errors.Invalid(
            f"{name} must be one of {', '.join(allowed)}, got {raw[:40]!r}", parameter=name
        )
    return value


def parse_positive_int(name: str, raw: str) -> int:
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise errors.Invalid(f"{name} must be a positive integer, got {raw!r}", parameter=name)
    return int(text)


def custom_parameters(
    params: Params, *, key_field: str, value_field: str, object_field: str
) -> dict[str, str] | None:
    """Custom parameters from `key[i]`/`value[i]` pairs or a JSON object; None if absent."""
    as_object = params.mapping(object_field) if params.has(object_field) else None
    keys = params.indexed(key_field)
    values = params.indexed(value_field)
    if as_object is None and not params.has(key_field) and not params.has(value_field):
        return None
    for index in values:
        if index not in keys:
            raise errors.Invalid(
                f"{value_field}[{index}] has no {key_field}[{index}]",
                parameter=f"{value_field}[{index}]",
            )
    pairs: list[tuple[str, str, str]] = [
        (f"{key_field}[{i}]", key, values.get(i, "")) for i, key in keys.items()
    ]
    pairs += [(f"{object_field}.{key}", key, value) for key, value in (as_object or {}).items()]
    return check_parameters(pairs)
