"""Large batches of rows: executemany for a bulk segment's new contacts, and a list of
values bound as one parameter (`listed`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import String, Subquery, Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
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


def listed(session: Session, values: Sequence[Any], *, type_: Any) -> Subquery:
    """The values as rows of one column, `value`, bound as one parameter.

    One statement then looks up or inserts 100,000 numbers or ids, where IN lists of
    bound parameters need a statement per few hundred (every backend caps them) and
    cost more to bind than the database spends answering. On SQLite the parameter is a
    JSON array (`json_each`); on PostgreSQL a `text_array`, cast to the column's type."""
    if session.get_bind().dialect.name == "postgresql":
        array = text_array(values)
        if not isinstance(type_, String) and not (
            isinstance(type_, type) and issubclass(type_, String)
        ):
            array = cast(array, ARRAY(type_))
        return select(func.unnest(array, type_=type_).label("value")).subquery()
    payload = literal(json.dumps(list(values)), String)
    rows = func.json_each(payload).table_valued("value")
    return select(rows.c.value.label("value")).subquery()


def text_array(values: Sequence[Any]) -> Any:
    """PostgreSQL: the values (None: NULL) as a `text[]`, bound as ONE comma-joined text
    that the server splits (`string_to_array`, '' read as NULL). psycopg adapts a Python
    list element by element, which for 100,000 values costs more than the server's split
    (binding and counting 100,000 numbers: 305 ms as a list, 37 ms as one text). Values
    that a split cannot give back (one holding a comma, or an empty text) go as a list."""
    texts = ["" if value is None else str(value) for value in values]
    # The split gives every value back but a text holding a comma or an empty one (read
    # as NULL), and a lone NULL (an empty text splits into no element at all).
    exact = all(
        "," not in text and (text or value is None)
        for value, text in zip(values, texts, strict=True)
    ) and not (len(values) == 1 and values[0] is None)
    if not exact:
        return literal([None if value is None else str(value) for value in values], ARRAY(Text))
    joined = ",".join(texts)
    return func.string_to_array(literal(joined, Text), ",", "", type_=ARRAY(Text))
