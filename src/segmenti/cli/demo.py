"""`segmenti demo`: a new user filled with generated contacts and segments (`demo.py`),
written through the same services as the API and the CSV import."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from segmenti import auth, errors
from segmenti import demo as generator
from segmenti.cli.support import console, database, fail
from segmenti.contacts import importer
from segmenti.contacts.csv_io import ContactRow
from segmenti.db.tables import contacts
from segmenti.db.tenant import Tenant
from segmenti.forms import Params
from segmenti.segments import service as segments_service
from segmenti.segments.forms import segment_input

# Phone numbers kept (a uniform sample of all contacts) for bulk and custom segments.
SAMPLE = 2_000


def demo(
    contacts_count: Annotated[
        int, typer.Option("--contacts", min=0, help="How many contacts.")
    ] = 10_000,
    segments_count: Annotated[
        int, typer.Option("--segments", min=0, help="How many segments.")
    ] = 30,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 1,
    name: Annotated[str, typer.Option(help="The new user's name.")] = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Creates a user with realistic demo contacts and segments, and prints its API key."""
    db = database()
    started = time.perf_counter()
    try:
        with db.write() as session:
            user_id, api_key = auth.create_user(session, name=name)
        sample: list[str] = []
        sampler = random.Random(seed)

        def rows() -> Iterator[ContactRow]:
            for index, contact in enumerate(generator.contacts(contacts_count, seed=seed)):
                # Reservoir sampling: every number equally likely to be kept.
                if len(sample) < SAMPLE:
                    sample.append(contact.phone.e164)
                else:
                    slot = sampler.randrange(index + 1)
                    if slot < SAMPLE:
                        sample[slot] = contact.phone.e164
                yield ContactRow(
                    index + 2,
                    contact.phone,
                    contact.name,
                    contact.has_opted_out,
                    contact.custom_parameters,
                )

        with console.status(f"importing {contacts_count:,} contacts"):
            report = importer.import_contacts(db, user_id=user_id, open_rows=rows)
        made = 0
        with console.status(f"creating {segments_count:,} segments"):
            for segment in generator.segments(segments_count, seed=seed, numbers=sample):
                params = dict(segment.params)
                with db.write() as session:
                    if segment.type == "custom":
                        params["contacts_ids"] = _ids(session, user_id, segment.phone_numbers)
                    data = segment_input(Params.from_json(params), db.settings)
                    segments_service.create_segment(session, user_id=user_id, data=data)
                made += 1
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
                    "seconds": round(elapsed, 3),
                }
            )
        )
        return
    console.print(
        f"Demo user {user_id}: {report.created:,} contacts, {made:,} segments "
        f"in {elapsed:.1f}s\napi_key: [bold]{api_key}[/bold]  (shown once)\n"
        f'  export SEGMENTI_API_KEY="{api_key}"'
    )


def _ids(session: Session, user_id: int, numbers: tuple[str, ...]) -> list[int]:
    return list(
        session.execute(
            Tenant(user_id)
            .select(contacts.c.id)
            .where(contacts.c.phone_number.in_(numbers))
            .order_by(contacts.c.id)
        ).scalars()
    )
