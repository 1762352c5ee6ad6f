"""Ids the database cannot hold are refused by the CLI with a message, not a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from segmenti.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [["keys", "create"], ["keys", "list"], ["keys", "revoke"]])
@pytest.mark.parametrize("identifier", ["2147483648", "99999999999999999999", "0"])
def test_out_of_range_ids_are_usage_errors(
    database_url: str, command: list[str], identifier: str
) -> None:
    result = runner.invoke(app, [*command, identifier], env={"SEGMENTI_DATABASE_URL": database_url})
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
