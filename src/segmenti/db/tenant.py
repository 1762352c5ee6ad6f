"""One tenant scope: statements on tenant tables are built through `Tenant(user_id)`.

Every table that holds a user's data carries `user_id` (`users` is the tenant itself:
its `id`). A statement on such a table must be constrained to one user: that is the
whole of the isolation between tenants, and what lets Citus route a statement to one
shard (docs/scaling-out.md). `Tenant` builds those constraints, so that code says
"this user's segments" once instead of typing `segments.c.user_id == user_id` by hand:

    tenant = Tenant(user_id)
    tenant.select(segments.c.name).where(segments.c.id == segment_id)
    tenant.update(segments).where(segments.c.id == segment_id).values(...)
    tenant.insert(contacts).values(phone_number=...)        # sets user_id

A statement that must cross tenants (an API key found by its hash, a job over every
user, migrations) runs inside `across_tenants("why")`, the one escape hatch; each use
is listed in docs/security.md, and a test keeps that list equal to the uses in the code.

In tests, `tenant_check.py` inspects every statement executed and fails one on a tenant
table that is not constrained to a user, unless it runs inside the escape hatch. In
production nothing is checked: the hatch only marks the code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    FromClause,
    Insert,
    Integer,
    Join,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.sql.selectable import Alias

from segmenti.db.tables import metadata, users


def _tenant_columns() -> dict[Table, str]:
    columns = {table: "user_id" for table in metadata.sorted_tables if "user_id" in table.c}
    columns[users] = "id"
    return columns


TENANT_COLUMN: dict[Table, str] = _tenant_columns()
"""Each tenant table and the column naming its user: `user_id`, and `users.id`."""


def tenant_table(from_clause: Any) -> Table | None:
    """The tenant table a FROM item reads (itself, or what it aliases), or None."""
    while isinstance(from_clause, Alias):
        from_clause = from_clause.element
    if isinstance(from_clause, Table) and from_clause in TENANT_COLUMN:
        return from_clause
    return None


def user_column(from_clause: FromClause) -> ColumnElement[Any]:
    """The column of a tenant table (or of an alias of one) naming its user."""
    table = tenant_table(from_clause)
    if table is None:
        raise ValueError(f"{from_clause} is not a tenant table")
    column: ColumnElement[Any] = from_clause.c[TENANT_COLUMN[table]]
    return column


@dataclass(frozen=True)
class Tenant:
    """Builds statements on tenant tables constrained to one user."""

    user_id: int

    def owns(self, from_clause: FromClause) -> ColumnElement[bool]:
        """`from_clause`'s rows of this user: `user_id = :user_id` (`id` for users)."""
        return user_column(from_clause) == self.user_id

    def select(self, *columns: Any) -> Select[Any]:
        """`select(*columns)`, constrained on every tenant table the columns come from.
        Tables joined in later are constrained by `join` or `scope`.

        The tables are read off the columns themselves, in order: the same FROM list as
        `scope` finds for a fresh select, without building its compile state (a tenth
        of a millisecond, on every contact write's several statements)."""
        froms: dict[int, FromClause] = {}
        for column in columns:
            for item in column._from_objects:
                if tenant_table(item) is not None:
                    froms.setdefault(id(item), item)
        statement = select(*columns)
        owned = [self.owns(table) for table in froms.values()]
        return statement.where(*owned) if owned else statement

    def scope(self, statement: Select[Any]) -> Select[Any]:
        """`statement` constrained on every tenant table of its FROM clause, joined
        tables included (a correlated table of an enclosing statement is constrained
        there, and harmlessly here too)."""
        owned = [self.owns(table) for table in _leaves(final_froms(statement))]
        return statement.where(*owned) if owned else statement

    def join(
        self,
        left: FromClause,
        right: FromClause,
        onclause: Any = None,
        *,
        isouter: bool = False,
    ) -> Join:
        """`left JOIN right ON onclause`, with right's user equated to left's (the
        tenant key is the leading column of every tenant table's keys). Without
        `onclause`, joined on the user alone (`users` to one of its tables)."""
        same_user = user_column(right) == user_column(_last_leaf(left))
        on = same_user if onclause is None else and_(onclause, same_user)
        return left.join(right, on, isouter=isouter)

    def update(self, table: Table) -> Update:
        return update(table).where(self.owns(table))

    def delete(self, table: Table) -> Delete:
        return delete(table).where(self.owns(table))

    def insert(self, table: Table) -> Insert:
        """An insert setting the row's user (rows given at execution may omit it)."""
        return insert(table).values({TENANT_COLUMN[table]: self.user_id})


def bound_tenant(name: str = "user_id") -> Tenant:
    """A `Tenant` whose user is the bind parameter `name`: for a statement built once
    (at import) and executed for many users, each execution binding its user; building
    a statement costs more than running it on the hottest paths (every contact write)."""
    return Tenant(bindparam(name, type_=Integer))  # type: ignore[arg-type]


def same_user(left: FromClause, right: FromClause) -> ColumnElement[bool]:
    """`left`'s user is `right`'s: the correlation of a subquery on another tenant table
    (work across tenants, whose outer statement is scoped to no one user)."""
    return user_column(left) == user_column(right)


def final_froms(statement: Select[Any]) -> Sequence[FromClause]:
    """`statement.get_final_froms()`, without compiling the statement to a string first
    (slow, and failing on constructs only a dialect renders, such as filters.py's)."""
    state = statement._compile_state_factory(statement, None)  # type: ignore[arg-type]
    froms: Sequence[FromClause] = state._get_display_froms()
    return froms


def _leaves(froms: Any) -> Iterator[FromClause]:
    for item in froms:
        if isinstance(item, Join):
            yield from _leaves((item.left, item.right))
        elif tenant_table(item) is not None:
            yield item


def _last_leaf(from_clause: FromClause) -> FromClause:
    """The right-most table of a chain of joins (what the next join meets)."""
    while isinstance(from_clause, Join):
        from_clause = from_clause.right
    return from_clause


_ACROSS_TENANTS: ContextVar[str | None] = ContextVar("segmenti_across_tenants", default=None)


@contextmanager
def across_tenants(reason: str) -> Iterator[None]:
    """The one escape hatch: statements run in this block may read or write any
    tenant's rows. `reason` says why this work cannot be one user's; every use is listed
    in docs/security.md ("Statements across tenants")."""
    if not reason.strip():
        raise ValueError("across_tenants needs a reason")
    token = _ACROSS_TENANTS.set(reason)
    try:
        yield
    finally:
        _ACROSS_TENANTS.reset(token)


def crossing_reason() -> str | None:
    """Why the running code may cross tenants (inside `across_tenants`), else None."""
    return _ACROSS_TENANTS.get()
