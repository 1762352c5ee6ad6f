"""Request parameters -> a validated `ContactInput` (no database needed)."""

from __future__ import annotations

from segmenti import errors, phones
from segmenti.contacts.service import ContactInput
from segmenti.forms import Params, check_text, custom_parameters, parse_bool


def contact_input(params: Params) -> ContactInput:
    phone = None
    raw_phone = params.text("phone_number")
    if raw_phone is not None:
        try:
            phone = phones.normalize_phone(raw_phone)
        except phones.InvalidPhone as exc:
            raise errors.Invalid(
                f"phone_number {raw_phone[:40]!r}: {exc.reason}", parameter="phone_number"
            ) from None
    name = params.text("name")
    if name is not None:
        name = check_text("name", name.strip(), min_length=0, max_length=256)
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
