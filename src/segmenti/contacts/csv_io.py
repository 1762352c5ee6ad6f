"""Contacts as CSV: reading an import file row by row, and writing an export.

The columns, in import and export alike:
  * `phone_number` (required): any form `normalize_phone` accepts; exports write E.164;
  * `name`: trimmed, at most 256 characters;
  * `has_opted_out`: 1/0, true/false, yes/no; an empty cell keeps the contact's flag
    (a new contact has not opted out);
  * every other column is a custom parameter named by its header; `param:<key>` names a
    parameter explicitly, which is how a key called `name` or `phone_number` is written.
    An empty cell leaves that parameter unset: the contact has no such key.
The three reserved names match case-insensitively; parameter keys are case-sensitive.

Reading streams: one row at a time, so memory does not grow with the file. Bad rows are
yielded as `BadRow` with their line number, never raised; a file that cannot be read at
all (no header, no phone_number column, not UTF-8) raises `errors.Invalid`.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

from segmenti import errors, phones
from segmenti.checks import check_parameter_key

PHONE_COLUMN: Final = "phone_number"
NAME_COLUMN: Final = "name"
OPT_OUT_COLUMN: Final = "has_opted_out"
RESERVED: Final = (PHONE_COLUMN, NAME_COLUMN, OPT_OUT_COLUMN)
PARAM_PREFIX: Final = "param:"

MAX_NAME: Final = 256
MAX_VALUE: Final = 512

# What a spreadsheet would read as the start of a formula, and the escape itself.
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
ESCAPE: Final = "'"
_ESCAPED_FIRST: Final = frozenset((*FORMULA_START, ESCAPE))

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})

PARAMETER = "file"  # what errors name as their source


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One valid row. None means the file does not give that field (its column is absent,
    or, for has_opted_out, its cell is empty), so an existing contact keeps it."""

    line: int
    phone: phones.PhoneInfo
    name: str | None
    has_opted_out: bool | None
    custom_parameters: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str
    fields: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        phone = self.fields[0] if self.fields else ""
        return {"line": self.line, "reason": self.reason, "value": phone[:64]}


Row = ContactRow | BadRow


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]
    phone_index: int
    name_index: int | None
    opt_out_index: int | None
    # (column index, parameter key)
    parameters: tuple[tuple[int, str], ...]


def parse_header(columns: Sequence[str]) -> Header:
    """Reads the header row; raises `errors.Invalid` naming the offending column.

    Reserved names are recognised with surrounding spaces; a parameter key is the cell
    as written (less one escaping `'` and a leading `param:`), and must be a key the API
    accepts: one with surrounding spaces is refused, not trimmed, as the API refuses it."""
    phone_index = name_index = opt_out_index = None
    parameters: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, raw in enumerate(columns):
        column = unescape(raw)
        reserved = column.strip().lower()
        if column[: len(PARAM_PREFIX)].lower() == PARAM_PREFIX:
            key, reserved = column[len(PARAM_PREFIX) :], ""
        else:
            key = column
        where = f"column {index + 1} of the header"
        if not key.strip():
            raise errors.Invalid(f"{where} has no name", parameter=PARAMETER)
        if reserved in RESERVED:
            identity = reserved
        else:
            check_parameter_key(f"{where}: the key", key, parameter=PARAMETER)
            identity = PARAM_PREFIX + key
        if identity in seen:
            raise errors.Invalid(f"{where}: {column[:80]!r} appears twice", parameter=PARAMETER)
        seen.add(identity)
        if reserved == PHONE_COLUMN:
            phone_index = index
        elif reserved == NAME_COLUMN:
            name_index = index
        elif reserved == OPT_OUT_COLUMN:
            opt_out_index = index
        else:
            parameters.append((index, key))
    if phone_index is None:
        raise errors.Invalid("the header has no phone_number column", parameter=PARAMETER)
    return Header(tuple(columns), phone_index, name_index, opt_out_index, tuple(parameters))


# The header's phone_number cell, maybe quoted or spaced, with the delimiter after it (or,
# at the end of the line, before it).
_PHONE_CELL = re.compile(
    r'(?:^|(?P<before>[,;\t]))[ "]*phone_number[ "]*(?P<after>[,;\t]|$)', re.IGNORECASE
)


def header_delimiter(header_line: str) -> str:
    """The delimiter next to the `phone_number` cell of the header line; `,` when it is
    the only column (or there is none, which `parse_header` then refuses). Counting the
    delimiters of the whole line instead would let a key such as `a;b;c` choose `;`."""
    match = _PHONE_CELL.search(header_line.rstrip("\r\n"))
    if match is None:
        return ","
    return match.group("after") or match.group("before") or ","


def text_stream(binary: IO[bytes]) -> io.TextIOWrapper:
    """UTF-8 text of an uploaded or opened file; a BOM, if any, is dropped."""
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")


class CsvReader:
    """Iterates the rows of an import file after its header."""

    def __init__(self, text: IO[str]) -> None:
        # Kept: once the chain below is exhausted it lets go of the stream, whose wrapper
        # would then close the caller's file.
        self._text = text
        try:
            first = text.readline()
        except UnicodeDecodeError:
            raise _not_utf8(1) from None
        if not first.strip():
            raise errors.Invalid(
                "the file is empty: the first line must name the columns", parameter=PARAMETER
            )
        self.delimiter = header_delimiter(first)
        self._lines = itertools.chain([first], text)
        self._reader = csv.reader(self._lines, delimiter=self.delimiter, strict=False)
        header_fields = self._next()
        assert header_fields is not None
        self.header = parse_header(header_fields)
        self.line = self._reader.line_num  # the last physical line read

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise _not_utf8(self._reader.line_num + 1) from None
        except csv.Error as exc:
            raise errors.Invalid(
                f"line {self._reader.line_num}: the file is not valid CSV ({exc})",
                parameter=PARAMETER,
            ) from None

    def __iter__(self) -> Iterator[Row]:
        header = self.header
        width = len(header.columns)
        phone_index = header.phone_index
        name_index = header.name_index
        opt_out_index = header.opt_out_index
        parameters = header.parameters
        given_parameters = bool(parameters)
        normalize = phones.normalize_phone
        while True:
            fields = self._next()
            if fields is None:
                return
            line = self.line + 1
            self.line = self._reader.line_num
            if not any(fields):
                continue  # blank lines and spreadsheets' trailing ",,," rows
            if len(fields) != width:
                yield BadRow(line, f"expected {width} fields, got {len(fields)}", tuple(fields))
                continue
            raw_phone = fields[phone_index]
            try:
                phone = normalize(raw_phone)
            except phones.InvalidPhone as exc:
                yield BadRow(line, f"phone_number: {exc.reason}", tuple(fields))
                continue
            reason = None
            name = None
            if name_index is not None:
                name = unescape(fields[name_index].strip()).strip()
                if len(name) > MAX_NAME:
                    reason = f"name: at most {MAX_NAME} characters, got {len(name)}"
            opted_out = None
            if opt_out_index is not None:
                flag = fields[opt_out_index].strip().lower()
                if flag in _TRUE:
                    opted_out = True
                elif flag in _FALSE:
                    opted_out = False
                elif flag:
                    reason = "has_opted_out: must be 1/0, true/false or yes/no"
            custom: dict[str, str] | None = None
            if given_parameters:
                custom = {}
                for index, key in parameters:
                    value = unescape(fields[index])
                    if value:
                        if len(value) > MAX_VALUE:
                            reason = f"{key}: at most {MAX_VALUE} characters, got {len(value)}"
                        custom[key] = value
            if reason is None and any("\x00" in field for field in fields):
                reason = "NUL characters are not allowed"
            if reason is not None:
                yield BadRow(line, reason, tuple(fields))
                continue
            yield ContactRow(line, phone, name, opted_out, custom)


def _not_utf8(line: int) -> errors.Invalid:
    return errors.Invalid(
        f"the file is not UTF-8 text (near line {line}): save it as CSV UTF-8",
        parameter=PARAMETER,
    )


# -- export ---------------------------------------------------------------------------


def escape(cell: str) -> str:
    """The cell as an export writes it: with one `'` in front if a spreadsheet would
    take it for a formula, or if it starts with `'` itself (so `unescape` is exact)."""
    return ESCAPE + cell if cell and cell[0] in _ESCAPED_FIRST else cell


def unescape(cell: str) -> str:
    """The cell as an import reads it: without one leading `'`, if any."""
    return cell[1:] if cell.startswith(ESCAPE) else cell


def parameter_column(key: str) -> str:
    """The header that reads back as custom parameter `key`."""
    if key.strip().lower() in RESERVED or key[: len(PARAM_PREFIX)].lower() == PARAM_PREFIX:
        return escape(PARAM_PREFIX + key)
    return escape(key)


def export_header(keys: Sequence[str]) -> list[str]:
    return [PHONE_COLUMN, NAME_COLUMN, OPT_OUT_COLUMN, *(parameter_column(k) for k in keys)]


def export_row(contact: Any, keys: Sequence[str]) -> list[str]:
    custom = contact["custom_parameters"] or {}
    escaped = _ESCAPED_FIRST
    values = [custom.get(key, "") for key in keys]
    return [
        contact["phone_number"],
        escape(contact["name"] or ""),
        "1" if contact["has_opted_out"] else "0",
        # `escape`, inlined: this runs for every cell of a million-contact export.
        *[ESCAPE + value if value and value[0] in escaped else value for value in values],
    ]


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """The CSV text of rows, with CRLF line ends as RFC 4180 and spreadsheets expect."""
    sink = io.StringIO()
    csv.writer(sink).writerows(rows)
    return sink.getvalue()
