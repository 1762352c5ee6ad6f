"""`membership/counts.py` owns membership: for a watched segment it reports exactly the
contacts that entered and left it, on every write path; nothing else writes counts.

Each write is checked against the members read before and after it with a fresh query
(`members_where`): what the owner reports must be the difference, contact for contact.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from segmenti.contacts import csv_io, importer
from segmenti.db.engine import Database
from segmenti.db.tables import contacts, segments
from segmenti.membership import counts
from segmenti.membership.filters import ContactState
from segmenti.segments.members import members_where
from tests import count_writers
from tests.conftest import User
from tests.counting import stale_counts

PRO = {"filters_custom_parameter_key": ["plan"], "filters_custom_parameter_value": ["pro"]}
NOT_PRO = {**PRO, "filters_custom_parameter_condition": ["not_exact"]}
ITALY = {"filters_countries": ["IT"]}
IT_NUMBERS = [f"+39333000{n:04d}" for n in range(40)]
GB_NUMBERS = [f"+4474001{n:05d}" for n in range(40)]


@dataclass
class Recorder:
    """A watcher of `segment_ids` that keeps what it is told."""

    segment_ids: set[int] = field(default_factory=set)
    told: list[counts.Moves] = field(default_factory=list)

    def watched(
        self, session: Session, *, user_id: int, version: str | None = None
    ) -> Collection[int]:
        return self.segment_ids

    def moved(self, session: Session, moves: counts.Moves) -> None:
        self.told.append(moves)

    def take(self) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
        """(entered, left) per segment over everything told since the last take."""
        entered: dict[int, set[int]] = {}
        left: dict[int, set[int]] = {}
        for moves in self.told:
            for segment_id, ids in moves.entered.items():
                entered.setdefault(segment_id, set()).update(ids)
            for segment_id, ids in moves.left.items():
                left.setdefault(segment_id, set()).update(ids)
        self.told.clear()
        return entered, left


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with counts.watching(Recorder()) as watcher:
        yield watcher


def members(db: Database, user_id: int, segment_ids: Collection[int]) -> dict[int, set[int]]:
    """The counted members of each segment, by a fresh query."""
    found: dict[int, set[int]] = {}
    with db.read() as session:
        rows = session.execute(
            select(segments.c.id, segments.c.type, segments.c.settings).where(
                segments.c.user_id == user_id, segments.c.id.in_(sorted(segment_ids))
            )
        ).all()
        for row in rows:
            where = members_where(
                user_id=user_id, segment_id=row.id, type=row.type, settings=row.settings
            )
            found[row.id] = set(session.execute(select(contacts.c.id).where(where)).scalars())
    return found


@dataclass
class Moved:
    entered: dict[int, set[int]] = field(default_factory=dict)
    left: dict[int, set[int]] = field(default_factory=dict)


@contextmanager
def reports_exactly_the_moves(db: Database, user: User, recorder: Recorder) -> Iterator[Moved]:
    """Checks that what the owner reports during the block is exactly the difference
    between the watched segments' members before and after; yields what it reported."""
    before = members(db, user.id, recorder.segment_ids)
    recorder.take()
    moved = Moved()
    yield moved
    after = members(db, user.id, recorder.segment_ids)
    moved.entered, moved.left = recorder.take()
    expected_entered = {s: after[s] - before.get(s, set()) for s in after}
    expected_left = {s: before[s] - after.get(s, set()) for s in before}
    assert moved.entered == {s: ids for s, ids in expected_entered.items() if ids}
    assert moved.left == {s: ids for s, ids in expected_left.items() if ids}


def test_contact_writes_report_who_entered_and_left_watched_segments(
    alice: User, db: Database, recorder: Recorder
) -> None:
    kept = alice.make_contact(IT_NUMBERS[0], custom_parameters={"plan": "pro"})
    listed = alice.make_contact(GB_NUMBERS[0], custom_parameters={"plan": "free"})
    pro, italy = alice.make_segment(**PRO), alice.make_segment(**ITALY)
    custom = alice.make_segment(contacts_ids=f"{kept},{listed}")
    unwatched = alice.make_segment()
    recorder.segment_ids |= {pro, italy, custom}

    with reports_exactly_the_moves(db, alice, recorder) as moved:  # create
        created = alice.make_contact(IT_NUMBERS[1], custom_parameters={"plan": "Pro"})
    assert moved.entered == {pro: {created}, italy: {created}}
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # created opted out
        alice.make_contact(IT_NUMBERS[2], custom_parameters={"plan": "pro"}, has_opted_out=True)
    assert (moved.entered, moved.left) == ({}, {})
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # update: leaves pro
        alice.post(f"/api/contacts/{created}", json={"custom_parameters": {"plan": "free"}})
    assert moved.left == {pro: {created}}
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # a new number: leaves italy
        alice.post(f"/api/contacts/{created}", json={"phone_number": GB_NUMBERS[1]})
    assert moved.left == {italy: {created}}
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # opt-out: leaves all
        alice.post(f"/api/contacts/{kept}", json={"has_opted_out": True})
    assert moved.left == {pro: {kept}, italy: {kept}, custom: {kept}}
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # back in
        alice.post(f"/api/contacts/{kept}", json={"has_opted_out": False})
    assert moved.entered == {pro: {kept}, italy: {kept}, custom: {kept}}
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # delete
        assert alice.delete(f"/api/contacts/{kept}").status_code == 204
    assert moved.left == {pro: {kept}, italy: {kept}, custom: {kept}}
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # a name: no move
        alice.post(f"/api/contacts/{listed}", json={"name": "Listed"})
    assert (moved.entered, moved.left) == ({}, {})
    assert unwatched not in recorder.segment_ids
    assert stale_counts(db, alice.id) == {}


@pytest.mark.parametrize("recount_share", [0.0, 1e9], ids=["recount", "deltas"])
def test_an_import_batch_reports_who_entered_and_left_watched_segments(
    alice: User,
    db: Database,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    recount_share: float,
) -> None:
    """Every batch's report against the members after the batch before: the deltas and
    the recount ways of keeping the counts both say who moved."""
    monkeypatch.setattr(importer, "RECOUNT_SHARE", recount_share)
    existing = [
        alice.make_contact(number, custom_parameters={"plan": ("pro", "free")[n % 2]})
        for n, number in enumerate(IT_NUMBERS[:10])
    ]
    watched = {
        alice.make_segment(**PRO),
        alice.make_segment(**NOT_PRO),
        alice.make_segment(**ITALY),
        alice.make_segment(contacts_ids=",".join(map(str, existing[:6]))),
        alice.make_segment(phone_numbers="\n".join(IT_NUMBERS[4:12])),
    }
    alice.make_segment(filters_countries=["GB"])  # not watched
    recorder.segment_ids |= watched
    lines = ["phone_number,has_opted_out,plan"]
    lines += [f"{number},{n % 3 == 0:d},{('free', 'pro')[n % 2]}" for n, number in
              enumerate(IT_NUMBERS[:20])]  # fmt: skip
    lines += [f"{number},,pro" for number in GB_NUMBERS[:15]]
    text = "\n".join(lines) + "\n"
    reported: list[Moved] = []
    checks: list[Any] = []

    def next_check() -> None:
        check = reports_exactly_the_moves(db, alice, recorder)
        reported.append(check.__enter__())
        checks.append(check)

    def on_batch(_report: importer.ImportReport) -> None:
        checks[-1].__exit__(None, None, None)
        next_check()

    next_check()
    report = importer.import_contacts(
        db,
        user_id=alice.id,
        open_rows=lambda: csv_io.CsvReader(io.StringIO(text, newline="")),
        batch_size=6,
        on_batch=on_batch,
    )
    checks[-1].__exit__(None, None, None)
    assert report.batches == 6
    # Not a vacuous check: the batches moved contacts in and out.
    assert any(moved.entered for moved in reported)
    assert any(moved.left for moved in reported)
    assert stale_counts(db, alice.id) == {}


def test_a_bulk_segment_reports_the_contacts_it_creates(
    alice: User, db: Database, recorder: Recorder
) -> None:
    known = alice.make_contact(IT_NUMBERS[0], custom_parameters={"plan": "pro"})
    italy, not_pro, pro = (alice.make_segment(**spec) for spec in (ITALY, NOT_PRO, PRO))
    recorder.segment_ids |= {italy, not_pro, pro}
    numbers = IT_NUMBERS[:5] + GB_NUMBERS[:3]
    with reports_exactly_the_moves(db, alice, recorder) as moved:
        bulk = alice.make_segment(phone_numbers="\n".join(numbers))
    created = set(alice.segment(bulk)["settings"]["contacts_ids"]) - {known}
    assert len(created) == 7
    country = {c: alice.get(f"/api/contacts/{c}").json()["data"]["country_code"] for c in created}
    italian = {c for c in created if country[c] == "IT"}
    assert moved.entered == {italy: italian, not_pro: created}
    assert moved.left == {}
    assert stale_counts(db, alice.id) == {}


def test_redefining_a_watched_segment_reports_the_difference(
    alice: User, db: Database, recorder: Recorder
) -> None:
    ids = [
        alice.make_contact(number, custom_parameters={"plan": ("pro", "free")[n % 2]})
        for n, number in enumerate(IT_NUMBERS[:6])
    ]
    alice.post(f"/api/contacts/{ids[1]}", json={"has_opted_out": True})
    custom = alice.make_segment(contacts_ids=f"{ids[0]},{ids[1]},{ids[2]}")
    pro = alice.make_segment(**PRO)
    recorder.segment_ids |= {custom, pro}
    with reports_exactly_the_moves(db, alice, recorder) as moved:
        alice.post(f"/api/segments/{custom}", json={"contacts_ids": f"{ids[2]},{ids[3]}"})
    assert (moved.entered, moved.left) == ({custom: {ids[3]}}, {custom: {ids[0]}})
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # filter -> filter
        alice.post(f"/api/segments/{pro}", json={**PRO, "filters_custom_parameter_value": ["free"]})
    assert moved.entered == {pro: {ids[3], ids[5]}}
    assert moved.left == {pro: {ids[0], ids[2], ids[4]}}
    with reports_exactly_the_moves(db, alice, recorder) as moved:  # custom -> filter
        alice.post(f"/api/segments/{custom}", json={"type": "filter", **ITALY})
    assert moved.entered == {custom: {ids[0], ids[4], ids[5]}}
    assert stale_counts(db, alice.id) == {}


def test_nothing_is_worked_out_for_segments_nobody_watches(alice: User, db: Database) -> None:
    pro = alice.make_segment(**PRO)
    joined = ContactState("IT", "EU", False, {"plan": ("pro", None)})
    with db.write() as session:
        version = counts.lock_tenant(session, user_id=alice.id, exclusive=False)
        moves = counts.contacts_written(
            session,
            user_id=alice.id,
            version=version,
            written=counts.ContactChanges([counts.Created([1, 2, 3], joined)]),
        )
        assert not moves
        with counts.watching(Recorder({pro})) as watcher:
            moves = counts.contacts_written(
                session,
                user_id=alice.id,
                version=version,
                written=counts.ContactChanges([counts.Change(4, None, joined)]),
            )
        session.rollback()
    assert moves.entered == {pro: frozenset({4})}
    assert watcher.told == [moves]


def test_a_write_of_total_contacts_from_another_module_fails(db: Database) -> None:
    """The statement hook (tests/count_writers.py) that every test runs under."""
    statement = (
        update(segments)
        .where(segments.c.user_id == 1, segments.c.id == -1)
        .values(total_contacts=0)
    )

    def write_from(filename: str) -> None:
        code = compile("session.execute(statement)", filename, "exec")
        with db.write() as session:
            # The code runs as if written in `filename`: the hook reads the stack.
            exec(code, {"session": session, "statement": statement})  # noqa: S102

    write_from(count_writers.OWNER)  # the owner may
    write_from(__file__)  # and so may a test, on purpose
    service = count_writers.PACKAGE + "/segments/service.py"
    with pytest.raises(AssertionError, match="segments/service.py writes"):
        write_from(service)
    assert [module for module, _ in count_writers.violations] == [service]
    count_writers.violations.clear()  # seen: not this test's failure
