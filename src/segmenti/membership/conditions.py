"""The conditions a filter can put on a custom parameter: one registered object each.

A condition is everything the code needs to know about it, in one place:
  * its SQL: the clause a `contact_parameters` row satisfies (`held_sql`), always
    bound parameters, never a pattern or a pasted string;
  * its index role in a count from scratch (`IndexRange`): whether a count may walk
    its range of the covering (user_id, key, value, contact_id) index and probe the
    other conditions from there, and in which order conditions are probed;
  * its Python predicate (`value_test`), evaluated on contact writes and, once per
    distinct value, by the recount's byte columns;
  * how its holders become members (`negated`), the same in SQL, in Python and in the
    recount's masks: a `not_*` condition holds for every contact that does not hold its
    positive twin, including the contacts without the key;
  * its wording: the `label` people read ("does not contain") and the `phrase` an
    explanation of membership names it with.
Each family (`exact`, `contains`, ...) is written once; its `not_*` twin is derived.
Adding a condition is one registration here (`_register`, or `_register_substring` and
`_register_comparison` for those families); `filters.py` (SQL, counts,
Python), `segments/recount.py` and `segments/members.py` walk the registry, and
`tests/unit/test_filters.py` checks that every registered condition has all of the
above and that its SQL and Python agree on both backends.

The value a condition compares with reaches it as an `Operand`: case-folded, and as a
number when it is one, exactly as stored parameters are (`filters.fold`,
`filters.parse_number`); this module never folds or parses, so both sides of every
comparison are derived by the same code.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Integer, Text, and_, bindparam, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# A stored parameter as conditions read it: its value case-folded, and its number or
# None (the value_folded and value_number columns of contact_parameters).
ValueTest = Callable[[str, float | None], bool]


@dataclass(frozen=True, slots=True)
class Operand:
    """The value of a filter's condition, derived like a stored parameter's."""

    folded: str
    number: float | None  # None unless the value is a number (always one for `numeric`)
    # `in` / `not_in`: every value of the list, folded, in the order given, deduplicated
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexRange:
    """How a count from scratch reads the covering indexes for a condition's positive
    form (docs/counts.md, `filters.count_sql`).

    `order`: how narrow a range of the (user_id, key, value) indexes it reads, lowest
    first; the count probes conditions in this order. `drives`: the range is narrow
    enough (one value, one prefix) for the count to walk it and probe everything else
    from the contacts in it; a condition that reads every value of its key, or half of
    a number line, is only ever probed."""

    order: int
    drives: bool


@dataclass(frozen=True, slots=True)
class ConditionKind:
    """One registered condition (`exact`, `not_contains`, ...): see the module doc."""

    name: str  # as stored in a segment's settings and named by the API
    label: str  # what a person reads: "is", "does not contain"
    # Holds for every contact that does not hold the positive twin (a contact without
    # the key holds no positive condition): `member_sql`, `member_mask`, and in Python
    # `filters.to_python`, which inlines it.
    negated: bool
    numeric: bool  # its value must be a number (`filters.parse_number`)
    # What its `value` is (`filters.build_tree` checks it): "text" (any string), "list"
    # (1 to MAX_CHOICES strings), "date" (YYYY-MM-DD or whole days from today, `-30d`),
    # or "none" (no value at all).
    takes: str
    index: IndexRange  # of the positive twin: a negation reads the same range
    # (a contact_parameters table or alias, operand) -> the positive twin's clause
    _sql: Callable[[Any, Operand], ColumnElement[bool]]
    # operand -> the positive twin's test of one stored (folded value, number)
    _test: Callable[[Operand], ValueTest]

    # -- SQL ----------------------------------------------------------------------
    def held_sql(self, table: Any, operand: Operand) -> ColumnElement[bool]:
        """A row of `table` (contact_parameters or an alias) satisfies the positive
        twin; the contacts holding the condition are the rows' contact_ids, or, when
        `negated`, every other contact of the user (`member_sql`)."""
        return self._sql(table, operand)

    def member_sql(self, held: ColumnElement[bool]) -> ColumnElement[bool]:
        """Membership from "holds the positive twin" (`IN`, `EXISTS`): as is, or its
        complement (`NOT IN`, `NOT EXISTS`). contact_id is never NULL, so `NOT IN` is
        the exact complement of `IN`."""
        return ~held if self.negated else held

    # -- count from scratch -------------------------------------------------------
    @property
    def drives_count(self) -> bool:
        """A count may walk this condition's index range (a narrow positive one)."""
        return self.index.drives and not self.negated

    # -- Python -------------------------------------------------------------------
    def value_test(self, operand: Operand) -> ValueTest:
        """The positive twin's test of one stored parameter (folded value, number)."""
        return self._test(operand)

    # -- recount ------------------------------------------------------------------
    def member_mask(self, held: int, everyone: int) -> int:
        """Membership as a recount mask (one 0/1 byte per contact id, read as an int),
        from the mask of the contacts holding the positive twin and the mask of all
        of them: as `member_sql` says it in SQL."""
        return everyone ^ held if self.negated else held

    # -- wording ------------------------------------------------------------------
    def phrase(self, key: str, value: str | tuple[str, ...] | None) -> str:
        """The condition as an explanation of membership names it: `plan exact 'pro'`
        (its stored name, as the explanation's `condition` field gives it)."""
        if value is None:
            return f"{key} {self.name}"
        if isinstance(value, tuple):
            shown = ", ".join(repr(item) for item in value[:5])
            more = f", ... ({len(value)} values)" if len(value) > 5 else ""
            return f"{key} {self.name} [{shown}{more}]"
        return f"{key} {self.name} {value!r}"


REGISTRY: dict[str, ConditionKind] = {}


def _register(
    name: str,
    label: str,
    *,
    sql: Callable[[Any, Operand], ColumnElement[bool]],
    test: Callable[[Operand], ValueTest],
    index: IndexRange,
    numeric: bool = False,
    negated_label: str | None = None,
    takes: str = "text",
) -> None:
    """Registers a family: its positive condition and, with `negated_label`, its
    `not_` twin (the same SQL, test and index range; the complement of its holders)."""
    forms = [(name, label, False)]
    if negated_label is not None:
        forms.append((f"not_{name}", negated_label, True))
    for form_name, form_label, negated in forms:
        assert form_name not in REGISTRY, form_name
        REGISTRY[form_name] = ConditionKind(
            name=form_name,
            label=form_label,
            negated=negated,
            numeric=numeric,
            takes=takes,
            index=index,
            _sql=sql,
            _test=test,
        )


def named(name: str) -> ConditionKind:
    """The registered condition of that name (names are validated on input: a stored
    filter only holds registered ones)."""
    return REGISTRY[name]


# -- the conditions -------------------------------------------------------------------


def _exact_test(operand: Operand) -> ValueTest:
    folded = operand.folded  # bound once: the test runs per filter segment per contact write
    return lambda text, _number: text == folded


_register(
    "exact",
    "is",
    negated_label="is not",
    # One (key, value) range of the index.
    index=IndexRange(order=0, drives=True),
    sql=lambda table, operand: table.c.value_folded == operand.folded,
    test=_exact_test,
)


def _register_substring(
    name: str,
    label: str,
    negated_label: str,
    *,
    index: IndexRange,
    sql: Callable[[ColumnElement[str], str], ColumnElement[bool]],
    test: Callable[[str, str], bool],
) -> None:
    """A family that finds the folded value in the stored one: `sql(column, folded)`
    and `test(stored, folded)`. An empty value is contained in, starts and ends every
    string, in SQL as in Python.

    Not LIKE '%...%': with a leading % both backends try the pattern at every position
    of the value, character by character (50 conditions of 512 characters over 3,000
    values of 512 took 36 s on SQLite, issue 17). instr/strpos, a suffix compare and a
    prefix range are plain string operations; the value is a bound parameter and never
    a pattern."""

    def held_sql(table: Any, operand: Operand) -> ColumnElement[bool]:
        if operand.folded == "":
            return true()
        return sql(table.c.value_folded, operand.folded)

    def value_test(operand: Operand) -> ValueTest:
        folded = operand.folded
        return lambda text, _number: test(text, folded)

    _register(name, label, negated_label=negated_label, index=index, sql=held_sql, test=value_test)


_register_substring(
    "contains",
    "contains",
    "does not contain",
    # Reads every value of the key.
    index=IndexRange(order=5, drives=False),
    sql=lambda column, folded: position_of(column, folded) > 0,
    test=operator.contains,
)
_register_substring(
    "starts_with",
    "starts with",
    "does not start with",
    # A prefix range of the index.
    index=IndexRange(order=1, drives=True),
    sql=lambda column, folded: _prefix_range(column, folded),
    test=str.startswith,
)
_register_substring(
    "ends_with",
    "ends with",
    "does not end with",
    # Reads every value of the key.
    index=IndexRange(order=4, drives=False),
    sql=lambda column, folded: last_characters(column, len(folded)) == folded,
    test=str.endswith,
)


def _register_comparison(
    name: str, label: str, *, index: IndexRange, compare: Callable[[Any, float], Any]
) -> None:
    """A family comparing the stored number with the value's (`compare`: an operator
    of Python and of SQLAlchemy columns alike). A value that is not a number holds no
    comparison: value_number is NULL in SQL, None in Python. The API has no negated
    comparisons, so these have no twin."""

    def held_sql(table: Any, operand: Operand) -> ColumnElement[bool]:
        return compare(table.c.value_number, _number_of(operand))

    def value_test(operand: Operand) -> ValueTest:
        limit = _number_of(operand)
        return lambda _text, number: number is not None and compare(number, limit)

    _register(name, label, numeric=True, index=index, sql=held_sql, test=value_test)


def _number_of(operand: Operand) -> float:
    assert operand.number is not None  # a numeric condition's value is validated a number
    return operand.number


# Half-open ranges of the (user_id, key, value_number) index.
_register_comparison(
    "bigger_than", "is greater than", index=IndexRange(order=2, drives=False), compare=operator.gt
)
_register_comparison(
    "lower_than", "is less than", index=IndexRange(order=3, drives=False), compare=operator.lt
)

# The conditions of the reference API, which its flat `filters_custom_parameter_*`
# fields take; the ones registered below them only come in a filter tree.
REFERENCE_NAMES: tuple[str, ...] = tuple(REGISTRY)

# Most values one `in` / `not_in` condition lists.
MAX_CHOICES = 1_000


# Lists up to this long are a plain IN of bound values, which both backends answer
# with one index look-up per value; longer ones are one bound list (`one_of`), which
# SQLite answers by reading every value of the key. 100 conditions of this many values
# stay far below any backend's limit of bound parameters.
INLINE_CHOICES = 100


def _listed(column: ColumnElement[str], choices: tuple[str, ...]) -> ColumnElement[bool]:
    if len(choices) <= INLINE_CHOICES:
        return column.in_(choices)
    return one_of(column, choices)


def _in_test(operand: Operand) -> ValueTest:
    choices = frozenset(operand.choices)
    return lambda text, _number: text in choices


_register(
    "in",
    "is one of",
    negated_label="is none of",
    takes="list",
    # One (key, value) range of the index per value listed.
    index=IndexRange(order=0, drives=True),
    sql=lambda table, operand: _listed(table.c.value_folded, operand.choices),
    test=_in_test,
)
_register(
    "exists",
    "is present",
    negated_label="is absent",
    takes="none",
    # Every value of the key.
    index=IndexRange(order=6, drives=False),
    sql=lambda _table, _operand: true(),
    test=lambda _operand: lambda _text, _number: True,
)

# A stored value is a date when it starts with one: "2026-03-01", "2026-03-01T10:00Z".
# Dates of that shape order as their text does, so a date condition compares the
# first ten characters as text, in SQL as in Python.
_DATE_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _date_of(operand: Operand) -> str:
    # A date condition's operand is the absolute day (`filters.Condition.on` resolves a
    # relative one against the clock).
    return operand.folded


def _register_date(
    name: str,
    label: str,
    *,
    index: IndexRange,
    held_range: Callable[[ColumnElement[str], str], ColumnElement[bool]],
    compare: Callable[[str, str], bool],
) -> None:
    """A condition comparing the day a stored value starts with to the operand's day:
    `held_range(column, day)` is the index range of the values whose first ten
    characters `compare` true with the day; the date shape is checked besides."""

    def held_sql(table: Any, operand: Operand) -> ColumnElement[bool]:
        column = table.c.value_folded
        return and_(held_range(column, _date_of(operand)), starts_with_date(column))

    def value_test(operand: Operand) -> ValueTest:
        day = _date_of(operand)
        return lambda text, _number: (
            _DATE_PREFIX.match(text) is not None and compare(text[:10], day)
        )

    _register(name, label, takes="date", index=index, sql=held_sql, test=value_test)


def _after_day(column: ColumnElement[str], day: str) -> ColumnElement[bool]:
    # The first ten characters are after the day exactly when the whole value sorts at
    # or above the least string after every string starting with the day: an index
    # range, like `starts_with`'s.
    upper = prefix_upper_bound(day)
    assert upper is not None  # a day is ASCII digits and dashes
    return column >= upper


# Half of the key's values each.
_register_date(
    "date_after",
    "is after",
    index=IndexRange(order=2, drives=False),
    held_range=_after_day,
    compare=operator.gt,
)
_register_date(
    "date_before",
    "is before",
    index=IndexRange(order=3, drives=False),
    held_range=lambda column, day: column < day,
    compare=operator.lt,
)

# The flat reference fields take the reference's conditions (`NAMES`); a filter tree
# takes every registered one (`TREE_NAMES`), in the order the API lists them.
NAMES: tuple[str, ...] = REFERENCE_NAMES
TREE_NAMES: tuple[str, ...] = tuple(REGISTRY)
# The condition of a filter's condition given without one.
DEFAULT = "exact"


# -- SQL constructs the conditions compile to -----------------------------------------


class position_of(FunctionElement[int]):  # noqa: N801 - named like the SQL functions
    """Where `needle` first occurs in `text`, counted in characters from 1; 0 when it
    does not (SQLite's instr, PostgreSQL's strpos: the same function under two names)."""

    type = Integer()
    inherit_cache = True


@compiles(position_of, "sqlite")
def _position_of_sqlite(element: position_of, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(position_of, "postgresql")
def _position_of_postgresql(element: position_of, compiler: Any, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


class last_characters(FunctionElement[str]):  # noqa: N801 - named like the SQL functions
    """The last `count` characters of `text` (all of it when shorter). Characters, not
    bytes, on both backends, as Python's len() counts them: SQLite's substr(text, -n),
    PostgreSQL's right(text, n). `count` is at least 1 (an empty suffix is never asked)."""

    type = Text()
    inherit_cache = True


@compiles(last_characters, "sqlite")
def _last_characters_sqlite(element: last_characters, compiler: Any, **kw: Any) -> str:
    text, count = element.clauses
    return f"substr({compiler.process(text, **kw)}, -{compiler.process(count, **kw)})"


@compiles(last_characters, "postgresql")
def _last_characters_postgresql(element: last_characters, compiler: Any, **kw: Any) -> str:
    return f"right({compiler.process(element.clauses, **kw)})"


def _prefix_range(column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range that a plain index answers on both
    backends: prefix <= value < the least string above every string starting with it.
    Both compare in code point order: SQLite's BINARY collation and PostgreSQL's "C"
    (the collation of value_folded, see tables.py) compare UTF-8 bytes, which order
    as code points do. SQLite never uses an index for this LIKE (its LIKE is case-
    insensitive, the index is not), nor PostgreSQL for a generic plan of a LIKE whose
    pattern is a bound parameter."""
    upper = prefix_upper_bound(prefix)
    if upper is None:
        return column >= prefix
    return and_(column >= prefix, column < upper)


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with `prefix` (code point
    order), or None when there is none (a prefix made only of U+10FFFF)."""
    chars = list(prefix)
    while chars:
        following = ord(chars.pop()) + 1
        if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters of a text
            following = 0xE000
        if following <= 0x10FFFF:
            return "".join(chars) + chr(following)
    return None


class one_of(FunctionElement[bool]):  # noqa: N801 - named like the SQL functions
    """`column` equals one of `values`, with the whole list bound as ONE parameter:
    PostgreSQL takes at most 65,535 bound parameters a statement, and a filter may
    list 100 x 1,000 values. PostgreSQL binds a text array (`= ANY(...)`), SQLite a
    JSON array it reads with `json_each`. Both binds are built; each dialect renders
    (and so sends) only its own."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, column: ColumnElement[str], values: tuple[str, ...]) -> None:
        super().__init__(
            column,
            bindparam(None, json.dumps(list(values), ensure_ascii=False), type_=Text()),
            bindparam(None, list(values), type_=ARRAY(Text())),
        )


@compiles(one_of, "sqlite")
def _one_of_sqlite(element: one_of, compiler: Any, **kw: Any) -> str:
    column, listed, _array = element.clauses
    # Compiled SQL elements only: the list is one bound parameter.
    rendered_list = compiler.process(listed, **kw)
    return f"{compiler.process(column, **kw)} IN (SELECT value FROM json_each({rendered_list}))"  # noqa: S608


@compiles(one_of, "postgresql")
def _one_of_postgresql(element: one_of, compiler: Any, **kw: Any) -> str:
    column, _listed, array = element.clauses
    return f"{compiler.process(column, **kw)} = ANY({compiler.process(array, **kw)})"


class starts_with_date(FunctionElement[bool]):  # noqa: N801 - named like the SQL functions
    """`text` starts with ten characters shaped YYYY-MM-DD (ASCII digits). The pattern
    is a constant of this module, never user text."""

    type = Boolean()
    inherit_cache = True


@compiles(starts_with_date, "sqlite")
def _starts_with_date_sqlite(element: starts_with_date, compiler: Any, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return f"(substr({text}, 1, 10) GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]')"


@compiles(starts_with_date, "postgresql")
def _starts_with_date_postgresql(element: starts_with_date, compiler: Any, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return f"({text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
