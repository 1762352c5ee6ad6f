"""Migration files are named in chain order, and a database left at any earlier head
upgrades to the newest schema with its rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.settings import Settings
from tests.db.test_schema import _count, _differences, _seed_0001


def _chain() -> list[tuple[str, str]]:
    """(revision id, file name) from the first migration to the newest."""
    script = ScriptDirectory(str(migrate.MIGRATIONS))
    newest_first = list(script.walk_revisions("base", "heads"))
    assert len(script.get_heads()) == 1, "the migrations must form one chain"
    return [(rev.revision, Path(rev.path).name) for rev in reversed(newest_first)]


def test_migration_files_are_numbered_in_chain_order() -> None:
    files = [name for _, name in _chain()]
    assert files == sorted(files)
    # 0001_..., 0002_..., with no gap and no number used twice.
    assert [int(name[:4]) for name in files] == list(range(1, len(files) + 1))
    on_disk = sorted(path.name for path in (migrate.MIGRATIONS / "versions").glob("[0-9]*.py"))
    assert on_disk == files


EARLIER_HEADS = [revision for revision, _ in _chain()[:-1]]


@pytest.mark.parametrize("revision", EARLIER_HEADS)
def test_a_database_at_an_earlier_head_upgrades_with_its_rows(
    empty_url: str, revision: str
) -> None:
    # The application's engine: foreign keys enforced on SQLite, as when serving.
    db = Database(Settings(database_url=empty_url))
    try:
        migrate.upgrade(db.engine, "0001")
        _seed_0001(db.engine)
        migrate.upgrade(db.engine, revision)  # a database created by that release
        migrate.upgrade(db.engine)
        assert migrate.is_current(db.engine)
        assert _differences(db.engine) == []
        assert _count(db.engine, "SELECT count(*) FROM contacts") == 3
        assert _count(db.engine, "SELECT count(*) FROM contact_parameters") == 3
        assert _count(db.engine, "SELECT count(*) FROM segment_members") == 2
    finally:
        db.dispose()


def test_every_revision_id_is_kept_by_name() -> None:
    # Databases store these ids: renaming a file must never change one.
    assert [revision for revision, _ in _chain()] == [
        "0001",
        "0002_idempotency_keys",
        "0003_count_and_listing_indexes",
        "0002_tenant_keys",
        "0003_folded_byte_order",
        "0004_parameters_without_rowid",
        *[revision for revision, _ in _chain()[6:]],
    ]
