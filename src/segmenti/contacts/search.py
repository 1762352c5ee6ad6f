"""The `search` of contact lists: its one rule, and the SQL that answers it.

A contact matches when its name contains the text (case-insensitively), or, when the
text looks like a phone number, when its E.164 number contains the text's digits. The
text looks like a phone number when it holds only digits, spaces, dots, dashes and
brackets, with an optional leading `+`, and at least 3 digits; separators are dropped
and a leading `00` means `+` (`0039 347-1` looks for `+393471`). Surrounding spaces
are ignored.

Every list that takes `search` (the contacts list of the API and of the dashboard, a
segment's members) builds its predicate here. A text of 4 characters or more is
answered from the search index (db/search_index.py): FTS5 on SQLite, a pg_trgm GIN
index on PostgreSQL. A shorter one, which trigrams cannot serve, reads the user's
contacts as before. Both give the same contacts (tests/api/test_search.py compares them
on random data).

User text never becomes query syntax: it is bound, as one quoted FTS5 phrase (double
quotes doubled) or as a LIKE pattern with `%`, `_` and `\\` escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, Text, column, func, literal, or_, select, table
from sqlalchemy.orm import Session

from segmenti.db.search_index import owner_token
from segmenti.db.tables import contacts
from segmenti.db.tenant import Tenant
from segmenti.paging import Page

INDEXED_LENGTH = 4
"""The shortest text answered from the index; shorter ones scan, as before the index."""

_TRIGRAM = 3
_PHONE_LIKE = re.compile(r"\+?[0-9 .()\-]+")
_NOT_PHONE_DIGIT = re.compile(r"[^0-9+]")
_LIKE_SPECIAL = re.compile(r"([\\%_])")

_index = table("contact_search", column("rowid", Integer), column("contact_search", Text))


@dataclass(frozen=True)
class Search:
    """A parsed search: the text the name must contain, and the digits the phone number
    must contain when the text looks like a number (None otherwise)."""

    text: str
    phone: str | None

    @property
    def indexed(self) -> bool:
        """Whether the index can answer it: every needle is long enough for trigrams."""
        return len(self.text) >= INDEXED_LENGTH and (
            self.phone is None or len(self.phone) >= _TRIGRAM
        )


def parse(raw: str | None) -> Search | None:
    """The search of a `search` parameter; None when there is nothing to look for."""
    text = (raw or "").strip()
    if not text:
        return None
    return Search(text=text, phone=phone_digits(text))


def phone_digits(text: str) -> str | None:
    """What an E.164 number must contain for a text that looks like a phone number."""
    if not _PHONE_LIKE.fullmatch(text) or sum(c.isdigit() for c in text) < _TRIGRAM:
        return None
    digits = _NOT_PHONE_DIGIT.sub("", text)
    return "+" + digits[2:] if digits.startswith("00") else digits


def where(session: Session, search: Search, *, user_id: int) -> ColumnElement[bool]:
    """Contacts matching `search`, for a statement already scoped to `user_id`."""
    if not search.indexed:
        return scan_where(search)
    if _fts(session, search):
        return contacts.c.id.in_(select(_index.c.rowid).where(_match(search, user_id)))
    # PostgreSQL: the GIN index (user_id, name, phone_number) answers both sides; the
    # ILIKE is rechecked on each candidate row, so the result is the rule exactly.
    name = contacts.c.name.ilike(like_pattern(search.text), escape="\\")
    if search.phone is None:
        return name
    return or_(name, contacts.c.phone_number.like(like_pattern(search.phone), escape="\\"))


def count(session: Session, search: Search, *, user_id: int) -> int:
    """How many of the user's contacts match `search` (no other condition)."""
    if _fts(session, search):
        # The owner term scopes the FTS5 table to the user, and the triggers keep it
        # equal to the user's contacts: no need to visit them (half the time at 80k).
        query = select(func.count()).select_from(_index).where(_match(search, user_id))
    else:
        query = (
            select(func.count())
            .select_from(contacts)
            .where(Tenant(user_id).owns(contacts), where(session, search, user_id=user_id))
        )
    return int(session.execute(query).scalar_one())


def newest_ids(session: Session, search: Search, *, user_id: int, page: Page) -> list[int]:
    """The ids of one page of the user's contacts matching `search` (no other
    condition), newest first."""
    if _fts(session, search):
        # FTS5 walks its rowids backwards and stops at the page, where `id IN (...)`
        # would gather and sort every match first (80k of them: 2x the count's time).
        query = (
            select(_index.c.rowid)
            .where(_match(search, user_id))
            .order_by(_index.c.rowid.desc())
            .limit(page.size)
            .offset(page.offset)
        )
    else:
        query = (
            Tenant(user_id)
            .select(contacts.c.id)
            .where(where(session, search, user_id=user_id))
            .order_by(contacts.c.id.desc())
            .limit(page.size)
            .offset(page.offset)
        )
    return [int(contact_id) for contact_id in session.execute(query).scalars()]


def _fts(session: Session, search: Search) -> bool:
    return search.indexed and session.get_bind().dialect.name == "sqlite"


def _match(search: Search, user_id: int) -> ColumnElement[bool]:
    return _index.c.contact_search.match(fts_query(search, user_id))


def scan_where(search: Search) -> ColumnElement[bool]:
    """The same rule read from every contact of the user: texts under INDEXED_LENGTH,
    and the reference the index is tested against. `lower(name)` keeps PostgreSQL from
    reaching for the trigram index, which cannot serve a short text."""
    name = func.lower(contacts.c.name).like(
        func.lower(literal(like_pattern(search.text))), escape="\\"
    )
    if search.phone is None:
        return name
    return or_(name, contacts.c.phone_number.like(like_pattern(search.phone), escape="\\"))


def like_pattern(needle: str) -> str:
    """`%needle%` with LIKE's own characters taken literally (escape character `\\`)."""
    escaped = _LIKE_SPECIAL.sub(r"\\\1", needle)
    return f"%{escaped}%"


def fts_query(search: Search, user_id: int) -> str:
    """The FTS5 query: the user's owner term AND the text in the name (OR the digits in
    the number). Each needle is one quoted phrase: FTS5 reads nothing inside it as
    syntax but a doubled double quote."""
    text = f"name : {_phrase(search.text)}"
    if search.phone is not None:
        text = f"{text} OR phone_number : {_phrase(search.phone)}"
    return f"owner : {_phrase(owner_token(user_id))} AND ({text})"


def _phrase(needle: str) -> str:
    return '"' + needle.replace('"', '""') + '"'
