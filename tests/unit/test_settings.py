"""Settings: every field documented, read from SEGMENTI_* variables."""

from __future__ import annotations

import ast
import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from segmenti import settings as settings_module
from segmenti.settings import Settings

# The settings table of the docs site: every setting has a row there.
SETTINGS_PAGE = Path(__file__).parents[2] / "docs" / "settings-and-operations.md"


def documented_fields() -> dict[str, str]:
    tree = ast.parse(inspect.getsource(settings_module.Settings))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr):
            docs[node.target.id] = following.value.value  # type: ignore[attr-defined]
    return docs


def test_every_setting_has_a_docstring_and_a_row_on_the_settings_page() -> None:
    docs = documented_fields()
    page = SETTINGS_PAGE.read_text()
    for spec in fields(Settings):
        assert docs.get(spec.name, "").strip(), f"{spec.name} has no docstring"
        row = f"| `SEGMENTI_{spec.name.upper()}` |"
        assert row in page, f"{spec.name} has no row in {SETTINGS_PAGE.name}'s settings table"


def test_settings_come_from_the_environment() -> None:
    loaded = Settings.from_env(
        {
            "SEGMENTI_DATABASE_URL": "sqlite:///x.db",
            "SEGMENTI_MAX_BODY_BYTES": "5",
            "SEGMENTI_LOG_JSON": "yes",
        }
    )
    assert loaded.database_url == "sqlite:///x.db"
    assert loaded.max_body_bytes == 5
    assert loaded.log_json is True


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_BODY_BYTES", "lots"), ("LOG_JSON", "perhaps"), ("LOG_LEVEL", "chatty")],
)
def test_bad_settings_are_refused_with_the_variable_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"SEGMENTI_{name}"):
        Settings.from_env({f"SEGMENTI_{name}": value})


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/segmenti.db", Path("var/segmenti.db")),
        ("sqlite:////srv/data/segmenti.db?timeout=20", Path("/srv/data/segmenti.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u@h/db", None),
    ],
)
def test_the_sqlite_file_is_the_urls_path_without_its_query(url: str, path: Path | None) -> None:
    assert Settings(database_url=url).sqlite_path() == path
