"""executemany for large batches of rows (a bulk segment's new contacts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from segmenti.db.tables import contacts


class BulkWriter:
    """executemany for large batches. On SQLite it hands tuples straight to the driver,
    converted by the columns' own SQLAlchemy bind processors, because SQLAlchemy's
    per-row parameter handling would cost more than the inserts themselves; elsewhere it
    goes through SQLAlchemy (whose insertmanyvalues batching is what PostgreSQL wants)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.raw = self.dialect.name == "sqlite"
        self._json = self._processor(contacts.c.custom_parameters)
        self._datetime = self._processor(contacts.c.datetime)

    def _processor(self, column: Any) -> Callable[[Any], Any]:
        processor = column.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        if not self.raw or processor is None:
            return lambda value: value
        return processor

    def json(self, value: dict[str, str]) -> Any:
        return self._json(value)

    def timestamp(self, value: Any) -> Any:
        return self._datetime(value)

    def executemany(
        self, statement: Any, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        if not rows:
            return
        if self.raw:
            compiled = statement.compile(dialect=self.dialect, column_keys=list(columns))
            assert list(compiled.positiontup) == list(columns)
            self.session.connection().exec_driver_sql(str(compiled), rows)
        else:
            self.session.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])
