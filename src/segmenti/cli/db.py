"""`segmenti db distribute`: the schema spread over a Citus cluster (db/distribution.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from segmenti import errors
from segmenti.cli.support import console, database, fail
from segmenti.db import distribution

app = typer.Typer(help="The database.", no_args_is_help=True)


@app.command()
def distribute(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Migrates, then distributes the tables on a Citus coordinator (users by id, every
    tenant table by user_id co-located with users, api_keys to every node). Run it again
    after an upgrade that adds a table; a run with nothing to do changes nothing."""
    db = database()
    try:
        with db.engine.begin() as connection:
            steps = distribution.distribute(connection)
    except errors.SegmentiError as exc:
        raise fail(exc) from None
    finally:
        db.dispose()
    placed = [step for step in steps if not step.done]
    if as_json:
        report = {
            "placed": [step.table for step in placed],
            "already": [step.table for step in steps if step.done],
        }
        typer.echo(json.dumps(report))
        return
    if not placed:
        console.print("Every table is already placed as its rule says: nothing to do.")
        return
    for step in placed:
        rule = step.rule
        where = f"by {rule.column}" if rule.column else ""
        console.print(f"{step.table}: {rule.placement.value} {where}".rstrip())
    console.print(f"{len(placed)} tables placed, {len(steps) - len(placed)} were already.")
