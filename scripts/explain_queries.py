"""Shows how the application's own queries run on a large tenant (docs/postgresql.md,
"Indexes and query plans"): EXPLAIN (ANALYZE) on PostgreSQL, EXPLAIN QUERY PLAN on SQLite.

    python scripts/explain_queries.py --generate URL   # fill an EMPTY database first
    python scripts/explain_queries.py URL [NAME ...]   # only the named queries

--generate migrates the database and writes, in SQL, user 1 with 1,000,000 contacts
and user 2 with 200,000, each with three parameters (plan, age, email), and two list
segments of user 1 (about 1 minute on PostgreSQL, 30 s on SQLite). Use a scratch
database: `make pg-start` and `createdb`, or a new SQLite file.
"""

# The generator pastes only this file's constants into SQL, never any input.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import time
from typing import Any

from sqlalchemy import Select, create_engine, func, select, text
from sqlalchemy.engine import Connection

from segmenti.db import migrate
from segmenti.db.tables import contacts, segment_members
from segmenti.membership import filters
from segmenti.membership.filters import Condition, Filter

USER = 1
CONTACTS, OTHERS = 1_000_000, 200_000

# n -> one contact; the same expressions in both dialects.
_CONTACT = """
    n, CASE WHEN n <= {contacts} THEN 1 ELSE 2 END, 'Name ' || n,
    '+39333' || {pad},
    {json}('plan', CASE n % 5 WHEN 0 THEN 'pro' WHEN 1 THEN 'free' WHEN 2 THEN 'basic'
                    WHEN 3 THEN 'team' ELSE 'trial' END,
           'age', CAST(18 + n % 63 AS TEXT),
           'email', 'user' || n || '@' || CASE n % 4 WHEN 0 THEN 'gmail.com'
                    WHEN 1 THEN 'example.org' WHEN 2 THEN 'mail.it' ELSE 'corp.net' END),
    CASE n % 4 WHEN 0 THEN 'EU' WHEN 1 THEN 'NA' WHEN 2 THEN 'AS' ELSE 'EU' END,
    CASE n % 4 WHEN 0 THEN 'IT' WHEN 1 THEN 'US' WHEN 2 THEN 'JP' ELSE 'FR' END,
    n % 50 = 0, CURRENT_TIMESTAMP"""


def generate(connection: Connection) -> None:
    pg = connection.dialect.name == "postgresql"
    total = CONTACTS + OTHERS
    series = (
        f"generate_series(1, {total}) AS s(n)"
        if pg
        else f"(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {total})"
        " SELECT n FROM s)"
    )
    get = "custom_parameters->>'{}'" if pg else "json_extract(custom_parameters, '$.{}')"
    number = "CAST({} AS float)" if pg else "CAST({} AS REAL)"
    statements = [
        "INSERT INTO users (id, name, segments_version, datetime)"
        " VALUES (1, 'big', '', CURRENT_TIMESTAMP), (2, 'other', '', CURRENT_TIMESTAMP)",
        "INSERT INTO contacts (id, user_id, name, phone_number, custom_parameters,"
        " continent_code, country_code, has_opted_out, datetime) SELECT"
        + _CONTACT.format(
            contacts=CONTACTS,
            pad="lpad(CAST(n AS text), 7, '0')" if pg else "substr('0000000' || n, -7)",
            json="jsonb_build_object" if pg else "json_object",
        )
        + f" FROM {series}",
        "INSERT INTO segments (id, user_id, name, type, settings, total_contacts, datetime)"
        " VALUES (1, 1, 'thirds', 'custom', '{}', 0, CURRENT_TIMESTAMP),"
        " (2, 1, 'sevenths', 'custom', '{}', 0, CURRENT_TIMESTAMP)",
    ]
    for key in ("plan", "age", "email"):
        value = get.format(key)
        as_number = number.format(value) if key == "age" else "NULL"
        statements.append(
            "INSERT INTO contact_parameters (contact_id, key, user_id, value_folded, value_number)"
            f" SELECT id, '{key}', user_id, {value}, {as_number} FROM contacts"
        )
    statements += [
        "INSERT INTO segment_members (segment_id, contact_id, user_id)"
        " SELECT 1, id, 1 FROM contacts WHERE user_id = 1 AND id % 3 = 0",
        "INSERT INTO segment_members (segment_id, contact_id, user_id)"
        " SELECT 2, id, 1 FROM contacts WHERE user_id = 1 AND id % 7 = 0",
    ]
    if pg:
        statements += [
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 2000000)"
            for table in ("users", "contacts", "segments")
        ]
    for statement in statements:
        connection.execute(text(statement))


def _count(spec: Filter) -> Select[Any]:
    return (
        select(func.count())
        .select_from(contacts)
        .where(filters.to_sql(spec, user_id=USER), contacts.c.has_opted_out.is_(False))
    )


def _page(where: Any) -> Select[Any]:
    return (
        select(contacts.c.id, contacts.c.phone_number)
        .where(where)
        .order_by(contacts.c.id.desc())
        .limit(25)
    )


def _one(key: str, condition: str, value: str) -> Filter:
    return Filter(conditions=(Condition(key, condition, value),))


QUERIES: dict[str, Select[Any]] = {
    "contacts_page": _page(contacts.c.user_id == USER),
    "contacts_count": select(func.count()).select_from(contacts).where(contacts.c.user_id == USER),
    "exact": _count(_one("plan", "exact", "pro")),
    "not_exact": _count(_one("plan", "not_exact", "pro")),
    "starts_with": _count(_one("email", "starts_with", "user12345")),
    "starts_with_wide": _count(_one("plan", "starts_with", "pr")),
    "contains": _count(_one("email", "contains", "er12345@")),
    "ends_with": _count(_one("email", "ends_with", "mail.it")),
    "not_contains": _count(_one("email", "not_contains", "gmail")),
    "bigger_than": _count(_one("age", "bigger_than", "75")),
    "lower_than": _count(_one("age", "lower_than", "20")),
    "countries": _count(Filter(countries=("IT",))),
    "continents": _count(Filter(continents=("AS",))),
    "everyone": _count(Filter()),
    "numbers_to_ids": select(contacts.c.id).where(
        contacts.c.user_id == USER,
        contacts.c.phone_number.in_([f"+39333{n:07d}" for n in range(1000, 1900)]),
    ),
    "segments_holding_contact": select(segment_members.c.segment_id).where(
        segment_members.c.user_id == USER, segment_members.c.contact_id == 777
    ),
}


def explain(connection: Connection, name: str, query: Select[Any]) -> None:
    pg = connection.dialect.name == "postgresql"
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params: Any = (
        compiled.params if pg else tuple(compiled.params[key] for key in compiled.positiontup or ())
    )
    sql = str(compiled)
    start = time.perf_counter()
    connection.exec_driver_sql(sql, params).all()
    elapsed = (time.perf_counter() - start) * 1000
    prefix = "EXPLAIN (ANALYZE, COSTS OFF) " if pg else "EXPLAIN QUERY PLAN "
    plan = connection.exec_driver_sql(prefix + sql, params).all()
    print(f"== {name}: {elapsed:.1f} ms")
    for row in plan:
        line = str(row[0] if pg else row[3])
        print("   ", line if len(line) < 200 else line[:200] + "...")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="SQLAlchemy URL of the database")
    parser.add_argument("names", nargs="*", help="queries to explain (default: all)")
    parser.add_argument("--generate", action="store_true", help="fill an empty database first")
    args = parser.parse_args()
    engine = create_engine(args.url)
    if args.generate:
        migrate.upgrade(engine)
        start = time.perf_counter()
        with engine.begin() as connection:
            generate(connection)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(
                text("VACUUM ANALYZE" if engine.dialect.name != "sqlite" else "ANALYZE")
            )
        print(f"generated in {time.perf_counter() - start:.0f} s")
    with engine.connect() as connection:
        for name, query in QUERIES.items():
            if not args.names or name in args.names:
                explain(connection, name, query)
    engine.dispose()


if __name__ == "__main__":
    main()
