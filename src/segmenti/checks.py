"""Checks on text wherever it enters: the API, the dashboard's forms, a CSV file's
header. Each check is told the name its errors give the value, so the same rule reads
in each entry's own words."""

from __future__ import annotations

from collections.abc import Iterable

from segmenti import errors


def check_text(
    name: str, raw: str, *, min_length: int, max_length: int, parameter: str | None = None
) -> str:
    """`raw` unless it holds NUL or its length is out of bounds. Errors name `parameter`
    (default: `name`, which the message says)."""
    if "\x00" in raw:
        raise errors.Invalid(f"{name} must not contain NUL characters", parameter=parameter or name)
    if not min_length <= len(raw) <= max_length:
        raise errors.Invalid(
            f"{name} must be {min_length} to {max_length} characters, got {len(raw)}",
            parameter=parameter or name,
        )
    return raw


MAX_PARAMETER_KEY = 64


def check_parameter_key(name: str, key: str, *, parameter: str | None = None) -> str:
    """The rule for a custom parameter key wherever one enters (the API, the dashboard's
    contact form, a CSV header): 1 to 64 characters, no NUL, and no space (or other
    white space) at either end. Such a key is refused, not trimmed: trimming would merge
    `plan` and ` plan` and drop a value, and a CSV header could not carry it back."""
    check_text(name, key, min_length=1, max_length=MAX_PARAMETER_KEY, parameter=parameter)
    if key != key.strip():
        raise errors.Invalid(
            f"{name} {key[:80]!r} must not begin or end with a space",
            parameter=parameter or name,
        )
    return key


MAX_PARAMETER_VALUE = 512


def check_parameters(entries: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """Custom parameters from (name, key, value) entries, each checked; `name` is what
    an error about that entry calls it (`custom_parameter_key[2]`)."""
    result: dict[str, str] = {}
    for name, key, value in entries:
        check_parameter_key(name, key)
        check_text(name, value, min_length=0, max_length=MAX_PARAMETER_VALUE)
        result[key] = value
    return result
