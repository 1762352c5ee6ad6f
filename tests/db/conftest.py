"""Fixtures of the migration and schema tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from segmenti.db import distribution
from tests.conftest import CITUS_URL, PG_URL


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    """A database with no tables: a new SQLite file, or a new PostgreSQL database."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = make_url(PG_URL)
    name = f"segmenti_schema_{uuid.uuid4().hex[:10]}"
    if CITUS_URL:
        yield distribution.create_database(server, name).render_as_string(hide_password=False)
        distribution.drop_database(server, name)
        return
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
