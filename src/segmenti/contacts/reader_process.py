"""Reading and staging an import file in a second process, one batch ahead of the writer.

Parsing, validating, normalizing and staging a batch (`staging.py`) costs about as much
CPU as writing it, and threads would not help (the GIL). A child process reads the
file and stages each batch into a file of its own, then tells the parent over a pipe;
the parent writes that batch into the database while the child stages the next one
(the second core). The child stays at most `AHEAD` batches ahead: it waits for the
parent's acknowledgement of a batch before staging past it, so disk and memory stay
flat whatever the file's size. The child exits on its own when the parent goes away
(its next send or receive fails), so a killed import leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from segmenti import errors
from segmenti.contacts import csv_io, staging
from segmenti.contacts.staging import StagedBatch

# The first batch is small, so that the writer starts at once instead of waiting for a
# whole batch to be staged; the next ones grow (`staging.stage_batches`).
FIRST_BATCH = 2_000
# Batches staged but not yet acknowledged by the parent: the one it is writing and the
# one waiting for it.
AHEAD = 2


def _stage(path: str, directory: str, batch_size: int, conn: Connection) -> None:
    try:
        with open(path, "rb") as binary:
            reader = csv_io.CsvReader(csv_io.text_stream(binary))
            conn.send(("header", reader.header.columns))
            batches = staging.stage_batches(
                reader,
                Path(directory),
                batch_size=batch_size,
                first_size=FIRST_BATCH,
                position=binary.tell,
            )
            waiting = 0
            for batch in batches:
                conn.send(("batch", _flat(batch)))
                waiting += 1
                while waiting >= AHEAD:
                    conn.recv()  # the parent is done with the oldest batch
                    waiting -= 1
        conn.send(("done",))
    except errors.SegmentiError as exc:
        # Exceptions with keyword-only arguments do not survive pickling; their parts do.
        conn.send(("error", exc.detail, exc.parameter))
    except (BrokenPipeError, ConnectionResetError, EOFError):  # the parent is gone
        return
    finally:
        conn.close()


# Batches cross the pipe as plain tuples (the bad rows' dataclasses would cost more).


def _flat(batch: StagedBatch) -> tuple[Any, ...]:
    invalid = [(bad.line, bad.reason, bad.fields) for bad in batch.invalid]
    path = None if batch.path is None else str(batch.path)
    return (path, batch.rows, batch.last_line, invalid, batch.position)


def _batch(flat: tuple[Any, ...]) -> StagedBatch:
    path, rows, last_line, invalid, position = flat
    return StagedBatch(
        None if path is None else Path(path),
        rows,
        last_line,
        [csv_io.BadRow(*bad) for bad in invalid],
        position,
    )


class ChildStager:
    """The staged batches of a CSV file, staged by a child process into `directory`.
    `header` and `position` (bytes read so far) follow the child's progress.

    The child is `python -m segmenti.contacts.reader_process`, not a multiprocessing
    spawn: that would first import the parent's main module (the whole CLI, about
    half a second) before reading a row, and the writer waits for the first batch."""

    def __init__(self, path: Path, directory: Path, *, batch_size: int) -> None:
        self.path = path
        self.directory = directory
        self.batch_size = batch_size
        self.header: tuple[str, ...] = ()
        self.position = 0

    def __iter__(self) -> Iterator[StagedBatch]:
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", __name__, str(self.path), str(self.directory),
                   str(self.batch_size), str(theirs.fileno())]  # fmt: skip
        # No shell; this interpreter running this module on the import's own arguments.
        process = subprocess.Popen(command, pass_fds=(theirs.fileno(),))  # noqa: S603
        theirs.close()
        parent = Connection(ours.detach())
        try:
            while True:
                try:
                    message: tuple[Any, ...] = parent.recv()
                except (EOFError, ConnectionResetError):
                    raise errors.SegmentiError("the file reader process stopped") from None
                kind = message[0]
                if kind == "batch":
                    batch = _batch(message[1])
                    self.position = batch.position
                    yield batch
                    # (Unless the child has staged its last batch and exited.)
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        parent.send("done")
                elif kind == "header":
                    self.header = message[1]
                elif kind == "error":
                    raise errors.Invalid(message[1], parameter=message[2])
                else:
                    return
        finally:
            parent.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(arguments: list[str]) -> None:
    path, directory, batch_size, descriptor = arguments
    # Ctrl-C reaches the whole process group: the parent stops the import (and this
    # process, by closing the connection); a traceback from here would only be noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Millions of short-lived rows, dicts and tuples, none in a reference cycle: the
    # cycle collector would find nothing and cost an eighth of this process's time.
    gc.disable()
    _stage(path, directory, int(batch_size), Connection(int(descriptor)))


if __name__ == "__main__":
    main(sys.argv[1:])
