"""`segmenti contacts import|export`: the same services as the API."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from segmenti import auth, errors
from segmenti.cli.support import console, database, err_console, fail
from segmenti.contacts import csv_io, export, importer
from segmenti.contacts.reader_process import ChildStager
from segmenti.contacts.staging import StagedBatch
from segmenti.forms import parse_bool
from segmenti.segments import export as segment_export
from segmenti.segments.members import OptOuts

app = typer.Typer(help="Contacts in bulk: CSV import and export.", no_args_is_help=True)

UserOption = Annotated[int, typer.Option("--user", help="The user (tenant) whose contacts.")]


# Files from this size on are read and staged in a second process (`reader_process`),
# when there is a second core: below it, starting that process costs more than it saves.
PARALLEL_FROM_BYTES = 4 * 1024 * 1024


class _File:
    """An import file, read once per pass; remembers how far the current pass got."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.header: tuple[str, ...] = ()
        self.parallel = self.size >= PARALLEL_FROM_BYTES and (os.cpu_count() or 1) > 1
        self._binary: IO[bytes] | None = None
        self._child: ChildStager | None = None

    def rows(self) -> Iterator[csv_io.Row]:
        """The rows, read in this process (the import stages them here)."""
        with self.path.open("rb") as binary:
            self._binary = binary
            reader = csv_io.CsvReader(csv_io.text_stream(binary))
            self.header = reader.header.columns
            yield from reader

    def staged_by_child(self, directory: Path, batch_size: int) -> Iterator[StagedBatch]:
        """The batches of the writing pass, read and staged by a child process."""
        self._child = ChildStager(self.path, directory, batch_size=batch_size)
        for batch in self._child:
            self.header = self._child.header
            yield batch

    def position(self) -> int:
        if self._child is not None:
            return self._child.position
        binary = self._binary
        return self.size if binary is None or binary.closed else binary.tell()


class _ErrorsFile:
    """`--errors FILE.csv`: every bad row with its line, the reason and its fields."""

    def __init__(self, path: Path, source: _File) -> None:
        self.path = path
        self.source = source
        self.count = 0
        self._handle = path.open("w", encoding="utf-8", newline="")
        self._writer: Any = None

    def __call__(self, bad: csv_io.BadRow) -> None:
        if self._writer is None:
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "reason", *self.source.header])
        self._writer.writerow([bad.line, bad.reason, *bad.fields])
        self.count += 1

    def close(self) -> None:
        self._handle.close()


@app.command("import")
def import_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV file.")
    ],
    user: UserOption,
    strict: Annotated[
        bool, typer.Option("--strict", help="Any bad row aborts the import; nothing is written.")
    ] = False,
    errors_file: Annotated[
        Path | None,
        typer.Option("--errors", help="Write every bad row (line, reason, fields) to this CSV."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Rows per committed batch.")
    ] = importer.BATCH_SIZE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Imports contacts from a CSV file (upsert by phone number, batches committed as
    they go). See docs/import-export.md for the columns and rules."""
    source = _File(file)
    sink = _ErrorsFile(errors_file, source) if errors_file is not None else None
    db = database()
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]:>10,} rows"),
        TextColumn("{task.fields[rate]:>8,.0f} rows/s"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task("import", total=source.size or 1, rows=0, rate=0.0)

    def on_batch(report: importer.ImportReport) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        done = report.rows + report.invalid
        progress.update(task, completed=source.position(), rows=done, rate=done / elapsed)

    try:
        with progress:
            report = importer.import_contacts(
                db,
                user_id=user,
                open_rows=source.rows,
                open_batches=source.staged_by_child if source.parallel else None,
                strict=strict,
                batch_size=batch_size,
                on_invalid=sink,
                on_batch=on_batch,
            )
    except importer.ImportStopped as exc:
        _print_report(exc.report, time.perf_counter() - started, as_json=as_json, sink=sink)
        raise fail(exc) from None
    except errors.SegmentiError as exc:
        if sink is not None:
            sink.close()
            err_console.print(f"{sink.count:,} bad row(s) written to {sink.path}")
        raise fail(exc) from None
    finally:
        db.dispose()
    _print_report(report, time.perf_counter() - started, as_json=as_json, sink=sink)


def _print_report(
    report: importer.ImportReport, elapsed: float, *, as_json: bool, sink: _ErrorsFile | None
) -> None:
    if sink is not None:
        sink.close()
    rate = (report.rows + report.invalid) / elapsed if elapsed > 0 else 0.0
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "seconds": round(elapsed, 3)}))
        return
    table = Table("created", "updated", "invalid", "batches committed", "through line", "rows/s")
    table.add_row(
        f"{report.created:,}",
        f"{report.updated:,}",
        f"{report.invalid:,}",
        f"{report.batches:,}",
        f"{report.committed_through_line:,}",
        f"{rate:,.0f}",
    )
    console.print(table)
    if report.first_invalid:
        bad = Table("line", "reason", "phone_number", title="First invalid rows (not imported)")
        for row in report.first_invalid:
            shown = row.as_dict()
            bad.add_row(str(shown["line"]), shown["reason"], shown["value"])
        console.print(bad)
    if sink is not None:
        console.print(f"{sink.count:,} bad row(s) written to {sink.path}")


@app.command("export")
def export_command(
    user: UserOption,
    segment: Annotated[
        int | None, typer.Option("--segment", help="Only this segment's members.")
    ] = None,
    include_opted_out: Annotated[
        bool,
        typer.Option(
            "--include-opted-out", help="With --segment: also members that have opted out."
        ),
    ] = False,
    has_opted_out: Annotated[
        str | None,
        typer.Option(
            "--has-opted-out",
            help="With --segment: only members that have (1) or have not (0) opted out.",
        ),
    ] = None,
) -> None:
    """Writes contacts as CSV (the columns an import reads) to standard output. A
    segment's members are chosen as its member list chooses them: without the opted-out
    ones unless asked."""
    db = database()
    try:
        choice = OptOuts(
            include_opted_out=include_opted_out,
            has_opted_out=None
            if has_opted_out is None or not has_opted_out.strip()
            else parse_bool("has_opted_out", has_opted_out),
        )
        with db.read() as session:
            if not auth.user_exists(session, user_id=user):
                raise errors.NotFound(f"user {user} does not exist")
            if segment is None:
                started = export.start_export(session, user_id=user)
            else:
                started = segment_export.start_export(
                    session, user_id=user, segment_id=segment, opt_outs=choice
                )
        out = sys.stdout.buffer
        for chunk in export.export_csv(db, started):
            out.write(chunk.encode("utf-8"))
        out.flush()
    except errors.SegmentiError as exc:
        raise fail(exc) from None
    finally:
        db.dispose()
