"""The test-time check that every statement on a tenant table is scoped to one user.

`install()` (called by tests/conftest.py) listens on SQLAlchemy's `Engine` class, so it
sees every statement of every engine made in the process, the app's included. Outside
`tenant.across_tenants(...)`, a statement that fails the rules below raises
`UnscopedStatement` before it reaches the database, and is also recorded in
`violations`, so that a test fails even when the code under test swallowed the error.

The rules, for statements built with SQLAlchemy (the tree is read, not the SQL text):
  * SELECT, UPDATE, DELETE: every tenant table of the statement (or alias of one), in
    every sub-select, EXISTS, derived table and CTE, is constrained in its own scope: a
    top-level conjunct of its WHERE (or of the ON of its join) is `t.user_id = <bound
    value>`, or `t.user_id = u.user_id` where u is constrained (in the same scope, or in
    an enclosing one for a correlated sub-select). A conjunct under OR or NOT constrains
    nothing; a constraint inside a sub-select never constrains the enclosing statement.
    `users` is the tenant itself: its `id` plays the part of `user_id`.
  * INSERT: sets `user_id` (in its values, or in every parameter set given at execution,
    or among the columns of INSERT ... SELECT, whose SELECT is checked as above).
  * Raw SQL (`text()`, `exec_driver_sql`) cannot be read as a tree: a data statement
    (SELECT, INSERT, UPDATE, DELETE, WITH, REPLACE, MERGE, COPY, TRUNCATE) that names a
    tenant table (outside string literals) must mention `user_id` (`id` for users).
    DDL (CREATE, ALTER, DROP) and the rest (PRAGMA, ANALYZE, BEGIN, SET) are not
    checked.
Statements sent on the DBAPI connection itself (the SQLite pragmas of db/engine.py,
ATTACH/DETACH, COPY into an import's temporary stage tables) bypass SQLAlchemy and are
not seen; none of them touches a tenant table.

A statement's verdict depends only on its shape, so it is cached by SQLAlchemy's own
cache key (which leaves bound values out).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Delete,
    Engine,
    Insert,
    Join,
    Select,
    TextClause,
    Update,
    event,
)
from sqlalchemy.sql import operators
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList, ClauseElement, Grouping
from sqlalchemy.sql.selectable import FromClause, SelectBase

from segmenti.db.tenant import TENANT_COLUMN, crossing_reason, final_froms, tenant_table


class UnscopedStatement(AssertionError):
    """A statement on a tenant table that is not constrained to one user."""


violations: list[str] = []
"""Every statement refused since the list was last cleared (tests/conftest.py)."""

_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_TENANT_NAMES = re.compile(
    r"\b(" + "|".join(sorted(table.name for table in TENANT_COLUMN)) + r")\b", re.IGNORECASE
)
# Raw statements that read or write rows (not PRAGMA, ANALYZE, BEGIN, DDL, ...).
_DATA_STATEMENT = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE|MERGE|COPY|TRUNCATE)\b", re.IGNORECASE
)
_COLUMN_BY_NAME = {table.name: column for table, column in TENANT_COLUMN.items()}
_verdicts: dict[Any, tuple[str, ...]] = {}
_MAX_CACHED = 20_000


def install() -> None:
    """Checks every statement of every engine from now on (idempotent)."""
    if not event.contains(Engine, "before_execute", _before_execute):
        event.listen(Engine, "before_execute", _before_execute)
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute)


def _before_execute(
    connection: Any, statement: Any, multiparams: Any, params: Any, _options: Any
) -> None:
    if crossing_reason() is None:
        _refuse(connection, statement, problems(statement, multiparams or [params]))


def _before_cursor_execute(
    connection: Any, _cursor: Any, sql: str, _parameters: Any, context: Any, _many: bool
) -> None:
    # Only SQL sent by exec_driver_sql: everything else was seen by before_execute.
    if context is not None and context.compiled is None and crossing_reason() is None:
        _refuse(connection, sql, _raw_problems(sql))


def _refuse(connection: Any, statement: Any, found: Sequence[str]) -> None:
    if found:
        if isinstance(statement, ClauseElement):
            statement = statement.compile(dialect=connection.dialect)
        message = "; ".join(found) + f"\n  at: {_caller()}\n  in: {str(statement)[:2000]}"
        violations.append(message)
        raise UnscopedStatement(message)


def _caller() -> str:
    """Where the statement was executed: the innermost frame outside SQLAlchemy."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if f"{os.sep}sqlalchemy{os.sep}" not in name and not name.endswith(
            ("contextlib.py", "tenant_check.py")
        ):
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def problems(statement: Any, parameter_sets: Sequence[Any] = ({},)) -> tuple[str, ...]:
    """What makes `statement` unscoped (nothing when it is scoped), for the parameter
    sets it is executed with."""
    if isinstance(statement, str | TextClause):
        return _raw_problems(statement if isinstance(statement, str) else statement.text)
    if isinstance(statement, ExecutableDDLElement) or not isinstance(statement, ClauseElement):
        return ()
    if isinstance(statement, Insert):  # verdict depends on the parameters given
        return tuple(_insert_problems(statement, parameter_sets))
    cache_key = statement._generate_cache_key()
    if cache_key is None:
        return tuple(_statement_problems(statement))
    key = cache_key.key
    found = _verdicts.get(key)
    if found is None:
        found = tuple(_statement_problems(statement))
        if len(_verdicts) >= _MAX_CACHED:
            _verdicts.clear()
        _verdicts[key] = found
    return found


def _raw_problems(sql: str) -> tuple[str, ...]:
    if not _DATA_STATEMENT.match(sql):
        return ()
    sql = _STRING_LITERAL.sub("''", sql)  # a table's name as a value names no table
    found = []
    for name in sorted({match.lower() for match in _TENANT_NAMES.findall(sql)}):
        column = _COLUMN_BY_NAME[name]
        if not re.search(rf"\b{column}\b", sql, re.IGNORECASE):
            found.append(f"raw SQL names tenant table {name!r} but never {column}")
    return tuple(found)


def _statement_problems(statement: ClauseElement) -> Iterator[str]:
    if isinstance(statement, SelectBase):
        yield from _select_problems(statement, enclosing=frozenset(), constrained=frozenset())
    elif isinstance(statement, Update | Delete):
        yield from _dml_problems(statement)
    else:  # a function or expression executed alone, e.g. a sequence's next value
        for nested in _nested_selects(statement):
            yield from _select_problems(nested, enclosing=frozenset(), constrained=frozenset())


# -- scopes ------------------------------------------------------------------------


def _select_problems(
    statement: SelectBase,
    *,
    enclosing: frozenset[FromClause],
    constrained: frozenset[FromClause],
    correlated: bool = False,
) -> Iterator[str]:
    """`enclosing`: the tables of the enclosing scopes, which a sub-select in an
    expression (`correlated`) takes from there; `constrained`: those constrained."""
    if isinstance(statement, CompoundSelect):
        for part in statement.selects:
            yield from _select_problems(
                part, enclosing=enclosing, constrained=constrained, correlated=correlated
            )
        return
    if not isinstance(statement, Select):
        return  # a TextualSelect and the like: text() wrapped, checked as raw SQL
    tables, join_conditions = _flatten(final_froms(statement))
    if correlated:  # as SQLAlchemy's auto-correlation does
        tables = [table for table in tables if table not in enclosing]
    conjuncts = [*_conjuncts(statement.whereclause), *join_conditions]
    yield from _scope_problems(tables, conjuncts, enclosing, constrained, statement)


def _dml_problems(statement: Update | Delete) -> Iterator[str]:
    froms: list[Any] = [statement.table, *getattr(statement, "_extra_froms", ())]
    for criterion in statement._where_criteria:
        froms.extend(criterion._from_objects)
    tables, join_conditions = _flatten(froms)
    tables = list(dict.fromkeys(tables))
    conjuncts = [*_conjuncts(statement.whereclause), *join_conditions]
    yield from _scope_problems(tables, conjuncts, frozenset(), frozenset(), statement)


def _scope_problems(
    tables: list[FromClause],
    conjuncts: list[ClauseElement],
    enclosing: frozenset[FromClause],
    constrained_outside: frozenset[FromClause],
    statement: ClauseElement,
) -> Iterator[str]:
    constrained = _constrained(conjuncts, constrained_outside)
    for table in tables:
        if tenant_table(table) is not None and table not in constrained:
            column = TENANT_COLUMN[tenant_table(table)]  # type: ignore[index]
            yield f"{_name(table)} is not constrained by {column} = <bound value>"
    scope = enclosing | frozenset(tables)
    for table in tables:  # derived tables: their own statements, uncorrelated
        element = getattr(table, "element", None)
        if isinstance(element, SelectBase):
            yield from _select_problems(element, enclosing=scope, constrained=constrained)
    for nested in _nested_selects(statement):
        yield from _select_problems(
            nested, enclosing=scope, constrained=constrained, correlated=True
        )


def _constrained(
    conjuncts: Iterable[ClauseElement], outside: frozenset[FromClause]
) -> frozenset[FromClause]:
    constrained = set(outside)
    pairs: list[tuple[FromClause, FromClause]] = []
    for conjunct in conjuncts:
        if not (isinstance(conjunct, BinaryExpression) and conjunct.operator is operators.eq):
            continue
        left, right = _user_of(conjunct.left), _user_of(conjunct.right)
        if left is not None and isinstance(conjunct.right, BindParameter):
            constrained.add(left)
        elif right is not None and isinstance(conjunct.left, BindParameter):
            constrained.add(right)
        elif left is not None and right is not None:
            pairs.append((left, right))
    grew = True
    while grew:
        grew = False
        for left, right in pairs:
            if (left in constrained) != (right in constrained):
                constrained.update((left, right))
                grew = True
    return frozenset(constrained)


def _user_of(element: Any) -> FromClause | None:
    """The table (or alias) whose user column `element` is, if it is one."""
    owner = getattr(element, "table", None)
    table = tenant_table(owner) if owner is not None else None
    if table is not None and getattr(element, "name", None) == TENANT_COLUMN[table]:
        return owner
    return None


# -- walking the tree ----------------------------------------------------------------


def _flatten(froms: Iterable[Any]) -> tuple[list[FromClause], list[ClauseElement]]:
    """The tables of FROM items (joins taken apart) and the conjuncts of their ONs."""
    tables: list[FromClause] = []
    conditions: list[ClauseElement] = []
    pending = list(froms)
    while pending:
        item = pending.pop(0)
        if isinstance(item, Join):
            pending[:0] = [item.left, item.right]
            conditions.extend(_conjuncts(item.onclause))
        else:
            tables.append(item)
    return tables, conditions


def _conjuncts(clause: Any) -> Iterator[ClauseElement]:
    if clause is None:
        return
    while isinstance(clause, Grouping):
        clause = clause.element
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        for part in clause.clauses:
            yield from _conjuncts(part)
    else:
        yield clause


def _nested_selects(element: ClauseElement) -> Iterator[SelectBase]:
    """The sub-selects in `element`'s expressions (columns, WHERE, ON, VALUES, ...),
    not descending into them, nor into FROM items (derived tables are walked apart)."""
    for child in element.get_children():
        if isinstance(child, SelectBase):
            yield child
        elif isinstance(child, Join):
            if child.onclause is not None:
                yield from _nested_selects(child.onclause)
        elif not isinstance(child, FromClause):
            yield from _nested_selects(child)


def _insert_problems(statement: Insert, parameter_sets: Sequence[Any]) -> Iterator[str]:
    for nested in _nested_selects(statement):
        yield from _select_problems(nested, enclosing=frozenset(), constrained=frozenset())
    table = tenant_table(statement.table)
    if table is None:
        return
    column = TENANT_COLUMN[table]
    if statement.select is not None:
        yield from _select_problems(
            statement.select, enclosing=frozenset(), constrained=frozenset()
        )
        names = [getattr(name, "key", name) for name in statement._select_names or ()]
        if column not in names:
            yield f"INSERT INTO {table.name} ... SELECT does not set {column}"
        return
    given = {getattr(name, "key", name) for name in (statement._values or {})}
    for rows in statement._multi_values:
        for row in rows:
            given |= {getattr(name, "key", name) for name in _keys(row, table)}
    if column in given:
        return
    if parameter_sets and all(isinstance(p, dict) and column in p for p in parameter_sets):
        return
    yield f"INSERT INTO {table.name} does not set {column}"


def _keys(row: Any, table: Any) -> Iterable[Any]:
    if isinstance(row, dict):
        return row.keys()
    return [column.key for column in table.columns][: len(row)]


def _name(table: FromClause) -> str:
    base = tenant_table(table)
    if base is not None and table is not base:
        return f"{base.name} (as {getattr(table, 'name', '?')})"
    return getattr(table, "name", str(table))
