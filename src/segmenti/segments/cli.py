"""`segmenti segments ...`: maintenance of segments from the command line."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.segments import service
from segmenti.settings import Settings

app = typer.Typer(help="Segments.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def recount(
    user: Annotated[int | None, typer.Option("--user", help="Only this user's segments.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Recomputes every segment's total_contacts from scratch.

    Counts are maintained on every write, so this is for after a restore, a manual edit
    of the database, or to check them: it prints how many were wrong. Each segment is
    recounted in its own short transaction, so the server can keep running."""
    db = Database(Settings.from_env())
    migrate.upgrade(db.engine)
    with db.read() as session:
        targets = service.segment_ids(session, user_id=user)
    corrected: list[dict[str, int]] = []
    start = time.perf_counter()
    progress = Progress(
        TextColumn("recounting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    )
    with progress:
        task = progress.add_task("segments", total=len(targets))
        for user_id, segment_id in targets:
            with db.write() as session:
                before, after = service.recount_segment(
                    session, user_id=user_id, segment_id=segment_id
                )
            if before != after:
                corrected.append({"segment_id": segment_id, "before": before, "after": after})
            progress.advance(task)
    seconds = time.perf_counter() - start
    db.dispose()
    if as_json:
        typer.echo(
            json.dumps({"segments": len(targets), "corrected": corrected, "seconds": seconds})
        )
        return
    console.print(
        f"recounted {len(targets)} segment(s) in {seconds:.1f} s; {len(corrected)} corrected"
    )
    for item in corrected[:20]:
        console.print(f"  segment {item['segment_id']}: {item['before']} -> {item['after']}")
