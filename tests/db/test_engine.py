"""Connection settings the count maintenance relies on."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url, text

from segmenti.db.engine import Database
from segmenti.settings import Settings
from tests.conftest import PG_URL


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL isolation levels")
def test_transactions_are_read_committed_whatever_the_server_default(database_url: str) -> None:
    # A server (or role) defaulting to serializable must not change what a write sees.
    url = make_url(database_url).update_query_dict(
        {"options": "-c default_transaction_isolation=serializable"}
    )
    db = Database(Settings(database_url=url.render_as_string(hide_password=False)))
    try:
        with db.write() as session:
            assert session.execute(text("SHOW default_transaction_isolation")).scalar_one() == (
                "serializable"
            )
            isolation = session.execute(text("SHOW transaction_isolation")).scalar_one()
            name = session.execute(text("SELECT current_setting('application_name')"))
            assert (isolation, name.scalar_one()) == ("read committed", "segmenti")
    finally:
        db.dispose()
