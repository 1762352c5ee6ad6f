"""OpenAPI descriptions that FastAPI cannot infer: the hand-parsed request bodies
(PHP-style bracketed form fields and their JSON twins) and the response envelopes.

These only document; requests are parsed by `forms.py` and the services."""

from __future__ import annotations

import json
from typing import Any

from segmenti.membership import conditions
from segmenti.paging import MAX_PAGE, RESULTS_PER_PAGE

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_INDEX = r"-?[0-9]{1,18}"

# -- filter trees (`filter`): a recursive schema, in components ------------------------

FILTER_NODE_REF = {"$ref": "#/components/schemas/FilterNode"}
_CONTINENTS = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"]
_TREE_EXAMPLE = {
    "all": [
        {
            "any": [
                {"key": "plan", "condition": "in", "value": ["pro", "team"]},
                {"key": "trial", "condition": "exists"},
            ]
        },
        {"not": {"country": ["US"]}},
        {"key": "signup", "condition": "date_after", "value": "-30d"},
    ]
}
FILTER_COMPONENTS: dict[str, Any] = {
    "FilterNode": {
        "description": "A node of a filter tree: a group (all, any, not), a condition on a "
        "custom parameter, or a country or continent list. At most 6 levels of groups "
        "and 100 leaves (SEGMENTI_MAX_FILTER_LEAVES).",
        "oneOf": [
            {
                "type": "object",
                "title": "all",
                "description": "Every child holds; an empty list selects every contact.",
                "required": ["all"],
                "additionalProperties": False,
                "properties": {"all": {"type": "array", "items": FILTER_NODE_REF}},
            },
            {
                "type": "object",
                "title": "any",
                "description": "At least one child holds.",
                "required": ["any"],
                "additionalProperties": False,
                "properties": {"any": {"type": "array", "minItems": 1, "items": FILTER_NODE_REF}},
            },
            {
                "type": "object",
                "title": "not",
                "description": "The exact complement of the child among your contacts.",
                "required": ["not"],
                "additionalProperties": False,
                "properties": {"not": FILTER_NODE_REF},
            },
            {"$ref": "#/components/schemas/FilterCondition"},
            {
                "type": "object",
                "title": "country",
                "required": ["country"],
                "additionalProperties": False,
                "properties": {"country": {**_STRINGS, "minItems": 1}},
            },
            {
                "type": "object",
                "title": "continent",
                "required": ["continent"],
                "additionalProperties": False,
                "properties": {
                    "continent": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "enum": _CONTINENTS},
                    }
                },
            },
        ],
        "example": _TREE_EXAMPLE,
    },
    "FilterCondition": {
        "type": "object",
        "title": "condition",
        "description": "A condition on a custom parameter. The reference's ten conditions "
        "take a string value; in / not_in a list of 1 to 1,000 strings; exists / "
        "not_exists no value; date_after / date_before a day (YYYY-MM-DD) or whole days "
        "from today, UTC (-30d, +7d); a stored value is a date when it starts with "
        "YYYY-MM-DD.",
        "required": ["key", "condition"],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "minLength": 1, "maxLength": 64},
            "condition": {"type": "string", "enum": list(conditions.TREE_NAMES)},
            "value": {
                "oneOf": [
                    {"type": "string", "maxLength": 512},
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": conditions.MAX_CHOICES,
                        "items": {"type": "string", "maxLength": 512},
                    },
                ]
            },
        },
        "example": {"key": "plan", "condition": "in", "value": ["pro", "team"]},
    },
}

FILTER_TREE_JSON_FIELD: dict[str, Any] = {
    "filter": {
        **FILTER_NODE_REF,
        "description": "filter: a filter tree (see FilterNode); not with filters_* fields. "
        'The segment\'s settings are then {"filter": <the normalized tree>}.',
    }
}
FILTER_TREE_FORM_FIELD: dict[str, Any] = {
    "filter": {
        "type": "string",
        "contentMediaType": "application/json",
        "description": "filter: a filter tree (see FilterNode) as JSON text; not with "
        "filters_* fields.",
        "example": json.dumps(_TREE_EXAMPLE),
    }
}

VERDICT_COMPONENTS: dict[str, Any] = {
    "NodeVerdict": {
        "type": "object",
        "description": "One node of a filter tree, evaluated for the contact: `held`, and "
        "`decided_by`, the paths of the leaves that decided it.",
        "required": ["path", "node", "held", "decided_by"],
        "properties": {
            "path": {"type": "string", "example": "filter.all[1].any[0]"},
            "node": {
                "type": "string",
                "enum": ["all", "any", "not", "condition", "country", "continent"],
            },
            "held": {"type": "boolean"},
            "decided_by": _STRINGS,
            "children": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/NodeVerdict"},
            },
            "key": _STRING,
            "condition": _STRING,
            "value": {"oneOf": [_STRING, _STRINGS]},
            "allowed": _STRINGS,
            "contact_value": {"type": ["string", "null"]},
        },
    }
}

SEGMENT_FORM_FIELDS: dict[str, Any] = {
    "name": {
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "description": "Required on create.",
    },
    "type": {
        "type": "string",
        "enum": ["bulk", "custom", "filter"],
        "description": "When absent: bulk if phone_numbers is given, custom if contacts_ids "
        "is given, else filter (create) or the segment's current type (update).",
    },
    "phone_numbers": {
        "type": "string",
        "description": "bulk: numbers separated by newlines, commas or semicolons, each with "
        "its country code (+39... or 0039...). At most 100,000 distinct numbers.",
    },
    "contacts_ids": {
        "type": "string",
        "description": "custom: comma-separated ids of your contacts, e.g. 1,2,3.",
    },
    **FILTER_TREE_FORM_FIELD,
    "filters_countries[]": {
        **_STRINGS,
        "description": "filter: ISO 3166-1 alpha-2 codes; the contact's country is one of them.",
    },
    "filters_continents[]": {
        "type": "array",
        "items": {"type": "string", "enum": ["AF", "AN", "AS", "EU", "NA", "OC", "SA"]},
        "description": "filter: continent codes; the contact's continent is one of them.",
    },
}

FILTER_PATTERN_FIELDS: dict[str, Any] = {
    rf"^filters_custom_parameter_key\[{_INDEX}\]$": {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "description": "filter: custom parameter key of the condition with this index.",
    },
    rf"^filters_custom_parameter_condition\[{_INDEX}\]$": {
        "type": "string",
        "enum": list(conditions.NAMES),
        "description": "filter: condition with this index (default exact).",
    },
    rf"^filters_custom_parameter_value\[{_INDEX}\]$": {
        "type": "string",
        "maxLength": 512,
        "description": "filter: value of the condition with this index.",
    },
}

SEGMENT_JSON_FIELDS: dict[str, Any] = {
    **{k: v for k, v in SEGMENT_FORM_FIELDS.items() if not k.endswith("[]")},
    "phone_numbers": {
        "oneOf": [_STRING, _STRINGS],
        "description": SEGMENT_FORM_FIELDS["phone_numbers"]["description"],
    },
    "contacts_ids": {
        "oneOf": [_STRING, {"type": "array", "items": {"type": "integer", "minimum": 1}}],
        "description": "custom: ids of your contacts.",
    },
    "filters_countries": SEGMENT_FORM_FIELDS["filters_countries[]"],
    "filters_continents": SEGMENT_FORM_FIELDS["filters_continents[]"],
    "filters_custom_parameter_key": {
        **_STRINGS,
        "description": "filter: condition keys; position i pairs with the other arrays' i.",
    },
    "filters_custom_parameter_condition": {
        "type": "array",
        "items": {"type": "string", "enum": list(conditions.NAMES)},
    },
    "filters_custom_parameter_value": _STRINGS,
    **FILTER_TREE_JSON_FIELD,
}

CONTACT_FORM_FIELDS: dict[str, Any] = {
    "phone_number": {
        "type": "string",
        "description": "Required on create. With its country code; stored as E.164.",
    },
    "name": {"type": "string", "maxLength": 256},
    "has_opted_out": {"type": "string", "enum": ["0", "1", "true", "false"]},
}

CONTACT_PATTERN_FIELDS: dict[str, Any] = {
    rf"^custom_parameter_key\[{_INDEX}\]$": {"type": "string", "minLength": 1, "maxLength": 64},
    rf"^custom_parameter_value\[{_INDEX}\]$": {"type": "string", "maxLength": 512},
}

CONTACT_JSON_FIELDS: dict[str, Any] = {
    **CONTACT_FORM_FIELDS,
    "has_opted_out": {"oneOf": [{"type": "boolean"}, CONTACT_FORM_FIELDS["has_opted_out"]]},
    "custom_parameters": {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 512},
        "description": "Keys (1-64 characters) to values (0-512 characters).",
    },
    "custom_parameter_key": _STRINGS,
    "custom_parameter_value": _STRINGS,
}


def request_body(
    form_fields: dict[str, Any],
    pattern_fields: dict[str, Any],
    json_fields: dict[str, Any],
    *,
    required: list[str] | None = None,
    idempotent: bool = False,
) -> dict[str, Any]:
    """The requestBody of a write (and, for creates, the Idempotency-Key header)."""
    form_schema: dict[str, Any] = {
        "type": "object",
        "properties": form_fields,
        "patternProperties": pattern_fields,
    }
    json_schema: dict[str, Any] = {"type": "object", "properties": json_fields}
    if required:
        form_schema["required"] = required
        json_schema["required"] = required
    extra: dict[str, Any] = {"parameters": [IDEMPOTENCY_KEY]} if idempotent else {}
    return {
        **extra,
        "requestBody": {
            "required": bool(required),
            "content": {
                "multipart/form-data": {"schema": form_schema},
                "application/x-www-form-urlencoded": {"schema": form_schema},
                "application/json": {"schema": json_schema},
            },
        },
    }


IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "Makes a retried create safe: the same key (per user, for 24 hours) "
    "answers the first result again and creates nothing; with a different request it is "
    "a 422. Replays carry `Idempotent-Replayed: true`.",
}


def page_parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": "page",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
            "description": "The page to return; past the end, data is empty.",
        },
        {
            "name": "results_per_page",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "enum": list(RESULTS_PER_PAGE), "default": 25},
        },
    ]


def query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_BOOLEAN = {"type": "string", "enum": ["0", "1", "true", "false"]}
# The contacts list's and the member list's (contacts/search.py holds the rule).
SEARCH_PARAMETER = query_parameter(
    "search",
    {"type": "string"},
    "Contacts whose name contains the text, case-insensitively, or, when the text looks "
    "like a phone number (digits, spaces, dots, dashes, brackets, an optional leading + "
    "or 00, at least 3 digits), whose E.164 number contains its digits: `0039 347` finds "
    "+39347... Surrounding spaces are ignored.",
)
# The member list's and the segment export's (segments.forms.opt_outs reads them).
OPT_OUT_PARAMETERS = [
    query_parameter(
        "include_opted_out",
        {**_BOOLEAN, "default": "0"},
        "Also list members that have opted out (they are not in total_contacts).",
    ),
    query_parameter(
        "has_opted_out",
        _BOOLEAN,
        "Only members that have (1) or have not (0) opted out; include_opted_out is "
        "then not needed.",
    ),
]

ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["status", "title"],
                "properties": {
                    "status": _STRING,
                    "title": _STRING,
                    "detail": _STRING,
                    "source": {"type": "object", "properties": {"parameter": _STRING}},
                    "meta": {"type": "object"},
                },
            },
        }
    },
}

_NULLABLE_STRING = {"type": ["string", "null"]}
_DATETIME = {"type": "string", "examples": ["2026-01-21 21:10:26"]}
_NULLABLE_DATETIME = {"type": ["string", "null"], "examples": [None]}

SEGMENT = {
    "type": "object",
    "required": ["id", "user_id", "name", "settings", "type", "total_contacts", "datetime"],
    "properties": {
        "id": {"type": "integer"},
        "user_id": {"type": "integer"},
        "name": _STRING,
        "settings": {"type": "object"},
        "type": {"type": "string", "enum": ["bulk", "custom", "filter"]},
        "total_contacts": {"type": "integer"},
        "last_datetime": _NULLABLE_DATETIME,
        "datetime": _DATETIME,
    },
}

CONTACT = {
    "type": "object",
    "required": ["id", "user_id", "name", "phone_number", "custom_parameters", "datetime"],
    "properties": {
        "id": {"type": "integer"},
        "user_id": {"type": "integer"},
        "name": _STRING,
        "phone_number": _STRING,
        "custom_parameters": {"type": "object", "additionalProperties": _STRING},
        "continent_code": _NULLABLE_STRING,
        "country_code": _NULLABLE_STRING,
        "has_opted_out": {"type": "boolean"},
        "last_datetime": _NULLABLE_DATETIME,
        "datetime": _DATETIME,
    },
}

_LINK = {"type": ["string", "null"]}


def one(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def listing(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "meta", "links"],
        "properties": {
            "data": {"type": "array", "items": schema},
            "meta": {
                "type": "object",
                "properties": {
                    name: {"type": "integer"}
                    for name in ("page", "results_per_page", "total", "total_pages")
                },
            },
            "links": {
                "type": "object",
                "properties": {name: _LINK for name in ("first", "last", "next", "prev", "self")},
            },
        },
    }


ID_ONLY = one({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}})


def responses(
    ok_status: int, ok_schema: dict[str, Any] | None, *errors: int
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: its success and the errors it can answer."""
    described: dict[int | str, dict[str, Any]] = {}
    if ok_schema is None:
        described[ok_status] = {"description": "Done; no body."}
    else:
        described[ok_status] = {
            "description": "Success",
            "content": {"application/json": {"schema": ok_schema}},
        }
    titles = {
        400: "Invalid parameter",
        401: "Missing, unknown or revoked API key",
        404: "Not found (also another user's id)",
        409: "Conflict",
        413: "Body over the size limit",
        415: "Unsupported Content-Type",
        422: "Idempotency-Key already used for a different request",
    }
    for status in errors:
        described[status] = {
            "description": titles[status],
            "content": {"application/json": {"schema": ERROR_BODY}},
        }
    return described


_RATE_LIMIT_HEADERS = {
    name: {"description": description, "schema": {"type": "string"}}
    for name, description in (
        ("RateLimit-Limit", "Requests per window for this API key."),
        ("RateLimit-Remaining", "Requests left now."),
        ("RateLimit-Reset", "Seconds until the bucket is full again."),
        ("RateLimit-Policy", "`limit;w=window_seconds`."),
        ("Retry-After", "Seconds until one more request is allowed."),
    )
}

# Answers any API operation can give, whatever it does.
API_WIDE_RESPONSES: dict[str, Any] = {
    "429": {
        "description": "Over the API key's rate limit (only when SEGMENTI_RATE_LIMIT_REQUESTS "
        "is set; every answer then carries the RateLimit-* headers)",
        "headers": _RATE_LIMIT_HEADERS,
        "content": {"application/json": {"schema": ERROR_BODY}},
    },
    "503": {
        "description": "The database was busy for longer than the busy timeout; nothing was "
        "written, retry after Retry-After seconds",
        "headers": {"Retry-After": _RATE_LIMIT_HEADERS["Retry-After"]},
        "content": {"application/json": {"schema": ERROR_BODY}},
    },
}
