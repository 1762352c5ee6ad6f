"""Only `membership/counts.py` writes `segments.total_contacts`: checked on every statement
of every test.

A SQLAlchemy hook sees each statement just before the driver runs it. When it is an
UPDATE or INSERT of `segments` that sets `total_contacts`, the hook walks the Python
stack to the innermost frame inside the `segmenti` package: the module issuing the
statement. Unless that is the owner, the statement fails and the test fails at its
teardown, naming the module. Statements that tests issue themselves (a count corrupted
on purpose, for the recount to correct) run from no `segmenti` frame and pass.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

import segmenti
from segmenti.membership import counts

PACKAGE = str(Path(segmenti.__file__).resolve().parent)
OWNER = str(Path(counts.__file__).resolve())

# The SET list of an UPDATE, or the column list of an INSERT, on the segments table.
_WRITE_OF_SEGMENTS = re.compile(
    r'\s*(?:UPDATE\s+"?segments"?\s+SET\s+(?P<set>.*?)(?:\bWHERE\b|\bRETURNING\b|$)'
    r'|INSERT\s+INTO\s+"?segments"?\s*\((?P<columns>[^)]*)\))',
    re.IGNORECASE | re.DOTALL,
)
_TOTAL = re.compile(r"\btotal_contacts\b", re.IGNORECASE)

# (issuing module, statement) of every write of total_contacts outside the owner.
violations: list[tuple[str, str]] = []


def sets_total_contacts(statement: str) -> bool:
    match = _WRITE_OF_SEGMENTS.match(statement)
    if match is None:
        return False
    return _TOTAL.search(match.group("set") or match.group("columns") or "") is not None


def issuing_module() -> str | None:
    """The file of the innermost frame, on this thread's stack, inside `segmenti`."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(PACKAGE):
            return filename
        frame = frame.f_back  # type: ignore[assignment]
    return None


def check_statement(statement: str) -> None:
    if not sets_total_contacts(statement):
        return
    module = issuing_module()
    if module is not None and module != OWNER:
        violations.append((module, statement))
        raise AssertionError(f"{module} writes segments.total_contacts; only {OWNER} may")


@event.listens_for(Engine, "before_cursor_execute")
def _before_cursor_execute(
    _connection: Any, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
) -> None:
    check_statement(statement)


@pytest.fixture(autouse=True)
def only_counts_writes_total_contacts() -> Iterator[None]:
    violations.clear()
    yield
    found, violations[:] = list(violations), []
    assert not found, f"total_contacts written outside membership/counts.py: {found}"
