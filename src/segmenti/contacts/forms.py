"""Request parameters -> a validated `ContactInput` (no database needed)."""

from __future__ import annotations

from segmenti import errors, phones
from segmenti.checks import check_text
from segmenti.contacts.service import ContactInput
from segmenti.forms import Params, custom_parameters, parse_bool

MAX_NAME = 256


def phone_number(raw: str) -> phones.PhoneInfo:
    """`phone_number`, normalized to E.164 (the API's field and the dashboard's)."""
    try:
        return phones.normalize_phone(raw)
    except phones.InvalidPhone as exc:
        raise errors.Invalid(
            f"phone_number {raw[:40]!r}: {exc.reason}", parameter="phone_number"
        ) from None


def contact_name(raw: str) -> str:
    """`name`, without surrounding spaces; it may be empty."""
    return check_text("name", raw.strip(), min_length=0, max_length=MAX_NAME)


def contact_input(params: Params) -> ContactInput:
    raw_phone = params.text("phone_number")
    phone = None if raw_phone is None else phone_number(raw_phone)
    name = params.text("name")
    if name is not None:
        name = contact_name(name)
    opted_out = params.text("has_opted_out")
    return ContactInput(
        phone=phone,
        name=name,
        custom_parameters=custom_parameters(
            params,
            key_field="custom_parameter_key",
            value_field="custom_parameter_value",
            object_field="custom_parameters",
        ),
        has_opted_out=None if opted_out is None else parse_bool("has_opted_out", opted_out),
    )
