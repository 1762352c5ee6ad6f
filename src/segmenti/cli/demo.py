"""`segmenti demo`: a new user filled with the demo's contacts and segments (`demo.py`),
written through the same services as the CSV import and the API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from segmenti import auth, errors, timeutil
from segmenti import demo as generator
from segmenti.cli.support import console, database, err_console, fail
from segmenti.contacts import importer
from segmenti.contacts.csv_io import ContactRow
from segmenti.db.engine import Database
from segmenti.db.tables import contacts
from segmenti.db.tenant import Tenant
from segmenti.forms import Params
from segmenti.segments import service as segments_service
from segmenti.segments.forms import segment_input

# Rows between two moves of the progress bar: often enough to look live, rarely enough to
# cost nothing at a million.
PROGRESS_EVERY = 5_000


def _run_date(value: str | None) -> date:
    if value is None:
        return timeutil.utcnow().date()
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007 - a date, no time
    except ValueError:
        raise typer.BadParameter("a date as YYYY-MM-DD", param_hint="--today") from None


def demo(
    contacts_count: Annotated[
        int, typer.Option("--contacts", min=0, max=10_000_000, help="How many contacts.")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed and date, same data.")] = 1,
    today: Annotated[
        str | None,
        typer.Option(help="The run date the demo's dates count back from (default: today, UTC)."),
    ] = None,
    name: Annotated[str, typer.Option(help="The new user's name.")] = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Creates a user with the demo's contacts and segments, and prints its API key."""
    run_date = _run_date(today)
    catalogue = generator.CATALOGUE
    db = database()
    started = time.perf_counter()
    picker = generator.Picker(catalogue)
    progress = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    )
    try:
        with db.write() as session:
            user_id, api_key = auth.create_user(session, name=name)
        with progress:
            contacts_task = progress.add_task("contacts", total=contacts_count)
            segments_task = progress.add_task("segments", total=len(catalogue))

            def rows() -> Iterator[ContactRow]:
                people = generator.contacts(contacts_count, seed=seed, today=run_date)
                for index, contact in enumerate(people):
                    picker.see(contact)
                    if index % PROGRESS_EVERY == 0:
                        progress.update(contacts_task, completed=index)
                    yield ContactRow(
                        index + 2,
                        contact.phone,
                        contact.name,
                        contact.has_opted_out,
                        contact.custom_parameters,
                    )

            report = importer.import_contacts(db, user_id=user_id, open_rows=rows)
            progress.update(contacts_task, completed=contacts_count)
            made = 0
            for segment in catalogue:
                made += _create(db, user_id, segment, picker)
                progress.advance(segments_task)
    except errors.SegmentiError as exc:
        raise fail(exc) from None
    finally:
        db.dispose()
    elapsed = time.perf_counter() - started
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "user_id": user_id,
                    "api_key": api_key,
                    "contacts": report.created,
                    "segments": made,
                    "today": run_date.isoformat(),
                    "seconds": round(elapsed, 3),
                }
            )
        )
        return
    console.print(
        f"Demo user {user_id}: {report.created:,} contacts, {made:,} segments "
        f"in {elapsed:.1f}s (dates counted back from {run_date.isoformat()})\n"
        f"api_key: [bold]{api_key}[/bold]  (shown once)\n"
        f'  export SEGMENTI_API_KEY="{api_key}"'
    )


def _create(
    db: Database, user_id: int, segment: generator.DemoSegment, picker: generator.Picker
) -> bool:
    """Creates `segment`; False for a list that found none of its contacts (a demo of fewer
    contacts than the cast)."""
    params = segment.api_params()
    numbers = picker.numbers.get(segment.name)
    if segment.picks is not None and not numbers:
        return False
    with db.write() as session:
        if segment.type == "bulk":
            params["phone_numbers"] = numbers
        elif segment.type == "custom":
            params["contacts_ids"] = _ids(session, user_id, numbers or [])
        data = segment_input(Params.from_json(params), db.settings)
        segments_service.create_segment(session, user_id=user_id, data=data)
    return True


def _ids(session: Session, user_id: int, numbers: list[str]) -> list[int]:
    statement = (
        Tenant(user_id)
        .select(contacts.c.phone_number, contacts.c.id)
        .where(contacts.c.phone_number.in_(numbers))
    )
    found: dict[str, int] = {
        number: contact_id for number, contact_id in session.execute(statement)
    }
    return [found[number] for number in numbers if number in found]
