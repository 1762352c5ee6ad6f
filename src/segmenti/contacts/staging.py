"""Staged batches: an import's rows, prepared for set-based writing.

Writing a row costs a SQLite b-tree insert per table and per index, about 2 us each; the
Python work around it (binding every value of every row, looking numbers up one batch
at a time) used to cost as much again, on the same core. So the rows of a batch are
first *staged*: repeats of a number folded together, parameters case-folded and parsed
as numbers, custom parameters encoded as JSON, all written to a small SQLite file of
their own (no journal, no indexes). The importer then writes the whole batch into the
database with a handful of INSERT ... SELECT and UPDATE ... FROM statements that run
in SQLite's C code, without Python touching a row (`importer.py`).

Staging runs wherever the rows are read: in the import process for uploads and small
files, in the reader process for large files (`reader_process.py`), where it uses the
second core while the import process writes the previous batch.

The same tables exist in two places, described once here (`StageTables`):
  * on SQLite, in the batch's file, attached to the writing connection as `stage`,
    and the import's `batch_map` as a TEMP table;
  * on PostgreSQL, as temporary tables dropped at commit, filled from the batch's
    file with COPY.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import CreateTable

from segmenti.contacts.csv_io import BadRow, ContactRow, Row
from segmenti.membership import filters

STAGE_SCHEMA = "stage"
"""The name the batch file is attached under on SQLite."""

# SQL NULL (not JSON null) for "the file gives no custom parameters for this row".
_CustomJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


# What a staged row holds in value_<p> when it lacks key p.
ABSENT = ""
NAN = math.nan

# Keys that get columns of their own in stage_rows; further keys of a batch are staged
# one row per given value (stage_parameters). Columns are cheap to stage and write for
# keys most rows have, but a column costs every row, given or not: a file with hundreds
# of sparse columns would cost rows x keys.
WIDE_KEYS = 32


@dataclass(frozen=True)
class StageTables:
    """The staging tables of one batch as one dialect sees them.

    rows:       one per distinct number of the batch, `seq` in file order (of the last
                row with that number); NULL in name, has_opted_out or custom_parameters
                means the file does not give that field. Then the parameters of the
                batch's first 32 keys: the key at position p has the columns value_<p>
                and number_<p> (what contact_parameters' value_folded and value_number
                will hold). A given value is never empty, so an empty value_<p> means
                the row lacks key p (ABSENT). Wide, not one row per parameter: staging
                a row costs far more than staging a column.
    keys:       the batch's parameter keys, by position.
    parameters: the values of keys past the first 32, one row per given value: seq,
                the key's position, value_folded, value_number.
    batch_map:  written by the importer: which contact each row is (existing or new).
    """

    rows: Table
    keys: Table
    parameters: Table
    batch_map: Table
    key_names: tuple[str, ...]

    def wide(self) -> Iterator[tuple[str, Column[Any], Column[Any]]]:
        """(key, its value column, its number column) of the keys with columns."""
        for position, key in enumerate(self.key_names[:WIDE_KEYS]):
            yield key, self.rows.c[f"value_{position}"], self.rows.c[f"number_{position}"]

    @property
    def narrow(self) -> bool:
        """Whether some keys are staged in `parameters`."""
        return len(self.key_names) > WIDE_KEYS


def stage_tables(dialect_name: str, keys: Sequence[str] = ()) -> StageTables:
    metadata = MetaData()
    if dialect_name == "sqlite":
        stage: dict[str, Any] = {"schema": STAGE_SCHEMA}
        scratch: dict[str, Any] = {"schema": "temp"}
    else:
        stage = scratch = {"prefixes": ["TEMPORARY"], "postgresql_on_commit": "DROP"}
    wide = [
        column
        for position in range(min(len(keys), WIDE_KEYS))
        for column in (Column(f"value_{position}", Text), Column(f"number_{position}", Float))
    ]
    rows = Table(
        "stage_rows",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("phone_number", String(32), nullable=False),
        Column("name", String(256)),
        Column("has_opted_out", Boolean),
        Column("custom_parameters", _CustomJson),
        Column("country_code", String(2)),
        Column("continent_code", String(2)),
        *wide,
        **stage,
    )
    key_table = Table(
        "stage_keys",
        metadata,
        Column("position", Integer, primary_key=True, autoincrement=False),
        Column("key", String(64), nullable=False),
        **stage,
    )
    parameters = Table(
        "stage_parameters",
        metadata,
        Column("seq", Integer, nullable=False),
        Column("position", Integer, nullable=False),
        Column("value_folded", Text, nullable=False),
        Column("value_number", Float),
        **stage,
    )
    batch_map = Table(
        "batch_map",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=False),
        # The contact's id: found by number, or given to a new contact.
        Column("id", Integer),
        Column("is_new", Boolean, nullable=False),
        **scratch,
    )
    return StageTables(rows, key_table, parameters, batch_map, tuple(keys))


_SQLITE = sqlite.dialect()


def _sql(statement: Any) -> str:
    """A statement as SQLite text with positional (qmark) parameters in column order."""
    return str(statement.compile(dialect=_SQLITE))


@dataclass
class StagedBatch:
    """One batch, staged. `path` is None when the batch holds only invalid rows."""

    path: Path | None
    rows: int
    last_line: int
    invalid: list[BadRow] = field(default_factory=list)
    # Bytes of the file read when the batch was staged (for progress), if known.
    position: int = 0


def stage_batches(
    rows: Iterable[Row],
    directory: Path,
    *,
    batch_size: int,
    first_size: int | None = None,
    position: Callable[[], int] | None = None,
) -> Iterator[StagedBatch]:
    """Stages `rows` into files under `directory`, `batch_size` valid rows a batch. With
    `first_size`, the first batch has that many and each next one a quarter more, up
    to `batch_size` (a writer in another process starts sooner, and the stager keeps
    ahead of it while they grow). Bad rows travel with the batch they were read in. A
    file belongs to the consumer once yielded (it deletes it); only one batch's rows
    are in memory at a time."""
    size = batch_size if first_size is None else max(1, min(first_size, batch_size))
    pending: dict[str, ContactRow] = {}
    invalid: list[BadRow] = []
    count = 0
    last_line = 0
    number = 0

    def staged() -> StagedBatch:
        nonlocal number
        path = None
        if pending:
            number += 1
            path = directory / f"batch-{number:06d}.db"
            write_stage(path, pending.values())
        return StagedBatch(path, count, last_line, invalid, position() if position else 0)

    for row in rows:
        last_line = row.line
        if isinstance(row, BadRow):
            invalid.append(row)
            continue
        count += 1
        e164 = row.phone.e164
        earlier = pending.pop(e164, None)
        # Re-inserted, so the dict keeps the numbers in the order of their last row.
        pending[e164] = row if earlier is None else _later(earlier, row)
        if count >= size:
            yield staged()
            pending, invalid, count = {}, [], 0
            size = min(batch_size, size + size // 4 + 1)
    if count or invalid:
        yield staged()


def _later(earlier: ContactRow, row: ContactRow) -> ContactRow:
    """Row `row` applied after `earlier` to the same number: the given fields win."""
    return ContactRow(
        row.line,
        row.phone,
        earlier.name if row.name is None else row.name,
        earlier.has_opted_out if row.has_opted_out is None else row.has_opted_out,
        earlier.custom_parameters if row.custom_parameters is None else row.custom_parameters,
    )


def write_stage(path: Path, contacts: Collection[ContactRow]) -> None:
    """Writes one batch's file. It is scratch data, read once: no journal, no sync."""
    positions: dict[str, int] = {}
    for row in contacts:
        if row.custom_parameters:
            for key in row.custom_parameters:
                if key not in positions:
                    positions[key] = len(positions)
    tables = stage_tables("sqlite", list(positions))
    # Where each wide key's (value, number) pair goes in a row's list of cells.
    cell_of = {key: 2 * position for key, position in positions.items() if position < WIDE_KEYS}
    # Absent: an empty value (a given value is never empty) and NaN for the number,
    # which SQLite stores as NULL. Not None: sqlite3 binds None far slower than a
    # string or a float (it looks for an adapter first), and most cells are absent.
    no_cells: list[Any] = [ABSENT, NAN] * len(cell_of)
    rows: list[tuple[Any, ...]] = []
    narrow: list[tuple[Any, ...]] = []
    # value -> (folded, number): parameter values repeat a lot (plans, cities, ages).
    derived: dict[str, tuple[str, float]] = {}
    fold, parse_number = filters.fold, filters.parse_number
    for seq, row in enumerate(contacts):
        custom = row.custom_parameters
        cells = no_cells
        if custom:
            cells = no_cells.copy()
            for key, value in custom.items():
                known = derived.get(value)
                if known is None:
                    number = parse_number(value)
                    known = derived[value] = (fold(value), NAN if number is None else number)
                at = cell_of.get(key)
                if at is None:
                    narrow.append((seq, positions[key], *known))
                else:
                    cells[at] = known[0]
                    cells[at + 1] = known[1]
        phone = row.phone
        rows.append(
            (
                seq,
                phone.e164,
                row.name,
                row.has_opted_out,
                # Compact JSON text; SQLAlchemy's JSON type reads it like its own.
                None if custom is None else orjson.dumps(custom).decode(),
                phone.country_code,
                phone.continent_code,
                *cells,
            )
        )
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        connection.execute("ATTACH DATABASE ? AS " + STAGE_SCHEMA, (str(path),))
        connection.execute(f"PRAGMA {STAGE_SCHEMA}.journal_mode = OFF")
        connection.execute(f"PRAGMA {STAGE_SCHEMA}.synchronous = OFF")
        connection.execute("BEGIN")
        written = [
            (tables.rows, rows),
            (tables.keys, list(enumerate(positions))),
            (tables.parameters, narrow),
        ]
        for table, table_rows in written:
            connection.execute(_sql(CreateTable(table)))
            connection.executemany(_sql(insert(table)), table_rows)
        connection.execute("COMMIT")
    finally:
        connection.close()


def read_stage(path: Path, table: Table) -> Iterator[tuple[Any, ...]]:
    """The rows of one staged table (given as PostgreSQL's: no schema), in its column
    order, for COPY. The file is opened as the main database."""
    connection = sqlite3.connect(path)
    try:
        yield from connection.execute(_sql(select(table)))
    finally:
        connection.close()
