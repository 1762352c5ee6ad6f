"""Alembic environment. Run through `segmenti.db.migrate`, which hands in a connection."""

from __future__ import annotations

from alembic import context

from segmenti.db.migrate import exists_on
from segmenti.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=lambda obj, _name, _kind, _reflected, _compare_to: exists_on(
        obj, connection.dialect.name
    ),
)
with context.begin_transaction():
    context.run_migrations()
