"""Planner statistics after large writes: no statement is planned over tables whose
statistics a write has made wrong.

Right after an import into an empty PostgreSQL database, `contacts` and
`contact_parameters` have no statistics at all (autovacuum analyzes them some seconds
later, when it gets round to it). The planner then assumes a handful of rows, and a
filter count it plans in that window nests a loop over every contact inside a scan of
every parameter: issue 12 saw one run for 12 minutes, where the same query planned with
statistics is a hash join that takes milliseconds.

So every write transaction of `Database.write` and `write_attached` (imports, bulk
segments, anything that writes) is watched: an engine hook adds up the rows each
INSERT, UPDATE and DELETE reports (`cursor.rowcount`) per table in `WATCHED`, and once
the transaction has committed, outside its locks, `Statistics.after_commit` analyzes the
tables that changed by a large share. The gates, cheapest first:
  * fewer than MIN_ROWS rows written to a table: nothing at all, not even a query (every
    ordinary API write; a tenant's stream of small writes is autovacuum's business);
  * PostgreSQL: the rows written, or the table's `n_mod_since_analyze` if larger, over
    SHARE of the rows the last analyze counted (`pg_class.reltuples`; -1, never
    analyzed, counts as none), then `ANALYZE <table>`. Its cost does not grow with the
    table (a sample of 30,000 rows at the default statistics target), and the share
    makes the next analyze wait for as many more changes: analyzes are at most
    logarithmic in a table's growth, whoever writes;
  * SQLite: the same share over the rows the last analyze counted (`sqlite_stat1`),
    then `ANALYZE <table>` under `PRAGMA analysis_limit` (a few hundred rows sampled
    per index: milliseconds), in a write transaction of its own.
A failed analyze is logged, never raised: the write it follows is committed.

An import (`Statistics.importing`, contacts/importer.py) commits a batch at a time, and
at SHARE a table growing batch by batch was analyzed after nearly every batch (11 of 12
batches of a 100,000-row file, 13% of its time on PostgreSQL). While it runs, a table is
analyzed only when it has never been, or has grown past IMPORT_SHARE of its rows as
last analyzed (so every statement of the import, and every request beside it, is still
planned on statistics, at most a factor two off); when it ends, having written at least
MIN_ROWS rows, PostgreSQL's touched tables get `VACUUM (ANALYZE)`, outside any
transaction: exact statistics, and the visibility map that lets counts and look-ups
answer from the indexes alone (index-only scans) instead of visiting every new heap
page. SQLite has no visibility map: its import ends with the usual rule.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, TextClause, bindparam, event, text

log = logging.getLogger("segmenti")

# The tables whose statistics decide the plans of filter counts, member pages and
# look-ups by number (the others are small, or read by primary key only).
WATCHED = ("contacts", "contact_parameters", "segment_members")
# Rows written to a table below which nothing is checked.
MIN_ROWS = 1_000
# Share of a table's rows (as last analyzed) that a write must change to analyze it.
SHARE = 0.2
# During an import: the share past which a table is analyzed between its batches.
IMPORT_SHARE = 1.0
# SQLite: rows sampled per index (PRAGMA analysis_limit; 0 would read them all).
SQLITE_ANALYSIS_LIMIT = 1_000

_written: ContextVar[Counter[str] | None] = ContextVar("segmenti_rows_written", default=None)


@dataclass
class _Import:
    """The rows an import in progress has committed, per watched table: in all, and
    since the table was last analyzed."""

    total: Counter[str] = field(default_factory=Counter)
    pending: Counter[str] = field(default_factory=Counter)


_imported: ContextVar[_Import | None] = ContextVar("segmenti_import", default=None)
# A DML statement sent as raw SQL (exec_driver_sql: BulkWriter on SQLite), and its table.
_RAW_WRITE = re.compile(
    r"\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+\"?(\w+)",
    re.IGNORECASE,
)


@contextmanager
def collecting() -> Iterator[Counter[str]]:
    """Counts the rows the block's statements write, per watched table."""
    counter: Counter[str] = Counter()
    token = _written.set(counter)
    try:
        yield counter
    finally:
        _written.reset(token)


def install(engine: Engine) -> None:
    """Counts the rows written by the engine's statements inside `collecting()`."""
    event.listen(engine, "after_cursor_execute", _count)


def _count(
    _conn: Any, cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool
) -> None:
    written = _written.get()
    if written is None:
        return
    table = _written_table(context, statement)
    if table in WATCHED:
        rows = cursor.rowcount
        if rows and rows > 0:
            written[table] += rows


def _written_table(context: Any, statement: str) -> str | None:
    compiled = getattr(context, "compiled", None)
    if compiled is not None and (context.isinsert or context.isupdate or context.isdelete):
        return getattr(getattr(compiled.statement, "table", None), "name", None)
    if compiled is None or isinstance(compiled.statement, TextClause):  # SQL as text
        match = _RAW_WRITE.match(statement)
        return match.group(1).lower() if match else None
    return None


def stale_tables(
    written: Mapping[str, int], known: Mapping[str, tuple[float, int]], *, share: float = SHARE
) -> list[str]:
    """The watched tables to analyze: `written` rows per table by the transaction,
    `known` (rows as last analyzed, < 0 for never; changes counted since) per table."""
    stale = []
    for table in WATCHED:
        rows = written.get(table, 0)
        if rows < MIN_ROWS:
            continue
        analyzed, changed_since = known.get(table, (-1.0, 0))
        if max(rows, changed_since) > share * max(analyzed, 0.0):
            stale.append(table)
    return stale


class Statistics:
    """Analyzes what a committed write changed by a large share (module doc)."""

    def __init__(self, engine: Engine, write_engine: Engine) -> None:
        self.engine = engine
        # SQLite: BEGIN IMMEDIATE, so the analyze waits for the lock like any writer.
        self.write_engine = write_engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        install(engine)

    def after_commit(self, written: Mapping[str, int]) -> list[str]:
        """Analyzes the watched tables that `written` (rows per table, committed) made
        stale; returns them. Never raises."""
        imported = _imported.get()
        share = SHARE
        if imported is not None:
            # An import's batches: the rows since each table was last analyzed count.
            imported.total.update(written)
            imported.pending.update(written)
            written, share = imported.pending, IMPORT_SHARE
        if not any(rows >= MIN_ROWS for rows in written.values()):
            return []
        try:
            known = self._known([t for t in WATCHED if t in written])
            stale = stale_tables(written, known, share=share)
            if stale:
                self._analyze(stale)
                if imported is not None:
                    for table in stale:
                        del imported.pending[table]
            return stale
        except Exception as exc:  # noqa: BLE001 - the write is committed; plans can wait
            log.warning("analyzing %s after a write failed: %s", sorted(written), exc)
            return []

    @contextmanager
    def importing(self) -> Iterator[None]:
        """An import's batches: analyzed between them at IMPORT_SHARE, and, on
        PostgreSQL, its tables vacuumed and analyzed once it ends (module doc), even
        when it stops part-way (the committed batches are there)."""
        imported = _Import()
        token = _imported.set(imported)
        try:
            yield
        finally:
            _imported.reset(token)
            self._after_import(imported)

    def _after_import(self, imported: _Import) -> list[str]:
        """PostgreSQL: `VACUUM (ANALYZE)` of the watched tables the import wrote at least
        MIN_ROWS rows to; SQLite: the usual rule for the rows written since each table
        was last analyzed. Returns the tables. Never raises."""
        if self.is_sqlite:
            return self.after_commit(imported.pending)
        tables = [table for table in WATCHED if imported.total[table] >= MIN_ROWS]
        if not tables:
            return []
        preparer = self.engine.dialect.identifier_preparer
        names = ", ".join(preparer.quote(table) for table in tables)
        try:
            # VACUUM cannot run inside a transaction block. A table at a time, each once
            # the WAL is flushed: in one command, the later tables' pages were left
            # out of the visibility map on a cluster with asynchronous commits.
            with self.engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                for table in tables:
                    _wait_for_wal_flush(connection)
                    connection.exec_driver_sql(f"VACUUM (ANALYZE) {preparer.quote(table)}")
        except Exception as exc:  # noqa: BLE001 - the import is committed
            log.warning("vacuuming %s after an import failed: %s", names, exc)
            return []
        log.info("vacuumed and analyzed %s after an import", names)
        return tables

    def _known(self, tables: list[str]) -> dict[str, tuple[float, int]]:
        if self.is_sqlite:
            return self._known_sqlite(tables)
        query = text(
            "SELECT c.relname, c.reltuples, coalesce(s.n_mod_since_analyze, 0)"
            " FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.oid = ANY(ARRAY("
            "SELECT to_regclass(t) FROM unnest(CAST(:tables AS text[])) AS t))"
        ).bindparams(bindparam("tables", tables))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            known = {name: (float(tuples), int(changed)) for name, tuples, changed in rows}
            distributed = _distributed(connection, tables)
            if distributed:
                for table, tuples in _shard_tuples(connection, distributed).items():
                    known[table] = (tuples, 0)
        return known

    def _known_sqlite(self, tables: list[str]) -> dict[str, tuple[float, int]]:
        with self.engine.connect() as connection:
            exists = connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).first()
            if exists is None:
                return {}
            # Each index's row: "<rows> <rows per distinct prefix> ..."; the table's rows.
            stats = connection.execute(
                text("SELECT tbl, max(CAST(stat AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl")
            ).all()
        return {name: (float(rows), 0) for name, rows in stats if name in tables}

    def _analyze(self, tables: list[str]) -> None:
        preparer = self.engine.dialect.identifier_preparer
        names = ", ".join(preparer.quote(table) for table in tables)
        if self.is_sqlite:
            with self.write_engine.begin() as connection:
                connection.exec_driver_sql(f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_LIMIT}")
                for table in tables:
                    connection.exec_driver_sql(f"ANALYZE {preparer.quote(table)}")
        else:
            with self.engine.begin() as connection:
                connection.exec_driver_sql(f"ANALYZE {names}")
        log.info("analyzed %s after a large write", names)


def _wait_for_wal_flush(connection: Any, *, timeout: float = 2.0) -> None:
    """Until the server has flushed the WAL written so far (at most `timeout` seconds).
    VACUUM marks a page all-visible only once its rows' inserts are known committed on
    disk: after a commit with `synchronous_commit = off` (development clusters; the
    WAL writer flushes within `wal_writer_delay`), a VACUUM run at once sets no bit of
    the visibility map at all. With synchronous commits the WAL is flushed already."""
    try:
        written = connection.exec_driver_sql("SELECT pg_current_wal_insert_lsn()").scalar()
        flushed = text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)")
        deadline = time.monotonic() + timeout
        while not connection.execute(flushed, {"lsn": written}).scalar():
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
    except Exception as exc:  # noqa: BLE001 - (a standby, a role without the functions)
        log.info("not waiting for the WAL flush before a vacuum: %s", exc)


# Citus: the coordinator's copy of a distributed table stays empty, and ANALYZE of it
# runs on every shard without changing its own pg_class row, so its reltuples would say
# "never analyzed" forever and every large write would analyze every shard again. The
# rows as last analyzed are the sum over the shards (a never-analyzed shard counts none),
# read from each worker's catalog in one command per worker (shards are named
# <table>_<shardid> there).
_SHARD_TUPLES = text(
    "SELECT result FROM run_command_on_workers($$"
    "SELECT coalesce(json_object_agg(name, tuples), '{}') FROM ("
    " SELECT CAST(s.logicalrelid AS regclass)::text AS name,"
    " sum(greatest(c.reltuples, 0)) AS tuples"
    " FROM pg_dist_shard s JOIN pg_class c"
    " ON c.relname = CAST(s.logicalrelid AS regclass)::text || '_' || s.shardid"
    " GROUP BY 1) AS shards$$) WHERE success"
)


def _distributed(connection: Any, tables: list[str]) -> list[str]:
    """The tables among `tables` that Citus distributes (none without Citus)."""
    exists = text("SELECT to_regclass('pg_catalog.pg_dist_partition')")
    if connection.execute(exists).scalar() is None:
        return []
    query = text(
        "SELECT CAST(logicalrelid AS regclass)::text FROM pg_dist_partition"
        " WHERE CAST(logicalrelid AS regclass)::text = ANY(CAST(:tables AS text[]))"
    ).bindparams(bindparam("tables", tables))
    return list(connection.execute(query).scalars())


def _shard_tuples(connection: Any, tables: list[str]) -> dict[str, float]:
    totals = dict.fromkeys(tables, 0.0)
    for result in connection.execute(_SHARD_TUPLES).scalars():
        for name, tuples in json.loads(result).items():
            if name in totals:
                totals[name] += float(tuples)
    return totals
