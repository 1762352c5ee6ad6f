"""CSV import (`POST /api/contacts/import`) and export (`GET /api/contacts.csv`,
`GET /api/segments/{id}/contacts.csv`)."""

from __future__ import annotations

import csv
import gc
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import insert

from segmenti.contacts import csv_http, csv_io, importer
from segmenti.db.engine import Database
from segmenti.db.tables import MAX_ID, contacts
from segmenti.timeutil import utcnow
from tests.conftest import User
from tests.counting import stale_counts
from tests.served import StalledDownload, make_large_export, serving


def upload(user: User, text: str | bytes, **data: str) -> Any:
    body = text.encode("utf-8") if isinstance(text, str) else text
    return user.post(
        "/api/contacts/import", files={"file": ("contacts.csv", body, "text/csv")}, data=data
    )


def imported(user: User, text: str | bytes, **data: str) -> dict[str, Any]:
    response = upload(user, text, **data)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()["data"]
    return report


def contacts_of(user: User) -> dict[str, dict[str, Any]]:
    """Every contact of the user by phone number: name, opt-out, parameters."""
    found: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        body = user.get("/api/contacts", params={"page": page, "results_per_page": 1000}).json()
        for contact in body["data"]:
            found[contact["phone_number"]] = {
                "name": contact["name"],
                "has_opted_out": contact["has_opted_out"],
                "custom_parameters": contact["custom_parameters"],
                "country_code": contact["country_code"],
            }
        if page >= body["meta"]["total_pages"]:
            return found
        page += 1


def test_import_creates_contacts_with_their_parameters(alice: User) -> None:
    report = imported(
        alice,
        "phone_number,name,has_opted_out,plan,age\n"
        "+393331234567,Maria Rossi,0,pro,31\n"
        "0044 7400 123456, John Smith ,yes,free,\n",
    )
    assert report == {
        "rows": 2,
        "created": 2,
        "updated": 0,
        "invalid": 0,
        "batches": 1,
        "committed_through_line": 3,
        "invalid_rows": [],
    }
    assert contacts_of(alice) == {
        "+393331234567": {
            "name": "Maria Rossi",
            "has_opted_out": False,
            "custom_parameters": {"plan": "pro", "age": "31"},
            "country_code": "IT",
        },
        # An empty cell leaves the key unset.
        "+447400123456": {
            "name": "John Smith",
            "has_opted_out": True,
            "custom_parameters": {"plan": "free"},
            "country_code": "GB",
        },
    }


def test_existing_numbers_are_updated_and_their_parameters_replaced(alice: User) -> None:
    contact_id = alice.make_contact(
        "+393331234567", name="Old", custom_parameters={"plan": "free", "legacy": "x"}
    )
    report = imported(alice, "phone_number,name,plan,city\n+39 333 123 4567,New,pro,\n")
    assert (report["created"], report["updated"]) == (0, 1)
    contact = alice.get(f"/api/contacts/{contact_id}").json()["data"]
    assert contact["name"] == "New"
    # Replaced, not merged: "legacy" is gone, and the empty city is not set.
    assert contact["custom_parameters"] == {"plan": "pro"}
    assert contact["last_datetime"] is not None
    # The filter index follows: a segment on the old key no longer holds the contact.
    assert alice.total(alice.make_segment(filters_custom_parameter_key=["legacy"])) == 0
    assert alice.total(alice.make_segment(filters_custom_parameter_key=["plan"],
                                          filters_custom_parameter_value=["PRO"])) == 1  # fmt: skip


def test_a_file_without_parameter_columns_keeps_parameters_and_opt_out(alice: User) -> None:
    alice.make_contact(
        "+393331234567", name="Maria", has_opted_out=True, custom_parameters={"plan": "pro"}
    )
    imported(alice, "phone_number,has_opted_out\n+393331234567,\n")
    assert contacts_of(alice)["+393331234567"] == {
        "name": "Maria",
        "has_opted_out": True,
        "custom_parameters": {"plan": "pro"},
        "country_code": "IT",
    }
    imported(alice, "phone_number,has_opted_out\n+393331234567,false\n")
    assert contacts_of(alice)["+393331234567"]["has_opted_out"] is False


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_imported(alice: User) -> None:
    long_value = "v" * 513
    report = imported(
        alice,
        "phone_number,name,has_opted_out,plan\n"
        "+393331234567,Ok,0,pro\n"
        "12345,No country code,0,pro\n"
        "+393331234568,Too few fields\n"
        f"+393331234569,Long,0,{long_value}\n"
        "\n"
        '+393331234570,"Multi\nline",maybe,pro\n'
        "+393331234571,Also ok,1,\n"
        ",,,\n",
    )
    assert (report["created"], report["invalid"]) == (2, 4)
    assert [(row["line"], row["reason"]) for row in report["invalid_rows"]] == [
        (3, "phone_number: missing country code: start with + or 00"),
        (4, "expected 4 fields, got 2"),
        (5, "plan: at most 512 characters, got 513"),
        (7, "has_opted_out: must be 1/0, true/false or yes/no"),
    ]
    assert report["invalid_rows"][0]["value"] == "12345"
    assert set(contacts_of(alice)) == {"+393331234567", "+393331234571"}


def test_strict_aborts_on_any_bad_row_with_nothing_written(alice: User) -> None:
    response = upload(alice, "phone_number,plan\n+393331234567,pro\nnot a number,pro\n", strict="1")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["source"] == {"parameter": "file"}
    assert error["meta"]["invalid"] == 1
    assert error["meta"]["invalid_rows"][0]["line"] == 3
    assert "nothing was imported" in error["detail"]
    assert contacts_of(alice) == {}
    assert imported(alice, "phone_number\n+393331234567\n", strict="1")["created"] == 1


@pytest.mark.parametrize(
    "encoded",
    [
        b"phone_number,name,city\r\n+393331234567,Rossi; Maria,Milano\r\n",
        b"\xef\xbb\xbfphone_number,name,city\n+393331234567,Rossi; Maria,Milano\n",
        b'phone_number;name;city\n+393331234567;"Rossi; Maria";Milano\n',
        b"phone_number\tname\tcity\n+393331234567\tRossi; Maria\tMilano\n",
    ],
    ids=["comma-crlf", "bom", "semicolon", "tab"],
)
def test_utf8_with_or_without_bom_imports_with_any_sniffed_delimiter(
    alice: User, encoded: bytes
) -> None:
    imported(alice, encoded)
    assert contacts_of(alice)["+393331234567"]["custom_parameters"] == {"city": "Milano"}
    assert contacts_of(alice)["+393331234567"]["name"] == "Rossi; Maria"


def test_param_prefix_names_a_parameter_that_a_reserved_column_would_take(alice: User) -> None:
    imported(alice, "Phone_Number,param:name,param:Plan\n+393331234567,nick,gold\n")
    contact = contacts_of(alice)["+393331234567"]
    assert contact["name"] == ""
    assert contact["custom_parameters"] == {"name": "nick", "Plan": "gold"}


def test_a_number_repeated_in_the_file_is_applied_in_order(alice: User) -> None:
    report = imported(
        alice,
        "phone_number,name,has_opted_out,plan\n"
        "+393331234567,First,1,free\n"
        "+39 333 1234567,Second,,pro\n",
    )
    assert (report["created"], report["updated"]) == (1, 1)
    assert contacts_of(alice)["+393331234567"] == {
        "name": "Second",
        "has_opted_out": True,
        "custom_parameters": {"plan": "pro"},
        "country_code": "IT",
    }


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "the file is empty"),
        ("name,plan\nMaria,pro\n", "no phone_number column"),
        ("phone_number,plan,plan\n", "appears twice"),
        ("phone_number,,plan\n", "column 2 of the header has no name"),
        ("phone_number," + "k" * 65 + "\n", "1 to 64 characters"),
    ],
)
def test_a_file_that_cannot_be_read_is_400(alice: User, text: str, detail: str) -> None:
    response = upload(alice, text)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert detail in error["detail"]
    assert error["source"] == {"parameter": "file"}


def test_a_file_that_is_not_utf8_is_400_and_says_what_was_written(alice: User) -> None:
    response = upload(alice, "phone_number,city\n+393331234567,Sèvres\n".encode("latin-1"))
    assert response.status_code == 400
    assert "not UTF-8" in response.json()["errors"][0]["detail"]
    assert "nothing was written" in response.json()["errors"][0]["detail"]


def test_import_needs_a_multipart_file(alice: User) -> None:
    assert alice.post("/api/contacts/import", json={"file": "x"}).status_code == 415
    response = alice.post("/api/contacts/import", data={"strict": "1"}, files={"x": ("a", b"")})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"] == {"parameter": "file"}
    assert alice.client.post("/api/contacts/import").status_code == 401


def test_import_touches_only_the_callers_contacts(alice: User, bob: User) -> None:
    bob_id = bob.make_contact("+393331234567", name="Bob's", custom_parameters={"k": "v"})
    assert imported(alice, "phone_number,name\n+393331234567,Alice's\n")["created"] == 1
    assert bob.get(f"/api/contacts/{bob_id}").json()["data"]["name"] == "Bob's"


# -- counts --------------------------------------------------------------------------


def _rows(text: str) -> Iterator[csv_io.Row]:
    yield from csv_io.CsvReader(io.StringIO(text, newline=""))


@pytest.mark.parametrize("recount_share", [0.0, 1e9], ids=["recount", "deltas"])
def test_counts_stay_exact_through_an_import(
    alice: User, db: Database, monkeypatch: pytest.MonkeyPatch, recount_share: float
) -> None:
    monkeypatch.setattr(importer, "RECOUNT_SHARE", recount_share)
    kept = alice.make_contact("+393330000001", custom_parameters={"plan": "pro", "age": "40"})
    flipped = alice.make_contact("+393330000002", custom_parameters={"plan": "free"})
    alice.make_contact("+393330000003", has_opted_out=True, custom_parameters={"plan": "pro"})
    segment_ids = [
        alice.make_segment(filters_custom_parameter_key=["plan"],
                           filters_custom_parameter_value=["pro"]),
        alice.make_segment(filters_custom_parameter_key=["plan"],
                           filters_custom_parameter_condition=["not_exact"],
                           filters_custom_parameter_value=["pro"]),
        alice.make_segment(filters_custom_parameter_key=["age"],
                           filters_custom_parameter_condition=["bigger_than"],
                           filters_custom_parameter_value=["30"]),
        alice.make_segment(filters_countries=["GB"]),
        alice.make_segment(),
        alice.make_segment(contacts_ids=f"{kept},{flipped}"),
        alice.make_segment(phone_numbers="+393330000002\n+393330000003\n+393330000009"),
    ]  # fmt: skip
    lines = ["phone_number,has_opted_out,plan,age"]
    lines += [
        f"+3933300000{n:02d},{n % 3 == 0:d},{('pro', 'free')[n % 2]},{n}" for n in range(2, 40)
    ]
    lines += [f"+4474001234{n:02d},,pro,{n}" for n in range(30)]
    lines += ["+393330000003,0,pro,", "+393330000002,1,pro,"]  # repeats, later in the file
    report = importer.import_contacts(
        db, user_id=alice.id, open_rows=lambda: _rows("\n".join(lines) + "\n"), batch_size=7
    )
    assert report.batches == 10
    assert report.invalid == 0
    assert stale_counts(db, alice.id) == {}
    assert all(alice.total(segment_id) >= 0 for segment_id in segment_ids)
    assert alice.total(segment_ids[3]) == 30


def test_a_failed_batch_leaves_earlier_batches_and_says_so(
    alice: User, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice.make_segment(filters_custom_parameter_key=["plan"])
    real = importer._write_batch
    calls = []

    def failing_third_batch(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            real(*args, **kwargs)
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(importer, "_write_batch", failing_third_batch)
    text = "phone_number,plan\n" + "".join(f"+3933300000{n:02d},pro\n" for n in range(25))
    with pytest.raises(importer.ImportStopped) as stopped:
        importer.import_contacts(db, user_id=alice.id, open_rows=lambda: _rows(text), batch_size=5)
    assert stopped.value.report.batches == 2
    assert stopped.value.report.committed_through_line == 11
    assert "2 batch(es) were committed, covering lines 2 to 11" in str(stopped.value.detail)
    assert len(contacts_of(alice)) == 10
    assert stale_counts(db, alice.id) == {}


def test_a_first_import_falls_back_when_a_batch_repeats_an_earlier_number(
    alice: User, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty account, batches are first written as new contacts only (SQLite);
    a batch holding a number an earlier batch created is undone and looked up instead."""
    segment_id = alice.make_segment(
        **{
            "filters_custom_parameter_key[0]": "plan",
            "filters_custom_parameter_condition[0]": "exact",
            "filters_custom_parameter_value[0]": "PRO",
        }
    )
    guesses: list[bool] = []
    real = importer._insert_all_new

    def spy(*args: Any, **kwargs: Any) -> Any:
        ids = real(*args, **kwargs)
        guesses.append(ids is not None)
        return ids

    monkeypatch.setattr(importer, "_insert_all_new", spy)
    numbers = [f"+3933300000{n:02d}" for n in range(10)]
    batches = [
        [(numbers[0], "pro"), (numbers[1], "free"), (numbers[2], "pro")],
        [(numbers[3], "pro"), (numbers[0], "free"), (numbers[4], "free")],  # repeats 0
        [(numbers[5], "pro"), (numbers[6], "pro"), (numbers[7], "free")],
        [(numbers[8], "pro"), (numbers[9], "pro")],
    ]
    text = "phone_number,plan\n" + "".join(
        f"{number},{plan}\n" for batch in batches for number, plan in batch
    )
    report = importer.import_contacts(
        db, user_id=alice.id, open_rows=lambda: _rows(text), batch_size=3
    )
    assert (report.rows, report.created, report.updated) == (11, 10, 1)
    # Tried for the first batch (empty account), the second (the first was all new) and
    # the fourth; not for the third, after a batch that was not all new.
    assert guesses == ([True, False, True] if db.is_sqlite else [False, False, False])
    held = contacts_of(alice)
    assert len(held) == 10
    assert held[numbers[0]]["custom_parameters"] == {"plan": "free"}
    assert alice.total(segment_id) == 6
    assert stale_counts(db, alice.id) == {}


def test_a_file_with_more_keys_than_staged_as_columns_keeps_and_indexes_every_key(
    alice: User,
) -> None:
    keys = [f"k{n}" for n in range(450)]  # 32 staged as columns, the rest as rows
    first, second = "+393331234567", "+393331234568"
    text = (
        "phone_number," + ",".join(keys) + "\n"
        f"{first}," + ",".join(f"V{n}" for n in range(450)) + "\n"
        f"{second}," + ",".join("" if n % 2 else str(n) for n in range(450)) + "\n"
    )
    assert imported(alice, text)["created"] == 2
    held = contacts_of(alice)
    assert held[first]["custom_parameters"] == {key: f"V{n}" for n, key in enumerate(keys)}
    assert held[second]["custom_parameters"] == {
        key: str(n) for n, key in enumerate(keys) if n % 2 == 0
    }
    # Every key is in the parameter index, folded or as a number, however it was staged.
    for n in (0, 31, 32, 449):
        exact = alice.make_segment(
            **{
                "filters_custom_parameter_key[0]": keys[n],
                "filters_custom_parameter_condition[0]": "exact",
                "filters_custom_parameter_value[0]": f"v{n}",
            }
        )
        assert alice.total(exact) == 1
    bigger = alice.make_segment(
        **{
            "filters_custom_parameter_key[0]": "k448",
            "filters_custom_parameter_condition[0]": "bigger_than",
            "filters_custom_parameter_value[0]": "447.5",
        }
    )
    assert alice.total(bigger) == 1


def test_an_import_past_the_last_id_is_refused_with_nothing_written(
    alice: User, bob: User, db: Database
) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite numbers ids itself; PostgreSQL's sequence refuses them")
    with db.write() as session:
        session.execute(
            insert(contacts).values(
                id=MAX_ID - 1,
                user_id=bob.id,
                phone_number="+393330000001",
                custom_parameters={},
                datetime=utcnow(),
            )  # fmt: skip
        )
    response = upload(alice, "phone_number\n+393331234567\n+393331234568\n")
    assert response.status_code == 400
    assert "no ids left for 2 new contacts" in response.json()["errors"][0]["detail"]
    assert contacts_of(alice) == {}


# -- export --------------------------------------------------------------------------


TRICKY = (
    "phone_number,name,has_opted_out,plan,param:name,note,=cmd\n"
    '+393331234567,"Rossi, Maria",0,pro,nick,"said ""hi""\nthen left",=1+1\n'
    "+14155552671,Émile Zoë,1,free,,  spaces  ,\n"
    "+819012345678,,0,,,日本語,x\n"
)


def test_export_reimports_to_the_same_contacts(alice: User, bob: User) -> None:
    imported(alice, TRICKY)
    response = alice.get("/api/contacts.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    exported = response.text
    header = next(csv.reader(io.StringIO(exported)))
    # A key a spreadsheet would run as a formula is escaped like any other cell.
    assert header == ["phone_number", "name", "has_opted_out", "'=cmd", "param:name",
                      "note", "plan"]  # fmt: skip
    imported(bob, exported)
    assert contacts_of(bob) == contacts_of(alice)
    assert contacts_of(alice)["+393331234567"]["custom_parameters"] == {
        "plan": "pro",
        "name": "nick",
        "note": 'said "hi"\nthen left',
        "=cmd": "=1+1",
    }
    # Exported again, the same file.
    assert bob.get("/api/contacts.csv").text == exported


def test_export_of_a_segment_holds_its_members(alice: User, bob: User) -> None:
    imported(alice, TRICKY)
    pro = alice.make_segment(filters_custom_parameter_key=["plan"],
                             filters_custom_parameter_value=["pro"])  # fmt: skip
    listed = alice.make_segment(phone_numbers="+14155552671")
    rows = list(csv.reader(io.StringIO(alice.get(f"/api/segments/{pro}/contacts.csv").text)))
    assert [row[0] for row in rows[1:]] == ["+393331234567"]
    # Opted-out members only when asked, as in the member list, marked as such.
    rows = list(csv.reader(io.StringIO(alice.get(f"/api/segments/{listed}/contacts.csv").text)))
    assert rows[1:] == []
    asked = alice.get(f"/api/segments/{listed}/contacts.csv", params={"include_opted_out": "1"})
    rows = list(csv.reader(io.StringIO(asked.text)))
    assert [row[:3] for row in rows[1:]] == [["+14155552671", "Émile Zoë", "1"]]
    assert bob.get(f"/api/segments/{pro}/contacts.csv").status_code == 404
    assert alice.get("/api/segments/999/contacts.csv").status_code == 404


def test_export_of_a_user_without_contacts_is_a_header(alice: User) -> None:
    assert alice.get("/api/contacts.csv").text == "phone_number,name,has_opted_out\r\n"


# -- issue 17: exports re-import exactly, hold no formula, follow the member list -----

ODD_KEYS = ["a;b;c;d;e", "x,y", 'say "hi"', "'quoted", "''twice", "=SUM(A1)", "+1", "-1",
            "@at", "param:=x", "name", "tab\tinside", "line\nbreak"]  # fmt: skip
ODD_VALUES = ["=1+1", "+39333", "-2", "@SUM(A1)", "\tlead", "\rlead", "'quoted", "''", "'",
              "a;b,c\"d", " spaced ", "=", "line\r\nbreak"]  # fmt: skip


def test_export_reimports_exactly_whatever_the_keys_and_values_hold(alice: User, bob: User) -> None:
    for n, value in enumerate(ODD_VALUES):
        alice.make_contact(
            f"+39333100{n:04d}",
            name=value.strip() or "x",
            custom_parameters={key: value for key in ODD_KEYS},
            has_opted_out=n % 2 == 1,
        )
    exported = alice.get("/api/contacts.csv").text
    imported(bob, exported)
    assert contacts_of(bob) == contacts_of(alice)
    assert len(contacts_of(bob)) == len(ODD_VALUES)
    assert bob.get("/api/contacts.csv").text == exported


def test_a_key_full_of_semicolons_does_not_change_the_delimiter(alice: User) -> None:
    imported(alice, "phone_number,a;b;c;d;e\n+393331234567,v\n")
    assert contacts_of(alice)["+393331234567"]["custom_parameters"] == {"a;b;c;d;e": "v"}
    imported(alice, 'phone_number;"x,y,z,w"\n+393331234567;"1,2"\n')
    assert contacts_of(alice)["+393331234567"]["custom_parameters"] == {"x,y,z,w": "1,2"}


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "'=1"]


def test_exported_cells_never_start_a_formula(alice: User) -> None:
    keys = [formula for formula in FORMULAS if formula == formula.strip()]  # keys: no spaces
    alice.make_contact(
        "+393331234567",
        name="=cmd|' /C calc'!A0",
        custom_parameters={
            **{f"v{n}": formula for n, formula in enumerate(FORMULAS)},
            **{key: "x" for key in keys},
        },
    )
    header, row = list(csv.reader(io.StringIO(alice.get("/api/contacts.csv").text)))
    by_column = dict(zip(header, row, strict=True))
    cells = [by_column["name"], *(by_column[f"v{n}"] for n in range(len(FORMULAS)))]
    cells += [column for column in header if column[1:] in keys]
    assert len(cells) == 1 + len(FORMULAS) + len(keys)
    for cell in cells:
        assert cell.startswith("'"), cell
    assert by_column["phone_number"] == "+393331234567"  # E.164, left alone
    # One quote exactly, also in front of a cell that starts with one already.
    assert by_column["v6"] == "''=1"
    assert '\'=HYPERLINK("http://x")' in header


def test_an_import_takes_exactly_one_quote_off(alice: User) -> None:
    imported(alice, "phone_number,name,'=k,''q\n+393331234567,'=n,'+1,''x\n")
    contact = contacts_of(alice)["+393331234567"]
    assert contact["name"] == "=n"
    assert contact["custom_parameters"] == {"=k": "+1", "'q": "'x"}


def _exported_numbers(user: User, segment_id: int, **params: str) -> list[tuple[str, str]]:
    response = user.get(f"/api/segments/{segment_id}/contacts.csv", params=params)
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["phone_number", "name", "has_opted_out"]
    return [(row[0], row[2]) for row in rows[1:]]


def _listed_numbers(user: User, segment_id: int, **params: str) -> list[tuple[str, str]]:
    body = user.get(f"/api/segments/{segment_id}/contacts", params=params).json()
    return [(c["phone_number"], "1" if c["has_opted_out"] else "0") for c in body["data"]]


@pytest.mark.parametrize("kind", ["filter", "bulk"])
def test_a_segment_export_leaves_opted_out_members_out_like_the_member_list(
    alice: User, kind: str, subtests: pytest.Subtests
) -> None:
    for n in range(6):
        alice.make_contact(f"+39333200{n:04d}", custom_parameters={"plan": "pro"},
                           has_opted_out=n % 3 == 0)  # fmt: skip
    if kind == "filter":
        segment = alice.make_segment(filters_custom_parameter_key=["plan"],
                                     filters_custom_parameter_value=["pro"])  # fmt: skip
    else:
        segment = alice.make_segment(phone_numbers=[f"+39333200{n:04d}" for n in range(6)])
    assert alice.total(segment) == 4
    choices: list[dict[str, str]] = [
        {}, {"include_opted_out": "1"}, {"include_opted_out": "0"}, {"has_opted_out": "1"},
        {"has_opted_out": "0"}, {"include_opted_out": "1", "has_opted_out": "0"},
        {"has_opted_out": ""},
    ]  # fmt: skip
    for params in choices:
        with subtests.test(**params):
            exported = _exported_numbers(alice, segment, **params)
            assert exported == _listed_numbers(alice, segment, **params)
    assert len(_exported_numbers(alice, segment)) == 4
    assert {flag for _, flag in _exported_numbers(alice, segment, has_opted_out="1")} == {"1"}


def test_a_segment_export_refuses_a_bad_opt_out_flag(alice: User) -> None:
    segment = alice.make_segment(phone_numbers="+393331234567")
    for name in ("include_opted_out", "has_opted_out"):
        response = alice.get(f"/api/segments/{segment}/contacts.csv", params={name: "maybe"})
        assert response.status_code == 400
        assert response.json()["errors"][0]["source"]["parameter"] == name


@pytest.fixture
def no_garbage_collection() -> Iterator[None]:
    """What is released must be released by the code, not by a collection that happens
    to run."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_garbage_collection")
def test_an_aborted_download_returns_its_connection_and_ends_its_pages(
    app: Any, alice: User, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_large_export(db, user_id=alice.id)
    pages_closed = threading.Event()
    stream_csv = csv_http.stream_csv

    async def watched(*args: Any) -> AsyncIterator[str]:
        pages = stream_csv(*args)
        try:
            async for page in pages:
                yield page
        finally:
            await pages.aclose()
            pages_closed.set()

    monkeypatch.setattr(csv_http, "stream_csv", watched)
    pool = db.engine.pool
    with serving(app) as base:
        download = StalledDownload(base, "/api/contacts.csv", alice.api_key)
        download.abort()
        deadline = time.monotonic() + 10
        while pool.checkedout():
            assert time.monotonic() < deadline, f"{pool.checkedout()} connection(s) kept"
            time.sleep(0.05)
        assert pages_closed.wait(10), "the export's pages were not closed after the abort"
