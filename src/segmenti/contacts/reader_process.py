"""Reading an import file in a second process, one chunk of rows ahead of the writer.

Parsing, validating and normalizing a row costs about as much CPU as writing it, and
threads would not help (the GIL; worse, SQLite's driver releases it on every row and
then waits for a parsing thread to give it back). A child process reads the file and
sends parsed rows in pickled chunks over a pipe; the pipe's buffer is the only queue,
so at most a chunk or two is in flight and memory stays flat. The child exits on its
own when the parent goes away (its next send fails), so a killed import leaves no
orphan behind.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from segmenti import errors
from segmenti.contacts import csv_io
from segmenti.phones import PhoneInfo

CHUNK_ROWS = 2_000


def _read(path: str, conn: Connection) -> None:
    try:
        with open(path, "rb") as binary:
            reader = csv_io.CsvReader(csv_io.text_stream(binary))
            conn.send(("header", reader.header.columns))
            chunk: list[Any] = []
            for row in reader:
                chunk.append(_flat(row))
                if len(chunk) >= CHUNK_ROWS:
                    conn.send(("rows", chunk, binary.tell()))
                    chunk = []
            conn.send(("rows", chunk, binary.tell()))
        conn.send(("done",))
    except errors.SegmentiError as exc:
        # Exceptions with keyword-only arguments do not survive pickling; their parts do.
        conn.send(("error", exc.detail, exc.parameter))
    except (BrokenPipeError, ConnectionResetError):  # the parent is gone
        return
    finally:
        conn.close()


# Rows cross the pipe as plain tuples: pickling the dataclasses would cost more than
# parsing the row again.


def _flat(row: csv_io.Row) -> tuple[Any, ...]:
    if isinstance(row, csv_io.BadRow):
        return (row.line, row.reason, row.fields)
    phone = row.phone
    return (
        row.line,
        phone.e164,
        phone.country_code,
        phone.continent_code,
        row.name,
        row.has_opted_out,
        row.custom_parameters,
    )


def _rows(flat: list[tuple[Any, ...]]) -> Iterator[csv_io.Row]:
    contact_row, bad_row, phone_info = csv_io.ContactRow, csv_io.BadRow, PhoneInfo
    for values in flat:
        if len(values) == 3:
            yield bad_row(*values)
        else:
            line, e164, country, continent, name, opted_out, custom = values
            yield contact_row(line, phone_info(e164, country, continent), name, opted_out, custom)


class ChildReader:
    """Rows of a CSV file, parsed in a child process. `header` and `position` (bytes
    read so far) follow the child's progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: tuple[str, ...] = ()
        self.position = 0

    def __iter__(self) -> Iterator[csv_io.Row]:
        # spawn, not fork: the parent may run threads (Rich's progress refresh), and a
        # forked child would inherit their locks in whatever state they were.
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_read, args=(str(self.path), sender), daemon=True)
        process.start()
        sender.close()
        try:
            while True:
                try:
                    message: tuple[Any, ...] = receiver.recv()
                except EOFError:
                    raise errors.SegmentiError("the file reader process stopped") from None
                kind = message[0]
                if kind == "rows":
                    self.position = message[2]
                    yield from _rows(message[1])
                elif kind == "header":
                    self.header = message[1]
                elif kind == "error":
                    raise errors.Invalid(message[1], parameter=message[2])
                else:
                    return
        finally:
            receiver.close()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
