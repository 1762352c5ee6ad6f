"""Applies the Alembic migrations shipped in the package, programmatically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table

from segmenti.db import distribution, search_index
from segmenti.db.tenant import across_tenants

MIGRATIONS = Path(__file__).with_name("migrations")


def exists_on(obj: Any, dialect_name: str) -> bool:
    """False for a schema object that `ddl_if` keeps off this backend (the SQLite-only
    unique indexes in tables.py), so that autogenerate does not ask to create it."""
    if isinstance(obj, Table) and search_index.is_search_table(obj.name):
        return False  # the FTS5 table and its shadow tables (SQLite)
    condition = getattr(obj, "_ddl_if", None)
    if condition is None or condition.dialect is None:
        return True
    if isinstance(condition.dialect, str):
        return bool(condition.dialect == dialect_name)
    return dialect_name in condition.dialect


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Brings the database to the newest revision (a no-op when it is there)."""
    config = _config()
    # A connection outside a transaction: Alembic begins its own, which a migration may
    # commit early to build an index CONCURRENTLY (0010_contact_search).
    with engine.connect() as connection, across_tenants("migrations rewrite every tenant's rows"):
        config.attributes["connection"] = connection
        with distribution.migrations_mode(connection):
            command.upgrade(config, revision)
            # On Citus, a table the migrations just added is distributed like the others.
            distribution.after_migrations(connection)
            connection.commit()


def downgrade(engine: Engine, revision: str) -> None:
    """Takes the database back to an older revision (tests of the migrations)."""
    config = _config()
    with engine.connect() as connection, across_tenants("migrations rewrite every tenant's rows"):
        config.attributes["connection"] = connection
        with distribution.migrations_mode(connection):
            command.downgrade(config, revision)
            connection.commit()


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest revision (used by /ready)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
