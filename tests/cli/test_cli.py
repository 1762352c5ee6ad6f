"""The CLI, run in-process against a real database."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from segmenti.app import create_app
from segmenti.cli import app
from segmenti.settings import Settings

runner = CliRunner()


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"SEGMENTI_DATABASE_URL": database_url}


def test_users_create_json_prints_exactly_one_line(env: dict[str, str], database_url: str) -> None:
    result = runner.invoke(app, ["users", "create", "Acme", "--json"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    created = json.loads(lines[0])
    assert set(created) == {"user_id", "api_key"}
    application = create_app(Settings(database_url=database_url))
    with TestClient(application) as client:
        headers = {"Authorization": f"Bearer {created['api_key']}"}
        assert client.get("/api/segments", headers=headers).status_code == 200
    application.state.db.dispose()


def test_keys_are_created_listed_by_prefix_and_revoked_to_a_401(
    env: dict[str, str], database_url: str
) -> None:
    user = json.loads(runner.invoke(app, ["users", "create", "Acme", "--json"], env=env).stdout)
    made = runner.invoke(app, ["keys", "create", str(user["user_id"]), "--json"], env=env)
    assert made.exit_code == 0, made.output
    second = json.loads(made.stdout)
    listed = runner.invoke(app, ["keys", "list", str(user["user_id"]), "--json"], env=env)
    keys = json.loads(listed.stdout)
    assert [k["key_id"] for k in keys] == [1, second["key_id"]]
    assert all(second["api_key"] not in listed.stdout for _ in keys)  # only prefixes shown
    assert runner.invoke(app, ["keys", "revoke", str(second["key_id"])], env=env).exit_code == 0
    application = create_app(Settings(database_url=database_url))
    with TestClient(application) as client:
        revoked = {"Authorization": f"Bearer {second['api_key']}"}
        first = {"Authorization": f"Bearer {user['api_key']}"}
        assert client.get("/api/segments", headers=revoked).status_code == 401
        assert client.get("/api/segments", headers=first).status_code == 200
    application.state.db.dispose()
    table = runner.invoke(app, ["keys", "list", str(user["user_id"])], env=env)
    assert table.exit_code == 0 and "revoked" in table.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "999"],
        ["keys", "list", "999"],
        ["keys", "revoke", "999"],
        ["users", "create", " "],
    ],
)
def test_cli_errors_exit_non_zero_with_a_message(env: dict[str, str], args: list[str]) -> None:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1
    assert "error:" in result.output
