"""No module but `membership/counts.py` writes `segments.total_contacts`, read from the
source (the statement hook in tests/count_writers.py checks the running code)."""

from __future__ import annotations

import ast
from pathlib import Path

import segmenti
from segmenti.membership import counts
from tests.count_writers import sets_total_contacts

PACKAGE = Path(segmenti.__file__).resolve().parent
OWNER = Path(counts.__file__).resolve()
_VALUES = frozenset({"values", "ordered_values"})


def _names_total(node: ast.expr | None) -> bool:
    """`"total_contacts"` or `<table>.c.total_contacts`."""
    if isinstance(node, ast.Constant):
        return node.value == "total_contacts"
    return isinstance(node, ast.Attribute) and node.attr == "total_contacts"


def writes_of_total_contacts(source: str) -> list[int]:
    """Lines that set total_contacts: in a SQLAlchemy `.values(...)` (as a keyword, a
    dict key or a `**` dict), or in SQL text that updates or inserts into segments."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if sets_total_contacts(node.value):
                lines.append(node.lineno)
            continue
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _VALUES
        ):
            continue
        given = [keyword.value for keyword in node.keywords if keyword.arg is None]
        given += node.args
        if any(keyword.arg == "total_contacts" for keyword in node.keywords) or any(
            isinstance(value, ast.Dict) and any(_names_total(key) for key in value.keys)
            for value in given
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_owner_writes_total_contacts_in_the_source() -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.resolve() != OWNER
        and (lines := writes_of_total_contacts(path.read_text(encoding="utf-8")))
    }
    assert found == {}
    # The scan does see the owner's writes.
    assert writes_of_total_contacts(OWNER.read_text(encoding="utf-8"))


def test_the_scan_recognizes_each_way_of_writing_the_column() -> None:
    ways = [
        "update(segments).values(total_contacts=3)",
        "insert(segments).values({segments.c.total_contacts: 0})",
        'segments.update().values(**{"total_contacts": total})',
        'text("UPDATE segments SET name = :n, total_contacts = 0 WHERE id = :id")',
        'text("INSERT INTO segments (user_id, total_contacts) VALUES (1, 0)")',
    ]
    assert [writes_of_total_contacts(way) for way in ways] == [[1]] * len(ways)
    reads = [
        "select(segments.c.total_contacts)",
        '{"total_contacts": row.total_contacts}',
        'text("UPDATE segments SET name = :n WHERE total_contacts > 0")',
        "update(segment_members).values(contact_id=1)",
    ]
    assert [writes_of_total_contacts(read) for read in reads] == [[]] * len(reads)
