"""Reading import files and writing exports (no database)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from segmenti import errors
from segmenti.contacts import csv_io, staging
from segmenti.contacts.csv_io import BadRow, ContactRow
from segmenti.contacts.reader_process import ChildStager
from segmenti.contacts.staging import StagedBatch


def read(text: str) -> list[csv_io.Row]:
    return list(csv_io.CsvReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("phone_number,name\n", ","),
        ("phone_number;name;plan\n", ";"),
        ("phone_number\tname\n", "\t"),
        ("phone_number\n", ","),
        ("phone_number;name;first, last\n", ";"),
        # The one next to phone_number, however many others the keys hold.
        ("phone_number,name,a;b;c;d;e\r\n", ","),
        ('"phone_number";"a,b,c,d"\n', ";"),
        (' Phone_Number \t"x;y;z"\n', "\t"),
        ("plan;a,b,c,d;phone_number\n", ";"),
        ("param:phone_number;x,y,z,w,phone_number\n", ","),
    ],
)
def test_the_delimiter_is_the_one_next_to_the_phone_number_cell(line: str, delimiter: str) -> None:
    assert csv_io.header_delimiter(line) == delimiter


def test_header_reserved_names_match_case_insensitively_and_param_prefix_escapes() -> None:
    header = csv_io.parse_header([" Phone_Number ", "NAME", "plan", "param:name", "PARAM:x"])
    assert (header.phone_index, header.name_index, header.opt_out_index) == (0, 1, None)
    assert header.parameters == ((2, "plan"), (3, "name"), (4, "x"))


@pytest.mark.parametrize(
    ("columns", "detail"),
    [
        (["name"], "no phone_number column"),
        (["phone_number", "phone_number"], "appears twice"),
        (["phone_number", "plan", "param:plan"], "appears twice"),
        (["phone_number", " "], "has no name"),
        (["phone_number", "param:"], "has no name"),
        (["phone_number", "k" * 65], "1 to 64 characters"),
    ],
)
def test_bad_headers_are_invalid_naming_the_file(columns: list[str], detail: str) -> None:
    with pytest.raises(errors.Invalid) as raised:
        csv_io.parse_header(columns)
    assert detail in str(raised.value.detail)
    assert raised.value.parameter == "file"


def test_a_64_character_key_is_fine() -> None:
    assert csv_io.parse_header(["phone_number", "k" * 64]).parameters == ((1, "k" * 64),)


def test_rows_carry_the_line_they_start_on_across_quoted_newlines() -> None:
    rows = read('phone_number,note\n+393331234567,"a\nb\nc"\n\n+393331234568,x\n')
    assert [row.line for row in rows] == [2, 6]
    first = rows[0]
    assert isinstance(first, ContactRow)
    assert first.custom_parameters == {"note": "a\nb\nc"}


def test_absent_columns_and_empty_cells_are_not_given() -> None:
    (row,) = read("phone_number,has_opted_out,plan,city\n+393331234567,,pro,\n")
    assert isinstance(row, ContactRow)
    assert (row.name, row.has_opted_out, row.custom_parameters) == (None, None, {"plan": "pro"})
    (bare,) = read("phone_number\n+393331234567\n")
    assert isinstance(bare, ContactRow)
    assert bare.custom_parameters is None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("+39333,a,1,x", "phone_number: not a valid phone number"),
        (",a,1,x", "phone_number: empty phone number"),
        ("+393331234567,a,1", "expected 4 fields, got 3"),
        ("+393331234567,a,1,x,y", "expected 4 fields, got 5"),
        ("+393331234567," + "n" * 257 + ",1,x", "name: at most 256 characters, got 257"),
        ("+393331234567,a,2,x", "has_opted_out: must be 1/0, true/false or yes/no"),
        ("+393331234567,a,1," + "v" * 513, "plan: at most 512 characters, got 513"),
        ("+393331234567,a\x00,1,x", "NUL characters are not allowed"),
    ],
)
def test_bad_rows_say_why(row: str, reason: str) -> None:
    (bad,) = read(f"phone_number,name,has_opted_out,plan\n{row}\n")
    assert isinstance(bad, BadRow)
    assert (bad.line, bad.reason) == (2, reason)


def test_limits_are_inclusive() -> None:
    (row,) = read(f"phone_number,name,plan\n+393331234567,{'n' * 256},{'v' * 512}\n")
    assert isinstance(row, ContactRow)


def test_bom_is_dropped_and_other_encodings_are_refused() -> None:
    text = csv_io.text_stream(io.BytesIO(b"\xef\xbb\xbfphone_number\n+393331234567\n"))
    (row,) = list(csv_io.CsvReader(text))
    assert isinstance(row, ContactRow)
    with pytest.raises(errors.Invalid, match="not UTF-8"):
        list(csv_io.CsvReader(csv_io.text_stream(io.BytesIO(b"phone_number,c\n+39,\xe8\n"))))


@pytest.mark.parametrize(
    "key",
    ["plan", "name", "Phone_Number", "has_opted_out", "param:x", "PARAM:y", "'quoted", "''two",
     "=SUM(A1)", "+1", "-1", "@x", "a\tb", "param:=x", "'name", "=phone_number", "a;b;c"],
)  # fmt: skip
def test_export_headers_read_back_as_the_same_key(key: str) -> None:
    header = csv_io.parse_header(csv_io.export_header([key]))
    assert header.parameters == ((3, key),)


@pytest.mark.parametrize(
    ("cell", "written"),
    [("=1+1", "'=1+1"), ("+39", "'+39"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("\rx", "'\rx"), ("'x", "''x"), ("''", "'" * 3), ("x=1", "x=1"),
     ("", ""), (" =x", " =x")],
)  # fmt: skip
def test_formula_cells_are_escaped_and_read_back_exactly(cell: str, written: str) -> None:
    assert csv_io.escape(cell) == written
    assert csv_io.unescape(written) == cell


def test_an_export_row_escapes_name_and_values_but_not_the_number() -> None:
    contact = {
        "phone_number": "+393331234567",
        "name": '=HYPERLINK("x")',
        "has_opted_out": False,
        "custom_parameters": {"a": "-1", "b": "'kept"},
    }
    assert csv_io.export_row(contact, ["a", "b", "c"]) == [
        "+393331234567", "'=HYPERLINK(\"x\")", "0", "'-1", "''kept", ""
    ]  # fmt: skip
    text = csv_io.csv_text(
        [csv_io.export_header(["a", "b"]), csv_io.export_row(contact, ["a", "b"])]
    )
    (row,) = read(text)
    assert isinstance(row, ContactRow)
    assert (row.name, row.custom_parameters) == ('=HYPERLINK("x")', {"a": "-1", "b": "'kept"})


@pytest.mark.parametrize("column", [" plan", "plan ", "param: plan", "param:plan\t", " param:x"])
def test_a_header_key_with_surrounding_spaces_is_refused(column: str) -> None:
    with pytest.raises(errors.Invalid, match="must not begin or end with a space") as raised:
        csv_io.parse_header(["phone_number", column])
    assert raised.value.parameter == "file"
    assert "column 2 of the header" in str(raised.value.detail)


def test_csv_text_ends_lines_with_crlf() -> None:
    assert csv_io.csv_text([["a", "b,c"], ["x", ""]]) == 'a,"b,c"\r\nx,\r\n'


def _staged(batches: list[StagedBatch]) -> list[tuple[Any, ...]]:
    """Each batch as what it says and what its file holds."""
    shown = []
    for batch in batches:
        held = []
        if batch.path is not None:
            # PostgreSQL's tables: schema-less, as read_stage wants them.
            keys = list(staging.read_stage(batch.path, staging.stage_tables("postgresql").keys))
            tables = staging.stage_tables("postgresql", [key for _, key in keys])
            for table in (tables.rows, tables.keys, tables.parameters):
                held.append(list(staging.read_stage(batch.path, table)))
        shown.append((batch.rows, batch.last_line, batch.invalid, held))
    return shown


def test_a_child_process_stages_the_same_batches(tmp_path: Path) -> None:
    text = (
        'phone_number,name,plan\n+393331234567,"A\nB",Pro\nbad,x,y\n+14155552671,,\n'
        "+393331234567,,free\n+442071838750,Z,12\nworse,,\n"
    )
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "child").mkdir()
    (tmp_path / "here").mkdir()
    child = ChildStager(path, tmp_path / "child", batch_size=2)
    from_child = list(child)
    here = list(staging.stage_batches(read(text), tmp_path / "here", batch_size=2))
    assert _staged(from_child) == _staged(here)
    # Three valid rows, then one with the last bad row only; repeats fold within a batch.
    assert [(batch.rows, batch.last_line) for batch in from_child] == [(2, 5), (2, 7), (0, 8)]
    first_rows, first_keys, first_narrow = _staged(from_child)[0][3]
    assert [row[1] for row in first_rows] == ["+393331234567", "+14155552671"]
    # Only the first row has a plan; its value is folded, and not a number.
    assert (first_keys, first_narrow) == ([(0, "plan")], [])
    assert [row[-2:] for row in first_rows] == [("pro", None), (staging.ABSENT, None)]
    assert child.header == ("phone_number", "name", "plan")
    assert child.position == len(text.encode())
    path.write_text("name\nx\n", encoding="utf-8")
    with pytest.raises(errors.Invalid, match="no phone_number column") as raised:
        list(ChildStager(path, tmp_path / "child", batch_size=2))
    assert raised.value.parameter == "file"


def test_staged_batches_can_start_small_and_grow_to_the_batch_size(tmp_path: Path) -> None:
    text = "phone_number\n" + "".join(f"+3933300000{n:02d}\n" for n in range(40))
    batches = staging.stage_batches(read(text), tmp_path, batch_size=8, first_size=2)
    assert [batch.rows for batch in batches] == [2, 3, 4, 6, 8, 8, 8, 1]
