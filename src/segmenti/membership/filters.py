"""Filter segments: their definition, their validation, and their compilations.

A filter is data (`Filter`), stored as the segment's JSON settings: conditions on
custom parameters (each naming a registered condition, `conditions.py`), countries and
continents. It compiles to
  * a bound SQLAlchemy expression over `contacts` (`to_sql`), for member lists; every
    value is a bound parameter and every key is compared as a value, never spliced
    into SQL or a JSON path;
  * a COUNT driven from the parameter index (`count_sql`), for counting from scratch
    (docs/counts.md);
  * a Python predicate (`to_python`), evaluated against one contact when it is written,
    to keep the maintained `total_contacts` of every filter segment exact.
Each compilation walks the conditions' registry; none names a condition. All read the
same derived form of a parameter: its value case-folded (`fold`) and, when it is a
number, that number (`parse_number`). Tests check they agree.

`build` makes a `Filter` from what a person typed and checks the domain's rules
(`InvalidFilter`); the parameter names of a request are the API input layer's
(`segments/forms.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Select, and_, exists, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from segmenti import errors, phones
from segmenti.db.tables import contact_parameters, contacts
from segmenti.db.tenant import Tenant
from segmenti.membership import conditions
from segmenti.membership.conditions import ConditionKind, Operand

MAX_KEY_LENGTH = 64
MAX_VALUE_LENGTH = 512

# An optional sign, digits with an optional decimal part, or a bare decimal part.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)", re.ASCII)


def fold(text: str) -> str:
    """Case-insensitive form of a value: Unicode case folding, the same on every backend."""
    return text.casefold()


def parse_number(text: str) -> float | None:
    """The value as a number in the SPEC's sense, or None (`1e2`, `n/a`, `""`, `1,5`)."""
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        return None
    return float(stripped)


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a filter: `key`'s value satisfies the registered condition
    named `condition` (`conditions.REGISTRY`) with `value`."""

    key: str
    condition: str
    value: str

    def as_settings(self) -> dict[str, str]:
        return {"key": self.key, "condition": self.condition, "value": self.value}

    @property
    def kind(self) -> ConditionKind:
        return conditions.named(self.condition)

    @property
    def operand(self) -> Operand:
        """The value, derived like a stored parameter's value."""
        return Operand(fold(self.value), parse_number(self.value))


@dataclass(frozen=True, slots=True)
class Filter:
    conditions: tuple[Condition, ...] = ()
    countries: tuple[str, ...] | None = None
    continents: tuple[str, ...] | None = None

    def as_settings(self) -> dict[str, Any]:
        """The segment's `settings`: only what was given."""
        settings: dict[str, Any] = {}
        if self.conditions:
            settings["filters_custom_parameters"] = [c.as_settings() for c in self.conditions]
        if self.countries is not None:
            settings["filters_countries"] = list(self.countries)
        if self.continents is not None:
            settings["filters_continents"] = list(self.continents)
        return settings

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Filter:
        conditions = tuple(
            Condition(str(c["key"]), str(c["condition"]), str(c["value"]))
            for c in settings.get("filters_custom_parameters", ())
        )
        countries = settings.get("filters_countries")
        continents = settings.get("filters_continents")
        return cls(
            conditions=conditions,
            countries=None if countries is None else tuple(countries),
            continents=None if continents is None else tuple(continents),
        )


class InvalidFilter(errors.Invalid):
    """A filter that breaks one of the domain's rules, said without naming a request
    parameter. `part` is what is wrong: "conditions" (too many), "key", "condition" or
    "value" of the condition at `position` (0-based, in the order given), "countries"
    or "continents". Each input layer names the parameter its own way: `detail_for`
    words the error with that name (`segments/forms.py` gives the API's field names,
    which the API's answers have always used)."""

    def __init__(
        self,
        problem: str,
        *,
        part: str,
        position: int | None = None,
        names_parameter: bool = True,
    ) -> None:
        self.part = part
        self.position = position
        # Follows the parameter's name ("must be ...", ": unknown ..."), or, when the
        # error names none, is the whole detail.
        self.problem = problem
        self.names_parameter = names_parameter
        name = part if position is None else f"{part}[{position}]"
        super().__init__(self.detail_for(name), parameter=name)

    def detail_for(self, parameter: str) -> str:
        """The error's detail, naming the offending parameter `parameter`."""
        return parameter + self.problem if self.names_parameter else self.problem


def build(
    given: Sequence[tuple[str, str, str]],
    *,
    countries: Sequence[str] | None = None,
    continents: Sequence[str] | None = None,
    max_conditions: int,
) -> Filter:
    """A validated filter from (key, condition, value) triples as typed and country and
    continent codes as picked (None: not restricted). A condition name is read case-
    insensitively and defaults to exact; codes are upper-cased and de-duplicated, empty
    ones skipped. Raises `InvalidFilter`, checking in this order: the number of
    conditions, each condition in turn, countries, continents."""
    if len(given) > max_conditions:
        raise InvalidFilter(
            f"a filter takes at most {max_conditions} conditions, got {len(given)}",
            part="conditions",
            names_parameter=False,
        )
    return Filter(
        conditions=tuple(
            _condition(position, key, condition, value)
            for position, (key, condition, value) in enumerate(given)
        ),
        countries=_codes(countries, "countries", phones.is_country, "ISO 3166-1 alpha-2 country"),
        continents=_codes(
            continents,
            "continents",
            phones.CONTINENTS.__contains__,
            "continent (AF, AN, AS, EU, NA, OC, SA)",
        ),
    )


def _condition(position: int, key: str, condition: str, value: str) -> Condition:
    def invalid(part: str, problem: str) -> InvalidFilter:
        return InvalidFilter(problem, part=part, position=position)

    if "\x00" in key or "\x00" in value:
        raise invalid("key" if "\x00" in key else "value", " must not contain NUL characters")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise invalid("key", f" must be 1 to {MAX_KEY_LENGTH} characters")
    condition = condition.strip().lower() or conditions.DEFAULT
    kind = conditions.REGISTRY.get(condition)
    if kind is None:
        raise invalid(
            "condition",
            f": unknown condition {condition[:40]!r}; allowed: {', '.join(conditions.NAMES)}",
        )
    if len(value) > MAX_VALUE_LENGTH:
        raise invalid("value", f" must be at most {MAX_VALUE_LENGTH} characters")
    if kind.numeric and parse_number(value) is None:
        raise invalid("value", f" must be a number for {condition}, got {value[:40]!r}")
    return Condition(key, condition, value)


def _codes(
    raw: Sequence[str] | None, part: str, known: Callable[[str], bool], what: str
) -> tuple[str, ...] | None:
    if raw is None:
        return None
    codes: list[str] = []
    for item in raw:
        code = item.strip().upper()
        if not code:
            continue  # an empty form field, as an HTML form sends for "none selected"
        if not known(code):
            raise InvalidFilter(f": unknown {what} {item[:20]!r}", part=part)
        if code not in codes:
            codes.append(code)
    # An empty list restricts nothing, like an absent one (a form with nothing picked).
    return tuple(codes) or None


# -- SQL ------------------------------------------------------------------------------


def to_sql(spec: Filter, *, user_id: int, correlated: bool = False) -> ColumnElement[bool]:
    """The filter as a WHERE clause over `contacts`, scoped to the user.

    Two shapes of the same set. Uncorrelated (default): each condition is `id IN
    (holders)`, which the database builds once per statement from the (user, key,
    value) indexes: best for counts and rare conditions. Correlated: each condition is
    `EXISTS (... WHERE contact_id = contacts.id ...)`, one primary-key probe per
    contact: best for a page of a dense segment read in id order, which then stops
    after one page instead of building every condition's holders first."""
    tenant = Tenant(user_id)
    clauses: list[ColumnElement[bool]] = [tenant.owns(contacts)]
    if spec.countries is not None:
        clauses.append(contacts.c.country_code.in_(spec.countries))
    if spec.continents is not None:
        clauses.append(contacts.c.continent_code.in_(spec.continents))
    for condition in spec.conditions:
        clauses.append(_condition_sql(condition, tenant=tenant, correlated=correlated))
    return and_(*clauses)


def _condition_sql(
    condition: Condition, *, tenant: Tenant, correlated: bool = False
) -> ColumnElement[bool]:
    kind = condition.kind
    if correlated:
        held = (
            select(contact_parameters.c.contact_id)
            .where(
                contact_parameters.c.contact_id == contacts.c.id,
                tenant.owns(contact_parameters),
                contact_parameters.c.key == condition.key,
                kind.held_sql(contact_parameters, condition.operand),
            )
            .correlate(contacts)
            .exists()
        )
        return kind.member_sql(held)
    holders = holders_sql(condition, user_id=tenant.user_id)
    held_in = kind.member_sql(contacts.c.id.in_(holders))
    if not kind.negated:
        return held_in
    # Members are the contacts NOT IN the holders. PostgreSQL cannot turn NOT IN into an
    # anti-join (NULL semantics), so it hashes the holders, and only while the hash fits
    # in work_mem: past it (about 100,000 holders with the default 4 MB) it scans the
    # holders once per contact, and a count at a million contacts ran past the
    # statement timeout. NOT EXISTS, the same set here (contact_id is never NULL),
    # plans as a hash anti-join whatever the size. SQLite keeps NOT IN: it builds the
    # holders' index once.
    probed = holders.where(contact_parameters.c.contact_id == contacts.c.id).correlate(contacts)
    return by_dialect(held_in, kind.member_sql(probed.exists()))


class by_dialect(FunctionElement[bool]):  # noqa: N801 - named like the SQL constructs
    """One of two predicates that select the same rows: the first on SQLite, the second
    on PostgreSQL, where each plans best."""

    type = Boolean()
    inherit_cache = True
    # A predicate already, like the two it stands for: nothing to compare with true.
    _is_implicitly_boolean = True


@compiles(by_dialect, "sqlite")
def _by_dialect_sqlite(element: by_dialect, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(list(element.clauses)[0], **kw))


@compiles(by_dialect, "postgresql")
def _by_dialect_postgresql(element: by_dialect, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(list(element.clauses)[1], **kw))


def holders_sql(condition: Condition, *, user_id: int) -> Select[Any]:
    """The contacts holding the key with a value that satisfies the condition's positive
    twin (`ConditionKind.member_sql` turns them into members). The (user_id, key,
    value) indexes answer it without touching contacts."""
    return (
        Tenant(user_id)
        .select(contact_parameters.c.contact_id)
        .where(
            contact_parameters.c.key == condition.key,
            condition.kind.held_sql(contact_parameters, condition.operand),
        )
    )


def count_sql(spec: Filter, *, user_id: int) -> Select[int]:
    """Members of the filter that have not opted out, as one COUNT, counted the way the
    indexes answer fastest; the same set as `to_sql` (tests check they agree).

    With an exact or starts_with condition, the count walks that condition's narrow
    range of the covering (user_id, key, value, contact_id) index and checks every other
    condition with an EXISTS probe of the (user_id, contact_id, key) primary key.
    When that condition is the whole filter, the contacts table is not read per member
    at all: the count is the walk's length minus the opted-out contacts in it, found by
    probing the index with the (usually short) list of the user's opted-out contacts
    from the (user_id, has_opted_out) index. Looking every member up for its opt-out
    is what costs the hand-written COUNT most (158 ms against 38 ms for 249,000
    members of 1M contacts, docs/counts.md). Otherwise each member is probed by primary
    key for its opt-out, country and continent (with more conditions the subtraction
    would walk the range twice, probing the other conditions each time).

    Without a narrow condition a large share of the contacts are candidates anyway, and
    `to_sql`'s shape is the faster one: each condition's range of the covering index
    becomes one in-memory list, and the count walks the (user_id, has_opted_out, ...)
    index of contacts probing the lists."""
    tenant = Tenant(user_id)
    positives = [c for c in spec.conditions if c.kind.drives_count]
    if not positives:
        return (
            select(func.count())
            .select_from(contacts)
            .where(to_sql(spec, user_id=user_id), contacts.c.has_opted_out.is_(False))
        )
    # The narrowest range drives; the other conditions are probed narrowest first.
    driver = min(positives, key=lambda c: c.kind.index.order)
    others = sorted(
        (c for c in spec.conditions if c is not driver), key=lambda c: c.kind.index.order
    )
    if not others and spec.countries is None and spec.continents is None:
        members, members_driving = _driven_walk(driver, others, tenant=tenant, name="walk")
        opted_out, opted_out_driving = _driven_walk(
            driver, others, tenant=tenant, name="opted_out_walk"
        )
        opted_out_ids = tenant.select(contacts.c.id).where(contacts.c.has_opted_out.is_(True))
        everyone = select(func.count()).select_from(members_driving).where(*members)
        opted = (
            select(func.count())
            .select_from(opted_out_driving)
            .where(*opted_out, opted_out_driving.c.contact_id.in_(opted_out_ids))
        )
        return select(everyone.scalar_subquery() - opted.scalar_subquery())
    clauses, driving = _driven_walk(driver, others, tenant=tenant, name="walk")
    # The contact itself is probed, never joined: given a join, SQLite's planner may
    # walk every contact of the user and probe the parameters instead, which costs
    # several times more whenever the driving condition is not a narrow range.
    counted = [
        tenant.owns(contacts),
        contacts.c.id == driving.c.contact_id,
        contacts.c.has_opted_out.is_(False),
    ]
    if spec.countries is not None:
        counted.append(contacts.c.country_code.in_(spec.countries))
    if spec.continents is not None:
        counted.append(contacts.c.continent_code.in_(spec.continents))
    clauses.append(exists().where(*counted))
    return select(func.count()).select_from(driving).where(*clauses)


def _driven_walk(
    driver: Condition, others: list[Condition], *, tenant: Tenant, name: str
) -> tuple[list[ColumnElement[bool]], Any]:
    """The driving condition's index range, and an EXISTS probe per other condition."""
    driving = contact_parameters.alias(name)
    clauses: list[ColumnElement[bool]] = [
        tenant.owns(driving),
        driving.c.key == driver.key,
        driver.kind.held_sql(driving, driver.operand),
    ]
    for number, condition in enumerate(others):
        probe = contact_parameters.alias(f"{name}_condition_{number}")
        holds = exists().where(
            tenant.owns(probe),
            probe.c.contact_id == driving.c.contact_id,
            probe.c.key == condition.key,
            condition.kind.held_sql(probe, condition.operand),
        )
        clauses.append(condition.kind.member_sql(holds))
    return clauses, driving


# -- Python ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactState:
    """What a filter reads of one contact."""

    country_code: str | None
    continent_code: str | None
    has_opted_out: bool
    # key -> (folded value, number or None), as stored in contact_parameters
    parameters: Mapping[str, tuple[str, float | None]]


def indexed_parameters(raw: Mapping[str, str]) -> dict[str, tuple[str, float | None]]:
    return {key: (fold(value), parse_number(value)) for key, value in raw.items()}


Predicate = Callable[[ContactState], bool]


def to_python(spec: Filter) -> Predicate:
    """The filter as a predicate over one contact; the same semantics as `to_sql`."""
    checks: list[Predicate] = []
    if spec.countries is not None:
        countries = frozenset(spec.countries)
        checks.append(lambda c: c.country_code in countries)
    if spec.continents is not None:
        continents = frozenset(spec.continents)
        checks.append(lambda c: c.continent_code in continents)
    for condition in spec.conditions:
        checks.append(_condition_python(condition))

    # Evaluated for every filter segment of the user on every contact write: the common
    # shapes skip the loop.
    if not checks:
        return lambda _contact: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda contact: first(contact) and second(contact)

    def predicate(contact: ContactState) -> bool:
        for check in checks:  # noqa: SIM110 - a plain loop costs less than all(<genexpr>)
            if not check(contact):
                return False
        return True

    return predicate


def _condition_python(condition: Condition) -> Predicate:
    key = condition.key
    test = condition.kind.value_test(condition.operand)
    # Membership from "holds the positive twin" (`ConditionKind.negated`), inlined: a
    # check runs for every filter segment of the user on every contact write.
    negated = condition.kind.negated

    def check(contact: ContactState) -> bool:
        stored = contact.parameters.get(key)
        holds = stored is not None and test(stored[0], stored[1])
        return holds != negated

    return check
