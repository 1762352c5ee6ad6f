"""Contact search (`search` of the contacts list and of a segment's members): the rule,
answered from the index (FTS5 on SQLite, pg_trgm on PostgreSQL), equals a scan's answer
on random data, stays in step with every write path, and takes hostile text literally."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from sqlalchemy import insert, select

from segmenti.contacts import search
from segmenti.db.engine import Database
from segmenti.db.tables import contacts
from segmenti.db.tenant import Tenant
from segmenti.timeutil import utcnow
from tests.conftest import User

# Letters whose case folding Python, SQLite's FTS5 and PostgreSQL agree on, and every
# character that means something to LIKE, FTS5 or SQL.
ALPHABET = "abcdeXYZ éÉüÜàÀ 0123456789 %_\\\"'*-+.():^{}"
HOSTILE = [
    '"',
    '""',
    'x" OR "y',
    '" OR owner : "',
    "name : abc",
    "{name}: abc",
    "NEAR(abc def)",
    "abc*",
    "^abc",
    "AND OR NOT",
    "((((",
    "%",
    "%%%%",
    "_",
    "____",
    "\\",
    "\\\\%_",
    "'; DROP TABLE contacts; --",
    "a%b_c\\d",
]


def expected_match(name: str, phone: str, text: str) -> bool:
    """The issue's rule, written out independently of contacts/search.py."""
    text = text.strip()
    if text.lower() in name.lower():
        return True
    if re.fullmatch(r"\+?[0-9 .()\-]+", text) and len(re.sub(r"[^0-9]", "", text)) >= 3:
        digits = re.sub(r"[ .()\-]", "", text)
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        return digits in phone
    return False


def found(user: User, text: str, path: str = "/api/contacts") -> tuple[set[int], int]:
    response = user.get(path, params={"search": text, "results_per_page": 1000})
    assert response.status_code == 200, response.text
    body = response.json()
    return {contact["id"] for contact in body["data"]}, body["meta"]["total"]


def scanned(db: Database, user: User, text: str) -> set[int]:
    """The same search read from every contact of the user (no index)."""
    wanted = search.parse(text)
    assert wanted is not None
    with db.read() as session:
        query = Tenant(user.id).select(contacts.c.id).where(search.scan_where(wanted))
        return set(session.execute(query).scalars())


def add_contacts(db: Database, user: User, rows: list[tuple[str, str]]) -> dict[int, tuple]:
    with db.write() as session:
        session.execute(
            insert(contacts),
            [
                {
                    "user_id": user.id,
                    "name": name,
                    "phone_number": phone,
                    "custom_parameters": {},
                    "datetime": utcnow(),
                }
                for name, phone in rows
            ],
        )
        return {
            row.id: (row.name, row.phone_number)
            for row in session.execute(
                Tenant(user.id).select(contacts.c.id, contacts.c.name, contacts.c.phone_number)
            )
        }


def random_contacts(rng: random.Random, count: int, prefix: str) -> list[tuple[str, str]]:
    rows = []
    for i in range(count):
        name = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))
        phone = f"{rng.choice(['+39', '+1', '+44', '+3933'])}{rng.randrange(10**9):09d}{i}"
        rows.append((name, f"{prefix}{phone[len(prefix) :]}" if prefix else phone))
    return rows


def search_texts(rng: random.Random, people: dict[int, tuple]) -> list[str]:
    texts = list(HOSTILE)
    values = list(people.values())
    for _ in range(60):
        name, phone = rng.choice(values)
        if len(name) >= 2:
            start = rng.randrange(len(name) - 1)
            piece = name[start : start + rng.randint(1, 8)]
            texts.append(piece.swapcase() if rng.random() < 0.5 else piece)
        start = rng.randrange(1, len(phone) - 3)
        digits = phone[start : start + rng.randint(3, 9)]
        texts.append(" ".join(digits[i : i + 3] for i in range(0, len(digits), 3)))
        texts.append("00" + phone[1 : rng.randint(4, 9)])  # a number typed the Italian way
        texts.append("+" + "-".join(phone[1 : rng.randint(4, 10)]))
        texts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6))))
    return [text for text in texts if text.strip()]


def test_the_index_answers_what_a_scan_and_the_rule_answer(
    alice: User, bob: User, db: Database
) -> None:
    rng = random.Random(19)
    people = add_contacts(db, alice, random_contacts(rng, 400, ""))
    add_contacts(db, bob, random_contacts(rng, 200, ""))  # never in alice's answers
    texts = search_texts(rng, people)
    indexed = sum(1 for text in texts if search.parse(text).indexed)  # type: ignore[union-attr]
    assert indexed > len(texts) / 2  # the comparison is mostly about the index
    for text in texts:
        ids, total = found(alice, text)
        expected = {i for i, (name, phone) in people.items() if expected_match(name, phone, text)}
        assert ids == expected, text
        assert total == len(expected), text
        assert scanned(db, alice, text) == expected, text
        # With another condition the search is a predicate among others; same answer.
        assert found(alice, text, "/api/contacts?has_opted_out=0") == (expected, total), text
        if len(expected) > 10:  # a later page, newest first
            response = alice.get(
                "/api/contacts", params={"search": text, "results_per_page": 10, "page": 2}
            )
            page = [contact["id"] for contact in response.json()["data"]]
            assert page == sorted(expected, reverse=True)[10:20], text


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_taken_literally(alice: User, bob: User, text: str) -> None:
    holder = alice.make_contact("+393331234501", name=f"before {text} after")
    alice.make_contact("+393331234502", name="someone else entirely")
    bob.make_contact("+393331234501", name=f"before {text} after")
    ids, total = found(alice, text)
    assert ids == {holder} and total == 1
    ids, total = found(alice, f"e {text} a")  # long enough for the index whatever text is
    assert ids == {holder} and total == 1


@pytest.mark.parametrize(
    ("text", "found_it"),
    [
        ("0039 333 1234", True),  # leading 00 means +
        ("+39 (333) 123-45.67", True),
        ("333-123", True),
        ("3331234567", True),
        ("12", False),  # fewer than 3 digits: a name search only
        ("0044 333", False),
        ("39333 x", False),  # not a phone number: the name does not hold it
    ],
)
def test_a_number_is_found_however_it_is_typed(alice: User, text: str, found_it: bool) -> None:
    contact = alice.make_contact("+393331234567", name="Maria")
    assert found(alice, text)[0] == ({contact} if found_it else set())


def test_short_texts_keep_working(alice: User) -> None:
    maria = alice.make_contact("+393331234567", name="Maria")
    bo = alice.make_contact("+14155552671", name="Bo")
    assert found(alice, "bo")[0] == {bo}
    assert found(alice, "ari")[0] == {maria}
    assert found(alice, "a")[0] == {maria}
    assert found(alice, "415")[0] == {bo}
    assert found(alice, "  ")[1] == 2  # only spaces: no search


def test_every_write_path_keeps_the_index_in_step(alice: User, bob: User, db: Database) -> None:
    def names(text: str) -> set[str]:
        response = alice.get("/api/contacts", params={"search": text})
        return {contact["name"] for contact in response.json()["data"]}

    # One contact: create, rename, new number, delete.
    contact_id = alice.make_contact("+393331230001", name="Quintilian")
    assert names("quintil") == {"Quintilian"}
    alice.post(f"/api/contacts/{contact_id}", data={"name": "Octavian"})
    assert names("quintil") == set() and names("OCTAV") == {"Octavian"}
    alice.post(f"/api/contacts/{contact_id}", data={"phone_number": "+14155550001"})
    assert names("3331230001") == set() and names("+1 415 555 0001") == {"Octavian"}
    alice.post(f"/api/contacts/{contact_id}", data={"has_opted_out": "1"})  # not indexed
    assert names("Octavian") == {"Octavian"}
    assert alice.delete(f"/api/contacts/{contact_id}").status_code == 204
    assert names("Octavian") == set()

    # An import: new contacts and renamed existing ones.
    alice.make_contact("+393331230002", name="Old name")
    report = alice.post(
        "/api/contacts/import",
        files={
            "file": (
                "c.csv",
                "phone_number,name\n+393331230002,Renamed Person\n+393331230003,Imported One\n",
                "text/csv",
            )
        },
    )
    assert report.status_code in (200, 201, 202), report.text
    assert names("Imported") == {"Imported One"}
    assert names("Old name") == set() and names("renamed") == {"Renamed Person"}

    # A bulk segment creating contacts (empty names: found by number).
    alice.make_segment(phone_numbers="+393331230004\n+393331230005")
    assert len(found(alice, "0039 333 123 000")[0]) == 4  # 0002 .. 0005

    # Another user's writes never show.
    bob.make_contact("+393331230006", name="Imported One")
    assert names("Imported") == {"Imported One"}
    assert found(alice, "3331230006")[0] == set()

    # After all of it, index and scan agree on every contact's name and number.
    with db.read() as session:
        rows = session.execute(
            Tenant(alice.id).select(contacts.c.id, contacts.c.name, contacts.c.phone_number)
        ).all()
    for row in rows:
        for text in (row.name, row.phone_number):
            if len(text) >= search.INDEXED_LENGTH:
                assert found(alice, text)[0] == scanned(db, alice, text), text


def test_a_statement_deleting_many_contacts_takes_them_out_of_the_index(
    alice: User, bob: User, db: Database
) -> None:
    alice.make_contact("+393331230001", name="Cascaded")
    bob_id = bob.make_contact("+393331230001", name="Cascaded")
    with db.write() as session:
        session.execute(Tenant(alice.id).delete(contacts))
    with db.read() as session:
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            # The FTS5 table answers for bob only: alice's rows left with her contacts.
            left = session.execute(
                select(search._index.c.rowid).where(
                    search._index.c.contact_search.match("cascaded")
                )
            ).scalars()
            assert list(left) == [bob_id]
    assert found(bob, "cascaded")[0] == {bob_id}


def test_segment_members_are_searched_with_the_same_rule(alice: User) -> None:
    ids = [
        alice.make_contact("+393331234501", name="Anna Verdi"),
        alice.make_contact("+393331234502", name="Anna Neri"),
        alice.make_contact("+14155552671", name="Anna Bianchi"),
        alice.make_contact("+393331234503", name="Paolo", has_opted_out=True),
    ]
    italian = alice.make_segment(filters_countries=["IT"])
    listed = alice.make_segment(contacts_ids=",".join(map(str, ids[1:])))
    path = f"/api/segments/{italian}/contacts"
    assert found(alice, "anna", path) == ({ids[0], ids[1]}, 2)
    assert found(alice, "0039 333 12345", path) == ({ids[0], ids[1]}, 2)
    assert found(alice, "Anna V", path) == ({ids[0]}, 1)
    assert found(alice, "ann", path) == ({ids[0], ids[1]}, 2)  # short: the scan
    assert found(alice, "paolo", path) == (set(), 0)  # opted out: not counted
    response = alice.get(path, params={"search": "paolo", "include_opted_out": "1"})
    assert response.json()["meta"]["total"] == 1
    listed_path = f"/api/segments/{listed}/contacts"
    assert found(alice, "Anna", listed_path) == ({ids[1], ids[2]}, 2)
    assert found(alice, "+1 415", listed_path) == ({ids[2]}, 1)


def test_a_member_search_pages_with_an_exact_total(alice: User) -> None:
    for i in range(12):
        alice.make_contact(f"+3933312345{i:02d}", name=f"Person {i:02d}")
    segment_id = alice.make_segment(filters_countries=["IT"])
    first: Any = alice.get(
        f"/api/segments/{segment_id}/contacts",
        params={"search": "person 0", "results_per_page": 10},
    ).json()
    assert first["meta"]["total"] == 10 and len(first["data"]) == 10
    assert first["links"]["next"] is None
