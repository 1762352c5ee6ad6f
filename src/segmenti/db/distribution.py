"""Where each table lives on Citus, and `segmenti db distribute`, which puts it there.

On Citus (the PostgreSQL extension that shards tables across worker nodes) a table is
distributed (its rows spread over shards by one column), a reference table (a copy on
every node) or local (on the coordinator only). `RULES` says which for every table of
the schema; `tests/db/test_distribution.py` fails when a table of `tables.metadata` has
no rule, so a new table cannot be forgotten. The rule for new tables: a tenant table
(one with `user_id`) is distributed by `user_id`, co-located with `users`, unless it is
read across users (then it is a reference table, like `api_keys`).

Co-location puts a user's row, contacts, parameters, segments and memberships in the
same shard group, so every statement the application sends (each constrained to one
`user_id` by `Tenant`, db/tenant.py) runs on one node, and the composite foreign keys
hold inside a shard. docs/scaling-out.md explains the choices and what remains.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import URL, Connection, create_engine, text

from segmenti import errors
from segmenti.db import parameter_cascade
from segmenti.db.tables import metadata
from segmenti.db.tenant import across_tenants


class Placement(Enum):
    DISTRIBUTED = "distributed"
    REFERENCE = "reference"
    LOCAL = "local"


@dataclass(frozen=True)
class Rule:
    placement: Placement
    why: str
    # The distribution column of a distributed table.
    column: str | None = None
    # Foreign keys Citus cannot keep (a reference table may not refer to a distributed
    # one): dropped before the table is placed.
    drop_foreign_keys: tuple[str, ...] = ()


def _by_user(why: str) -> Rule:
    return Rule(Placement.DISTRIBUTED, why, column="user_id")


# The anchor of the co-location group: every distributed table is co-located with it.
ANCHOR = "users"

RULES: dict[str, Rule] = {
    "users": Rule(
        Placement.DISTRIBUTED,
        "the tenant itself; holds the per-user lock and segments_version, which every "
        "write of the user reads or changes, so it lives on the user's node",
        column="id",
    ),
    "contacts": _by_user("a user's contacts"),
    "contact_parameters": _by_user("the parameter index filters read"),
    "segments": _by_user("a user's segments and their counts"),
    "segment_members": _by_user("members of list segments"),
    "idempotency_keys": _by_user("stored results of a user's creates"),
    "dashboard_sessions": _by_user("looked up by the cookie's user id and token hash"),
    "events": _by_user("a user's membership events, read by the user and its deliveries"),
    "webhooks": _by_user("a user's webhooks; the deliverer's scan joins them to events by user"),
    "webhook_deliveries": _by_user(
        "a webhook's batches; the deliverer reads due ones across users (a multi-shard "
        "read) and claims each by its user"
    ),
    "webhook_attempts": _by_user("each delivery attempt, written beside its delivery"),
    "snapshots": _by_user("a user's frozen segments"),
    "snapshot_members": _by_user("the frozen members, copied from the user's own rows"),
    "segment_history": _by_user("a segment's day-by-day counts"),
    "api_keys": Rule(
        Placement.REFERENCE,
        "looked up by key hash, across users, on every request: a copy on every node",
        # Citus refuses a foreign key from a reference table to a distributed one.
        drop_foreign_keys=("fk_api_keys_user_id_users",),
    ),
}
"""Every table of the schema and where it lives on Citus."""

NOT_IN_METADATA: dict[str, Rule] = {
    "alembic_version": Rule(
        Placement.LOCAL, "the schema's revision, read and written where migrations run"
    ),
}
"""Tables the database holds that tables.py does not describe."""


class CannotDistribute(errors.SegmentiError):
    status = 409
    title = "Cannot distribute"


@dataclass(frozen=True)
class Step:
    table: str
    rule: Rule
    done: bool  # already placed as its rule says


def _order() -> list[str]:
    """The anchor first, then every table in foreign key order (a table is distributed
    after the tables it refers to)."""
    names = [table.name for table in metadata.sorted_tables]
    return [ANCHOR, *(name for name in names if name != ANCHOR)]


def check_citus(connection: Connection) -> None:
    """Refuses, with the reason, a database that is not a Citus coordinator with at least
    one active worker."""
    if connection.dialect.name != "postgresql":
        raise CannotDistribute(
            f"the database is {connection.dialect.name}: distributing needs PostgreSQL "
            "with the citus extension (docs/scaling-out.md)"
        )
    installed = connection.execute(
        text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
    ).scalar()
    if not installed:
        available = connection.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'citus'")
        ).scalar()
        hint = (
            "load it (shared_preload_libraries), run CREATE EXTENSION citus in this"
            " database and add the workers (docs/scaling-out.md)"
            if available
            else "Citus is not installed on this server (docs/scaling-out.md)"
        )
        raise CannotDistribute(f"the citus extension is not in this database: {hint}")
    workers = connection.execute(
        text(
            "SELECT count(*) FROM pg_dist_node "
            "WHERE isactive AND noderole = 'primary' AND groupid <> 0"
        )
    ).scalar_one()
    if not workers:
        raise CannotDistribute(
            "no active worker node in this database: add one with "
            "SELECT citus_add_node('worker-host', 5432)"
        )


def plan(connection: Connection) -> list[Step]:
    """What each table needs, in the order to do it. Refuses a table placed otherwise
    than its rule says (moving it is a decision for a person, not this command)."""
    placed = {
        row.table_name: row
        for row in connection.execute(
            text(
                "SELECT table_name::text AS table_name, citus_table_type, distribution_column,"
                " colocation_id FROM citus_tables"
            )
        )
    }
    anchor = placed.get(ANCHOR)
    steps = []
    for name in _order():
        rule = RULES[name]
        row = placed.get(name)
        if row is None:
            steps.append(Step(name, rule, done=False))
            continue
        expected = {
            Placement.DISTRIBUTED: ("distributed", rule.column),
            Placement.REFERENCE: ("reference", "<none>"),
        }.get(rule.placement)
        colocated = rule.placement is not Placement.DISTRIBUTED or (
            anchor is not None and row.colocation_id == anchor.colocation_id
        )
        if (row.citus_table_type, row.distribution_column) != expected or not colocated:
            raise CannotDistribute(
                f"table {name} is already a {row.citus_table_type} table "
                f"(column {row.distribution_column}, co-location {row.colocation_id}), "
                f"but its rule is {rule.placement.value}"
                + (f" by {rule.column} with {ANCHOR}" if rule.column else "")
                + ": undistribute it (undistribute_table) and run this again"
            )
        steps.append(Step(name, rule, done=True))
    return steps


def _place(connection: Connection, step: Step) -> None:
    name, rule = step.table, step.rule
    if rule.placement is Placement.DISTRIBUTED:
        colocate = "none" if name == ANCHOR else ANCHOR
        connection.execute(
            text(
                "SELECT create_distributed_table(CAST(:table AS regclass), :column,"
                " colocate_with => :colocate)"
            ),
            {"table": name, "column": rule.column, "colocate": colocate},
        )
    elif rule.placement is Placement.REFERENCE:
        connection.execute(
            text("SELECT create_reference_table(CAST(:table AS regclass))"), {"table": name}
        )


def distribute(connection: Connection) -> list[Step]:
    """Places every table as its rule says, in `connection`'s transaction; returns the
    steps, with `done` set on those that were already in place (a second run does
    nothing). Rows the tables held are copied to the shards, then removed from the
    coordinator's local tables (Citus keeps them there, invisible, until told; it can
    only be told once no local table refers to them, so after every table is placed)."""
    check_citus(connection)
    steps = plan(connection)
    to_place = [s for s in steps if not s.done and s.rule.placement is not Placement.LOCAL]
    with across_tenants("distributing copies every tenant's rows to the shards"):
        for step in to_place:
            for constraint in step.rule.drop_foreign_keys:
                # Names from RULES and tables.py, never from user input.
                connection.execute(
                    text(f'ALTER TABLE "{step.table}" DROP CONSTRAINT IF EXISTS "{constraint}"')
                )
        if to_place and connection.execute(text(parameter_cascade.HAS_TRIGGER)).scalar():
            # Migrated as plain PostgreSQL: Citus refuses the trigger on a distributed
            # table and checks the co-located foreign key inside a shard.
            for statement in parameter_cascade.TO_FOREIGN_KEY:
                connection.execute(text(statement))
        with_rows = [
            step.table
            for step in to_place
            if connection.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{step.table}")')).scalar()  # noqa: S608
        ]
        for step in to_place:
            _place(connection, step)
        for name in with_rows:
            connection.execute(
                text("SELECT truncate_local_data_after_distributing_table(CAST(:t AS regclass))"),
                {"t": name},
            )
    return steps


@contextmanager
def migrations_mode(connection: Connection) -> Iterator[None]:
    """On Citus, runs the migrations in sequential mode: one connection per worker, so
    that DDL on a distributed table (run over a connection per shard in parallel mode)
    followed by a new table with a foreign key to it, in the same transaction, does not
    deadlock with itself. A session setting, not a transaction's: a migration may commit
    early (to build an index CONCURRENTLY) and the next transaction keeps the mode. The
    connection is committed before (Alembic begins its own transaction) and the setting
    reset after, so the pooled connection goes back as it was."""
    citus = has_citus(connection)
    if citus:
        connection.execute(text("SET citus.multi_shard_modify_mode TO 'sequential'"))
    connection.commit()
    try:
        yield
    finally:
        if citus:
            connection.rollback()
            connection.execute(text("RESET citus.multi_shard_modify_mode"))
            connection.commit()


def has_citus(connection: Connection) -> bool:
    """Whether the database is a Citus one (the extension is installed)."""
    if connection.dialect.name != "postgresql":
        return False
    query = text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
    return bool(connection.execute(query).scalar())


def after_migrations(connection: Connection) -> None:
    """On a database already distributed, places the tables a migration just created,
    so that an upgrade cannot leave a new tenant table on the coordinator alone. Does
    nothing anywhere else (SQLite, plain PostgreSQL, a Citus database not distributed
    yet: that is `segmenti db distribute`'s decision)."""
    if not has_citus(connection):
        return
    anchor = text("SELECT EXISTS (SELECT 1 FROM citus_tables WHERE table_name::text = :name)")
    if connection.execute(anchor, {"name": ANCHOR}).scalar():
        distribute(connection)


def create_database(server: URL, name: str) -> URL:
    """A new database `name` on the Citus cluster whose coordinator `server` names (a URL
    of a database where the workers are added): made on the coordinator and on every
    worker, with the extension in each, and the workers added to it (Citus keeps its
    node list per database). Returns its URL. Tests and benchmarks use it; an operator
    does the same by hand (docs/scaling-out.md). The name is the caller's own, never
    user input."""
    nodes = _nodes(server)
    url = server.set(database=name)
    for node in nodes:  # workers first: adding one needs its database
        _run(server.set(host=node.nodename, port=node.nodeport), f'CREATE DATABASE "{name}"')
        _run(
            url.set(host=node.nodename, port=node.nodeport), "CREATE EXTENSION IF NOT EXISTS citus"
        )
    with _autocommit(url) as connection:
        for node in sorted(nodes, key=lambda node: node.groupid):
            # The coordinator in the node list gives reference tables a copy there.
            function = "citus_set_coordinator_host" if node.groupid == 0 else "citus_add_node"
            connection.execute(
                text(f"SELECT {function}(:host, :port)"),
                {"host": node.nodename, "port": node.nodeport},
            )
    return url


def drop_database(server: URL, name: str) -> None:
    """Drops what `create_database` made, on the workers and the coordinator."""
    for node in _nodes(server):
        host = server.set(host=node.nodename, port=node.nodeport)
        _run(host, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _nodes(server: URL) -> list[Any]:
    """The active primary nodes of `server`'s database, the coordinator last (when it is
    in the list; else `server` itself stands for it)."""
    with _autocommit(server) as connection:
        nodes: list[Any] = list(
            connection.execute(
                text(
                    "SELECT nodename, nodeport, groupid FROM pg_dist_node"
                    " WHERE isactive AND noderole = 'primary' ORDER BY groupid = 0, nodeid"
                )
            )
        )
    if not any(node.groupid == 0 for node in nodes):
        nodes.append(_Node(server.host or "localhost", server.port or 5432, 0))
    return nodes


@dataclass(frozen=True)
class _Node:
    nodename: str
    nodeport: int
    groupid: int


@contextmanager
def _autocommit(url: URL) -> Iterator[Connection]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _run(url: URL, sql: str) -> None:
    with _autocommit(url) as connection:
        connection.execute(text(sql))
