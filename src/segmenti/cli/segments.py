"""`segmenti segments ...`: maintenance of segments from the command line."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from segmenti.cli.support import database, err_console
from segmenti.segments import recount

app = typer.Typer(help="Segments.", no_args_is_help=True)


@app.command("recount")
def recount_command(
    user: Annotated[int | None, typer.Option("--user", help="Only this user's segments.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Recomputes every segment's total_contacts from scratch.

    Counts are maintained on every write, so this is for after a restore or a manual
    edit of the database, or to check them: it prints the ones that were wrong. Each
    user is counted in one snapshot and its corrected totals stored only if none of
    its contacts or segments changed meanwhile (or it is counted again), so no count
    can miss a write; on SQLite no other user's writes wait for the counting.
    """
    db = database()
    with db.read() as session:
        per_user = recount.segments_per_user(session, user_id=user)
    corrected: list[dict[str, int]] = []
    start = time.perf_counter()
    progress = Progress(
        TextColumn("recounting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
    )
    with progress:
        task = progress.add_task("segments", total=sum(per_user.values()))
        done_before = 0
        for user_id in sorted(per_user):

            def counted(done: int, base: int = done_before) -> None:
                progress.update(task, completed=base + done)

            for item in recount.recount_tenant(db, user_id=user_id, on_counted=counted):
                if item.before != item.after:
                    corrected.append(
                        {"segment_id": item.segment_id, "before": item.before, "after": item.after}
                    )
            done_before += per_user[user_id]
            progress.update(task, completed=done_before)
    seconds = time.perf_counter() - start
    db.dispose()
    total = sum(per_user.values())
    if as_json:
        typer.echo(json.dumps({"segments": total, "corrected": corrected, "seconds": seconds}))
        return
    err_console.print(
        f"recounted {total} segment(s) in {seconds:.1f} s; {len(corrected)} corrected"
    )
    for fixed in corrected[:20]:
        err_console.print(f"  segment {fixed['segment_id']}: {fixed['before']} -> {fixed['after']}")
