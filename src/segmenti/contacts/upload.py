"""An uploaded CSV file, imported: the API's `POST /api/contacts/import` and the
dashboard's import page both hand their upload here."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any

from segmenti.contacts import csv_io, importer
from segmenti.db.engine import Database

# Smaller than the CLI's batches: in the server, a batch's rows are held and staged in the
# serving process itself, and on SQLite each batch holds the write lock every other
# request's writes wait for (about 0.4 s for 20,000 rows instead of 2 s).
UPLOAD_BATCH_SIZE = 20_000


class _Unclosable(io.RawIOBase):
    """The uploaded file as seen by one reading pass: closing the pass's text wrapper
    must not close the upload, which a strict import reads twice."""

    def __init__(self, binary: IO[bytes]) -> None:
        self._binary = binary

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._binary.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        pass


def import_upload(
    db: Database, *, user_id: int, upload: IO[bytes], strict: bool
) -> importer.ImportReport:
    """Imports an uploaded CSV file (a seekable binary file: a strict import reads it
    twice)."""

    def rows() -> Iterator[csv_io.Row]:
        upload.seek(0)
        binary = io.BufferedReader(_Unclosable(upload))
        yield from csv_io.CsvReader(csv_io.text_stream(binary))

    return importer.import_contacts(
        db, user_id=user_id, open_rows=rows, strict=strict, batch_size=UPLOAD_BATCH_SIZE
    )
