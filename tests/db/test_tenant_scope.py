"""The tenant scope (db/tenant.py) and the check every test runs under
(db/tenant_check.py): a statement on a tenant table without a user_id constraint is
refused, however it hides it (an alias, a join, a sub-select, an OR)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateTable

from segmenti.db import tenant_check
from segmenti.db.engine import Database
from segmenti.db.tables import (
    api_keys,
    contact_parameters,
    contacts,
    dashboard_sessions,
    segment_members,
    segments,
    users,
)
from segmenti.db.tenant import Tenant, across_tenants
from segmenti.db.tenant_check import UnscopedStatement, problems

ROOT = Path(__file__).resolve().parents[2]
USER = 7
alice = Tenant(USER)


def scoped(statement: Any, parameters: Any = ({},)) -> bool:
    return not problems(statement, parameters)


# -- the recount bug: segments updated by id alone ------------------------------------


def test_an_update_of_a_segment_by_id_alone_is_refused() -> None:
    statement = update(segments).where(segments.c.id == 5).values(total_contacts=3)
    assert problems(statement) == ("segments is not constrained by user_id = <bound value>",)


def test_an_update_of_a_segment_by_user_and_id_passes() -> None:
    statement = (
        update(segments)
        .where(segments.c.user_id == USER, segments.c.id == 5)
        .values(total_contacts=3)
    )
    assert scoped(statement)
    assert scoped(alice.update(segments).where(segments.c.id == 5).values(total_contacts=3))


def test_a_delete_needs_the_user_too() -> None:
    assert not scoped(delete(contacts).where(contacts.c.id == 5))
    assert scoped(alice.delete(contacts).where(contacts.c.id == 5))


# -- selects -------------------------------------------------------------------------


def test_a_select_without_the_user_is_refused_and_with_it_passes() -> None:
    assert not scoped(select(contacts.c.id))
    assert not scoped(select(func.count()).select_from(contacts))
    assert scoped(select(contacts.c.id).where(contacts.c.user_id == USER))
    assert scoped(alice.select(contacts.c.id))


def test_a_constraint_compares_the_user_with_a_bound_value_not_another_column() -> None:
    assert not scoped(select(contacts.c.id).where(contacts.c.user_id == contacts.c.id))
    assert not scoped(select(contacts.c.id).where(contacts.c.user_id > USER))
    assert not scoped(select(contacts.c.id).where(contacts.c.user_id.in_([USER, 8])))
    assert not scoped(select(contacts.c.id).where(contacts.c.id == USER))


def test_a_constraint_under_or_constrains_nothing() -> None:
    either = or_(contacts.c.user_id == USER, contacts.c.phone_number == "+39")
    assert not scoped(select(contacts.c.id).where(either))


def test_an_alias_is_constrained_by_its_own_user_column() -> None:
    other = contacts.alias("other")
    assert scoped(select(other.c.id).where(other.c.user_id == USER))
    assert scoped(alice.select(other.c.id))
    # The base table's column names another FROM item, not the alias.
    assert not scoped(select(other.c.id).where(other.c.user_id == contacts.c.user_id))
    pair = select(contacts.c.id, other.c.id).where(
        contacts.c.user_id == USER, contacts.c.phone_number == other.c.phone_number
    )
    assert problems(pair) == ("contacts (as other) is not constrained by user_id = <bound value>",)


def test_a_join_passes_when_the_joined_user_equals_a_constrained_one() -> None:
    joined = contacts.join(
        segment_members,
        (segment_members.c.contact_id == contacts.c.id)
        & (segment_members.c.user_id == contacts.c.user_id),
    )
    assert scoped(select(contacts.c.id).select_from(joined).where(contacts.c.user_id == USER))
    # ... and is refused when nothing ties the joined table to the user.
    loose = contacts.join(segment_members, segment_members.c.contact_id == contacts.c.id)
    found = problems(select(contacts.c.id).select_from(loose).where(contacts.c.user_id == USER))
    assert found == ("segment_members is not constrained by user_id = <bound value>",)


def test_tenant_join_and_scope_constrain_every_joined_table() -> None:
    joined = alice.join(contacts, segment_members, segment_members.c.contact_id == contacts.c.id)
    assert scoped(alice.select(contacts.c.id).select_from(joined))
    query = select(users.c.name).select_from(
        dashboard_sessions.join(users, users.c.id == dashboard_sessions.c.user_id).join(
            api_keys, api_keys.c.id == dashboard_sessions.c.api_key_id
        )
    )
    assert not scoped(query)
    assert scoped(alice.scope(query))


def test_tenant_join_without_an_on_clause_joins_on_the_user_alone() -> None:
    joined = alice.join(dashboard_sessions, users)
    assert str(joined.onclause) == "users.id = dashboard_sessions.user_id"
    assert scoped(alice.scope(select(users.c.name).select_from(joined)))


def test_users_are_scoped_by_their_id() -> None:
    assert not scoped(select(users.c.name))
    assert scoped(select(users.c.name).where(users.c.id == USER))
    assert scoped(alice.select(users.c.name))


# -- sub-selects ---------------------------------------------------------------------


def test_an_unscoped_sub_select_is_refused_in_a_scoped_statement() -> None:
    members = select(segment_members.c.contact_id).where(segment_members.c.segment_id == 1)
    query = alice.select(contacts.c.id).where(contacts.c.id.in_(members))
    assert problems(query) == ("segment_members is not constrained by user_id = <bound value>",)
    assert scoped(
        alice.select(contacts.c.id).where(
            contacts.c.id.in_(members.where(segment_members.c.user_id == USER))
        )
    )


def test_a_correlated_exists_may_take_the_user_from_the_enclosing_statement() -> None:
    held = exists().where(
        contact_parameters.c.contact_id == contacts.c.id,
        contact_parameters.c.user_id == contacts.c.user_id,
    )
    assert scoped(alice.select(contacts.c.id).where(held))
    # Unscoped outside, the same EXISTS scopes nothing: under NOT it keeps everyone else.
    held_by_alice = exists().where(
        contact_parameters.c.contact_id == contacts.c.id,
        contact_parameters.c.user_id == USER,
        contact_parameters.c.user_id == contacts.c.user_id,
    )
    assert problems(select(contacts.c.id).where(~held_by_alice)) == (
        "contacts is not constrained by user_id = <bound value>",
    )
    loose = exists().where(contact_parameters.c.contact_id == contacts.c.id)
    assert not scoped(alice.select(contacts.c.id).where(loose))


def test_a_scalar_sub_select_in_an_update_is_checked() -> None:
    members = (
        select(func.count()).where(segment_members.c.segment_id == segments.c.id).scalar_subquery()
    )
    statement = alice.update(segments).values(total_contacts=members)
    assert not scoped(statement)
    same_user = (
        select(func.count())
        .where(
            segment_members.c.segment_id == segments.c.id,
            segment_members.c.user_id == segments.c.user_id,
        )
        .scalar_subquery()
    )
    assert scoped(alice.update(segments).values(total_contacts=same_user))


def test_derived_tables_and_ctes_are_checked_as_statements_of_their_own() -> None:
    derived = select(contacts.c.id).subquery()
    assert not scoped(select(derived.c.id))
    assert scoped(select(alice.select(contacts.c.id).subquery().c.id))
    cte = select(segments.c.id).cte("mine")
    assert not scoped(select(cte.c.id))
    assert scoped(select(alice.select(segments.c.id).cte("mine").c.id))


def test_a_union_is_scoped_only_when_every_part_is() -> None:
    scoped_part = alice.select(contacts.c.id)
    assert scoped(scoped_part.union(alice.select(segment_members.c.contact_id)))
    assert not scoped(scoped_part.union(select(segment_members.c.contact_id)))


# -- inserts -------------------------------------------------------------------------


def test_an_insert_must_set_the_user() -> None:
    row = {"id": 1, "phone_number": "+39", "custom_parameters": {}, "datetime": None}
    assert problems(insert(contacts).values(**row)) == (
        "INSERT INTO contacts does not set user_id",
    )
    assert scoped(insert(contacts).values(user_id=USER, **row))
    assert scoped(alice.insert(contacts).values(**row))
    assert scoped(insert(contacts), [{**row, "user_id": USER}, {**row, "user_id": USER}])
    assert not scoped(insert(contacts), [{**row, "user_id": USER}, row])


def test_an_insert_from_a_select_must_set_the_user_from_a_scoped_select() -> None:
    rows = alice.select(literal(USER), contacts.c.id, literal(1))
    names = ["user_id", "contact_id", "segment_id"]
    assert scoped(insert(segment_members).from_select(names, rows))
    unscoped = select(literal(USER), contacts.c.id, literal(1))
    assert not scoped(insert(segment_members).from_select(names, unscoped))
    assert not scoped(
        insert(segment_members).from_select(names[1:], alice.select(contacts.c.id, literal(1)))
    )


# -- raw SQL, DDL and tables of no tenant --------------------------------------------


def test_raw_sql_naming_a_tenant_table_must_mention_user_id() -> None:
    assert not scoped(text("UPDATE segments SET total_contacts = 0"))
    assert not scoped("DELETE FROM contact_parameters WHERE key = ?")
    assert scoped(text("UPDATE segments SET total_contacts = 0 WHERE user_id = :user_id"))
    assert scoped(text("SELECT 1"))
    assert not scoped(text("DELETE FROM users"))
    assert scoped(text("DELETE FROM users WHERE id = :user_id"))
    assert scoped(text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'contacts'"))
    assert scoped("PRAGMA query_only = ON")


def test_ddl_and_other_tables_are_not_checked() -> None:
    assert scoped(CreateTable(contacts))
    assert scoped(select(func.now()))


# -- the hook on a real engine ---------------------------------------------------------


def test_the_hook_refuses_an_unscoped_statement_before_it_runs(db: Database) -> None:
    with db.write() as session:
        with pytest.raises(UnscopedStatement, match="segments is not constrained"):
            session.execute(update(segments).where(segments.c.id == 1).values(name="x"))
        session.execute(alice.update(segments).where(segments.c.id == 1).values(name="x"))
    assert len(tenant_check.violations) == 1
    tenant_check.violations.clear()  # seen: not this test's failure


def test_the_escape_hatch_lets_a_statement_across_tenants_run(db: Database) -> None:
    with db.read() as session, across_tenants("a test reads every user's segments"):
        assert session.execute(select(func.count()).select_from(segments)).scalar_one() == 0
    with pytest.raises(ValueError, match="reason"), across_tenants(" "):
        pass


# -- every use of the escape hatch is listed in the security docs --------------------


def _hatch_uses_in_source() -> list[tuple[str, str]]:
    uses = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "across_tenants"
            ):
                argument = node.args[0] if node.args else None
                assert isinstance(argument, ast.Constant), f"{path}: a reason in plain text"
                uses.append((str(path.relative_to(ROOT)), argument.value))
    return sorted(uses)


def _hatch_uses_in_docs() -> list[tuple[str, str]]:
    page = (ROOT / "docs" / "security.md").read_text()
    section = page.split("## Statements across tenants", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \|$", section, flags=re.MULTILINE)
    return sorted((path, reason.strip()) for path, reason in rows)


def test_every_statement_across_tenants_is_listed_in_the_security_docs() -> None:
    uses = _hatch_uses_in_source()
    assert uses, "no use found: the search is broken"
    assert _hatch_uses_in_docs() == uses


# -- no tenant predicate typed by hand -------------------------------------------------

# (path under src/segmenti, the comparison as ast.unparse writes it) -> why it is typed by
# hand. db/tenant.py is where the predicates are built, and is not scanned.
HAND_TYPED_ALLOWED: dict[tuple[str, str], str] = {}


def _is_user_column(node: ast.expr) -> bool:
    """`x.user_id` or `x.c["user_id"]` (any table, alias or `.c` held in a name), or
    `users.c.id`: what names a tenant table's user in a statement."""
    if isinstance(node, ast.Attribute):
        if node.attr == "user_id":
            return True
        return (
            node.attr == "id"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "c"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "users"
        )
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value == "user_id"
    )


def hand_typed_predicates(source: str, path: str = "<source>") -> list[str]:
    """The `==` / `!=` comparisons in `source` with a user column on either side."""
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if not isinstance(node, ast.Compare):
            continue
        equality = any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)
        if equality and any(_is_user_column(side) for side in (node.left, *node.comparators)):
            found.append(ast.unparse(node))
    return found


def test_the_source_scan_finds_predicates_typed_by_hand() -> None:
    source = """
segments.c.user_id == user_id
user_id == contacts.c.user_id
other.c.user_id != 3
rows.user_id == users.c.id
users.c.id == user_id
contacts.c["user_id"] == 1
contacts.c.id == contact_id
Tenant(user_id).owns(contacts)
"""
    assert hand_typed_predicates(source) == [
        "segments.c.user_id == user_id",
        "user_id == contacts.c.user_id",
        "other.c.user_id != 3",
        "rows.user_id == users.c.id",
        "users.c.id == user_id",
        "contacts.c['user_id'] == 1",
    ]


def test_no_tenant_predicate_is_typed_by_hand_outside_the_tenant_scope() -> None:
    """Statements constrain a user through `Tenant` (db/tenant.py), never by comparing a
    user column by hand: one place says how a statement is scoped (and for Citus, routed)."""
    package = ROOT / "src" / "segmenti"
    found: dict[tuple[str, str], int] = {}
    for path in sorted(package.rglob("*.py")):
        name = str(path.relative_to(package))
        if name == "db/tenant.py":
            continue
        for predicate in hand_typed_predicates(path.read_text(), str(path)):
            found[(name, predicate)] = found.get((name, predicate), 0) + 1
    unexpected = sorted(key for key in found if key not in HAND_TYPED_ALLOWED)
    assert not unexpected, f"use Tenant(user_id) (db/tenant.py) instead of: {unexpected}"
    stale = sorted(key for key in HAND_TYPED_ALLOWED if key not in found)
    assert not stale, f"allowed exceptions no longer in the code: {stale}"
