"""Real databases for every test: SQLite always; PostgreSQL when
SEGMENTI_TEST_DATABASE_URL names a server (`make test-pg`, and CI); a Citus cluster when
SEGMENTI_TEST_CITUS_URL names its coordinator (a database there with the workers added):
then the whole suite runs on a distributed schema (docs/scaling-out.md)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from segmenti import auth
from segmenti.app import create_app
from segmenti.db import distribution, migrate, tenant_check
from segmenti.db.engine import Database
from segmenti.db.tables import metadata
from segmenti.db.tenant import across_tenants
from segmenti.settings import Settings
from tests.count_writers import only_counts_writes_total_contacts  # noqa: F401 (autouse)

CITUS_URL = os.environ.get("SEGMENTI_TEST_CITUS_URL")
# Citus is PostgreSQL: every PostgreSQL test runs on the coordinator too.
PG_URL = CITUS_URL or os.environ.get("SEGMENTI_TEST_DATABASE_URL")
needs_citus = pytest.mark.skipif(not CITUS_URL, reason="no Citus (SEGMENTI_TEST_CITUS_URL)")

# Every statement of every engine, the app's included, must be scoped to one user
# (db/tenant_check.py); a test fails when one was not, even if the code swallowed it.
tenant_check.install()


@pytest.fixture(autouse=True)
def _statements_scoped_to_a_user() -> Iterator[None]:
    tenant_check.violations.clear()
    yield
    assert not tenant_check.violations, "\n".join(tenant_check.violations)


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database the tests start from: a SQLite file to copy, or a PostgreSQL
    database made for this test session (emptied between tests)."""
    if CITUS_URL:
        server = make_url(CITUS_URL)
        name = f"segmenti_test_{uuid.uuid4().hex[:10]}"
        url = distribution.create_database(server, name)
        engine = create_engine(url)
        migrate.upgrade(engine)
        with engine.begin() as connection:
            # Fewer shards than the default 32: each test empties every one of them.
            connection.execute(text("SET LOCAL citus.shard_count = 4"))
            distribution.distribute(connection)
        engine.dispose()
        yield url.render_as_string(hide_password=False)
        distribution.drop_database(server, name)
    elif PG_URL:
        server = make_url(PG_URL)
        name = f"segmenti_test_{uuid.uuid4().hex[:10]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.set(database=name)
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url.render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "segmenti.db"
        engine = create_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        yield str(path)


@pytest.fixture
def database_url(_template: str, tmp_path: Path) -> str:
    if PG_URL:
        engine = create_engine(_template)
        names = ", ".join(table.name for table in reversed(metadata.sorted_tables))
        with engine.begin() as connection, across_tenants("tests empty every table"):
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return _template
    path = tmp_path / "segmenti.db"
    shutil.copyfile(_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def db(app: Any) -> Database:
    database: Database = app.state.db
    return database


@dataclass
class User:
    id: int
    api_key: str
    client: TestClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    # -- factories with overrides -------------------------------------------------
    def make_contact(self, phone_number: str, **fields: Any) -> int:
        response = self.post("/api/contacts", json={"phone_number": phone_number, **fields})
        assert response.status_code == 201, response.text
        return int(response.json()["data"]["id"])

    def make_segment(self, **fields: Any) -> int:
        response = self.post("/api/segments", json={"name": "segment", **fields})
        assert response.status_code == 201, response.text
        return int(response.json()["data"]["id"])

    def segment(self, segment_id: int) -> dict[str, Any]:
        response = self.get(f"/api/segments/{segment_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def total(self, segment_id: int) -> int:
        return int(self.segment(segment_id)["total_contacts"])


@pytest.fixture
def make_user(client: TestClient, db: Database) -> Any:
    def make(name: str = "user") -> User:
        with db.write() as session:
            user_id, api_key = auth.create_user(session, name=name)
        return User(user_id, api_key, client)

    return make


@pytest.fixture
def alice(make_user: Any) -> User:
    user: User = make_user("alice")
    return user


@pytest.fixture
def bob(make_user: Any) -> User:
    user: User = make_user("bob")
    return user
