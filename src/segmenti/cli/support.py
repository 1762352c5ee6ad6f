"""What every `segmenti` command shares: where it prints, the database it opens, and
how it stops on an error. The commands are in this package (`__init__.py`, contacts.py,
segments.py, demo.py); each imports this, none imports another but `__init__.py`,
which gathers them."""

from __future__ import annotations

import typer
from rich.console import Console

from segmenti import errors
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.settings import Settings

console = Console()
err_console = Console(stderr=True)


def database(settings: Settings | None = None) -> Database:
    """The database `settings` name (by default SEGMENTI_DATABASE_URL's), migrated to the
    newest schema. Its statements run under the commands' own limit,
    SEGMENTI_CLI_STATEMENT_TIMEOUT_SECONDS (none by default), not the server's."""
    settings = settings or Settings.from_env()
    db = Database(settings, statement_timeout_seconds=settings.cli_statement_timeout_seconds)
    migrate.upgrade(db.engine)
    return db


def fail(error: errors.SegmentiError) -> typer.Exit:
    """Prints the error and gives the exit to raise: `raise fail(exc) from None`."""
    err_console.print(f"[red]error:[/red] {error.detail or error.title}")
    return typer.Exit(code=1)
