"""Filter segments: their definition, their validation, and their compilations.

A filter is data (`Filter`), stored as the segment's JSON settings: conditions on
custom parameters (each naming a registered condition, `conditions.py`), countries and
continents, either flat (the reference's fields: all of them hold) or as a tree of
`all` / `any` / `not` groups (`Node`, docs/filter-trees.md). A flat filter is the tree
`all(countries, continents, conditions...)` (`Filter.root`), so each compilation below
walks one tree. It compiles to
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Select, and_, exists, func, not_, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from segmenti import errors, phones, timeutil
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


# A condition's value: text (the reference's conditions, dates), a list (`in`,
# `not_in`) or none (`exists`, `not_exists`).
Value = str | tuple[str, ...] | None

# Whole days from today, UTC: "-30d", "+7d" (`Condition.on` resolves them).
_RELATIVE_DAYS = re.compile(r"([+-]?)([0-9]{1,5})d", re.ASCII)
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
MAX_RELATIVE_DAYS = 36_600


def relative_days(value: str) -> int | None:
    """The days from today a date condition's value says (`-30d` is -30), or None when
    it is an absolute day."""
    match = _RELATIVE_DAYS.fullmatch(value)
    if match is None:
        return None
    days = int(match[2])
    return -days if match[1] == "-" else days


def parse_day(value: str) -> date | None:
    """An absolute day, `YYYY-MM-DD`, or None."""
    if not _ISO_DAY.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a filter: `key`'s value satisfies the registered condition
    named `condition` (`conditions.REGISTRY`) with `value`."""

    key: str
    condition: str
    value: Value

    def as_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"key": self.key, "condition": self.condition}
        if isinstance(self.value, tuple):
            settings["value"] = list(self.value)
        elif self.value is not None:
            settings["value"] = self.value
        return settings

    @property
    def kind(self) -> ConditionKind:
        return conditions.named(self.condition)

    @property
    def dated(self) -> bool:
        """A date relative to today: what it selects changes at UTC midnight."""
        return (
            isinstance(self.value, str)
            and self.kind.takes == "date"
            and (relative_days(self.value) is not None)
        )

    def on(self, day: date) -> Condition:
        """The condition with a relative date resolved against `day`."""
        if not self.dated:
            return self
        assert isinstance(self.value, str)
        days = relative_days(self.value) or 0
        return Condition(self.key, self.condition, (day + timedelta(days=days)).isoformat())

    @property
    def operand(self) -> Operand:
        """The value, derived like a stored parameter's value. A relative date not yet
        resolved (`on`) counts from the clock's today."""
        takes = self.kind.takes
        if takes == "list":
            assert isinstance(self.value, tuple)
            return Operand("", None, tuple(dict.fromkeys(fold(item) for item in self.value)))
        if takes == "none":
            return Operand("", None)
        assert isinstance(self.value, str)
        if takes == "date":
            day = self.on(timeutil.today()).value
            assert isinstance(day, str)  # a date condition's value is text
            return Operand(day, None)
        return Operand(fold(self.value), parse_number(self.value))


# -- the tree -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All:
    """Every child holds (no child: every contact)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one child holds (at least one child)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The exact complement of the child among the user's contacts."""

    child: Node


@dataclass(frozen=True, slots=True)
class Places:
    """The contact's country (`field` "country") or continent is one of `codes`."""

    field: str
    codes: tuple[str, ...]


Node = All | AnyOf | Not | Places | Condition
GROUP_DEPTH = 6


def leaves(node: Node) -> Iterator[Condition | Places]:
    """The tree's leaves, depth first."""
    if isinstance(node, All | AnyOf):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, Not):
        yield from leaves(node.child)
    else:
        yield node


def simplified(node: Node) -> Node:
    """The same set of contacts in fewer nodes, for the compilers: an `all` inside an
    `all` (an `any` inside an `any`) gives its children to its parent, a group of one
    child is that child, and `not` of a `not` is the child. Each is an identity of the
    sets (`not` is the exact complement, never NULL), so every compilation of the
    simplified tree selects the same contacts (tests check it); what is stored and
    explained stays the tree as given. Fewer groups mean fewer subqueries in SQL, and
    more trees with a root `all` of leaves, which count like flat filters."""
    if isinstance(node, Not):
        child = simplified(node.child)
        return child.child if isinstance(child, Not) else Not(child)
    if isinstance(node, All | AnyOf):
        group = type(node)
        children: list[Node] = []
        for child in node.children:
            child = simplified(child)
            if type(child) is group:
                children.extend(child.children)
            else:
                children.append(child)
        if len(children) == 1:
            return children[0]
        return group(tuple(children))
    return node


def _pinned(node: Node, day: date) -> Node:
    if isinstance(node, All):
        return All(tuple(_pinned(child, day) for child in node.children))
    if isinstance(node, AnyOf):
        return AnyOf(tuple(_pinned(child, day) for child in node.children))
    if isinstance(node, Not):
        return Not(_pinned(node.child, day))
    if isinstance(node, Condition):
        return node.on(day)
    return node


def node_settings(node: Node) -> dict[str, Any]:
    """A node as stored in a segment's settings and as the API takes it."""
    if isinstance(node, All):
        return {"all": [node_settings(child) for child in node.children]}
    if isinstance(node, AnyOf):
        return {"any": [node_settings(child) for child in node.children]}
    if isinstance(node, Not):
        return {"not": node_settings(node.child)}
    if isinstance(node, Places):
        return {node.field: list(node.codes)}
    return node.as_settings()


def node_from_settings(stored: Mapping[str, Any]) -> Node:
    """A node from settings written by `node_settings` (validated when it was made)."""
    if "all" in stored:
        return All(tuple(node_from_settings(child) for child in stored["all"]))
    if "any" in stored:
        return AnyOf(tuple(node_from_settings(child) for child in stored["any"]))
    if "not" in stored:
        return Not(node_from_settings(stored["not"]))
    for field_name in ("country", "continent"):
        if field_name in stored:
            return Places(field_name, tuple(stored[field_name]))
    value = stored.get("value")
    return Condition(
        str(stored["key"]),
        str(stored["condition"]),
        tuple(value) if isinstance(value, list) else value,
    )


@dataclass(frozen=True, slots=True)
class Filter:
    """A filter: flat (the reference's fields: conditions ANDed with countries and
    continents) or a tree (`tree`). A flat filter is the tree `root` says, so every
    compilation below walks one tree."""

    conditions: tuple[Condition, ...] = ()
    countries: tuple[str, ...] | None = None
    continents: tuple[str, ...] | None = None
    tree: Node | None = None

    @property
    def root(self) -> Node:
        if self.tree is not None:
            return self.tree
        places = [
            Places(field_name, codes)
            for field_name, codes in (("country", self.countries), ("continent", self.continents))
            if codes is not None
        ]
        return All((*places, *self.conditions))

    @property
    def compiled_root(self) -> Node:
        """What the compilations walk: `root`, simplified (`simplified`)."""
        return simplified(self.root) if self.tree is not None else self.root

    @property
    def dated(self) -> bool:
        """Some condition's date is relative to today."""
        return self.tree is not None and any(
            isinstance(leaf, Condition) and leaf.dated for leaf in leaves(self.tree)
        )

    def on(self, day: date) -> Filter:
        """The filter with every relative date resolved against `day`: what it selects
        on that day (counts pin a segment to the day it was counted for)."""
        if self.tree is None or not self.dated:
            return self
        return Filter(tree=_pinned(self.tree, day))

    def as_flat(self) -> Filter | None:
        """The same filter in the flat shape, when the tree has it (an `all` of
        conditions and at most one country and one continent list), which
        `count_sql` counts from the index; None otherwise."""
        if self.tree is None:
            return self
        root = self.compiled_root
        if isinstance(root, Condition | Places):
            root = All((root,))
        if not isinstance(root, All):
            return None
        found: dict[str, tuple[str, ...]] = {}
        flat: list[Condition] = []
        for child in root.children:
            if isinstance(child, Condition):
                flat.append(child)
            elif isinstance(child, Places) and child.field not in found:
                found[child.field] = child.codes
            else:
                return None
        return Filter(tuple(flat), found.get("country"), found.get("continent"))

    def as_settings(self) -> dict[str, Any]:
        """The segment's `settings`: only what was given."""
        if self.tree is not None:
            return {"filter": node_settings(self.tree)}
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
        if "filter" in settings:
            return cls(tree=node_from_settings(settings["filter"]))
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
    kind = conditions.REGISTRY.get(condition) if condition in conditions.NAMES else None
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


# -- trees from their JSON form --------------------------------------------------------


class InvalidTree(errors.Invalid):
    """A filter tree that breaks a rule: `path` names the bad node from the tree's root
    (`all[1].any[0]`, "" for the root); the input layer prefixes its parameter."""

    def __init__(self, problem: str, *, path: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(problem, parameter=path or "filter")


_GROUPS = ("all", "any", "not")
_PLACES = ("country", "continent")
_LEAF_FIELDS = frozenset({"key", "condition", "value"})


def build_tree(document: Any, *, max_leaves: int) -> Filter:
    """A validated filter tree from its JSON form (`node_settings`'s shape): at most
    GROUP_DEPTH levels of groups and `max_leaves` leaves. Raises `InvalidTree` naming
    the first bad node, depth first."""
    counter = [0]
    return Filter(tree=_node(document, path="", depth=0, leaf_count=counter, limit=max_leaves))


def _child_path(path: str, step: str) -> str:
    return f"{path}.{step}" if path else step


def _node(document: Any, *, path: str, depth: int, leaf_count: list[int], limit: int) -> Node:
    def invalid(problem: str) -> InvalidTree:
        return InvalidTree(f"{path or 'the filter'}: {problem}", path=path)

    if not isinstance(document, dict):
        raise invalid("a node must be a JSON object ({'all': [...]}, {'key': ...}, ...)")
    operators = [name for name in (*_GROUPS, *_PLACES) if name in document]
    if operators:
        if len(document) != 1:
            extra = sorted(str(name)[:40] for name in document if name != operators[0])
            raise invalid(f"{operators[0]!r} takes no other field, got {', '.join(extra)}")
        operator_name = operators[0]
        body = document[operator_name]
        if operator_name in _PLACES:
            return _places(operator_name, body, invalid=invalid, leaf_count=leaf_count, limit=limit)
        if depth >= GROUP_DEPTH:
            raise invalid(f"groups nest at most {GROUP_DEPTH} levels deep")
        if operator_name == "not":
            child_path = _child_path(path, "not")
            return Not(
                _node(body, path=child_path, depth=depth + 1, leaf_count=leaf_count, limit=limit)
            )
        if not isinstance(body, list):
            raise invalid(f"{operator_name!r} takes a list of nodes")
        if operator_name == "any" and not body:
            raise invalid("'any' takes at least one node")
        children = tuple(
            _node(
                child,
                path=_child_path(path, f"{operator_name}[{index}]"),
                depth=depth + 1,
                leaf_count=leaf_count,
                limit=limit,
            )
            for index, child in enumerate(body)
        )
        return All(children) if operator_name == "all" else AnyOf(children)
    if "key" not in document:
        names = ", ".join(sorted(str(name)[:40] for name in document)) or "nothing"
        raise invalid(
            f"unknown node (got {names}); a node is all, any, not, country, continent "
            "or a condition with key, condition and value"
        )
    extra = sorted(str(name)[:40] for name in document if name not in _LEAF_FIELDS)
    if extra:
        raise invalid(f"a condition takes key, condition and value, not {', '.join(extra)}")
    _count_leaf(leaf_count, limit, invalid)
    return _leaf(document, invalid=invalid)


def _count_leaf(leaf_count: list[int], limit: int, invalid: Callable[[str], InvalidTree]) -> None:
    leaf_count[0] += 1
    if leaf_count[0] > limit:
        raise invalid(f"a filter takes at most {limit} conditions, countries and continents")


def _places(
    field_name: str,
    body: Any,
    *,
    invalid: Callable[[str], InvalidTree],
    leaf_count: list[int],
    limit: int,
) -> Places:
    _count_leaf(leaf_count, limit, invalid)
    if not isinstance(body, list) or not all(isinstance(code, str) for code in body):
        raise invalid(f"{field_name!r} takes a list of codes")
    known: Callable[[str], bool] = phones.is_country
    what = "ISO 3166-1 alpha-2 country"
    if field_name == "continent":
        known, what = phones.CONTINENTS.__contains__, "continent (AF, AN, AS, EU, NA, OC, SA)"
    try:
        codes = _codes(body, field_name, known, what)
    except InvalidFilter as error:
        raise invalid(error.problem.removeprefix(": ")) from None
    if codes is None:
        raise invalid(f"{field_name!r} takes at least one code")
    return Places(field_name, codes)


def _leaf(document: Mapping[str, Any], *, invalid: Callable[[str], InvalidTree]) -> Condition:
    key = document["key"]
    if not isinstance(key, str):
        raise invalid("key must be a string")
    if "\x00" in key:
        raise invalid("key must not contain NUL characters")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise invalid(f"key must be 1 to {MAX_KEY_LENGTH} characters")
    raw_condition = document.get("condition", conditions.DEFAULT)
    if not isinstance(raw_condition, str):
        raise invalid("condition must be a string")
    condition = raw_condition.strip().lower() or conditions.DEFAULT
    kind = conditions.REGISTRY.get(condition)
    if kind is None:
        raise invalid(
            f"unknown condition {condition[:40]!r}; allowed: {', '.join(conditions.TREE_NAMES)}"
        )
    if kind.takes == "none":
        if "value" in document:
            raise invalid(f"{condition} takes no value")
        return Condition(key, condition, None)
    if "value" not in document:
        raise invalid(f"{condition} needs a value")
    value = document["value"]
    if kind.takes == "list":
        if not isinstance(value, list) or not 1 <= len(value) <= conditions.MAX_CHOICES:
            raise invalid(f"{condition} takes a list of 1 to {conditions.MAX_CHOICES} strings")
        for item in value:
            _check_text(item, invalid=invalid)
        return Condition(key, condition, tuple(dict.fromkeys(value)))
    _check_text(value, invalid=invalid)
    if kind.takes == "date":
        days = relative_days(value)
        if days is None and parse_day(value) is None:
            raise invalid(
                f"{condition} takes a day, YYYY-MM-DD, or whole days from today such as "
                f"-30d or +7d, got {value[:40]!r}"
            )
        if days is not None and abs(days) > MAX_RELATIVE_DAYS:
            raise invalid(f"{condition} counts at most {MAX_RELATIVE_DAYS} days from today")
    if kind.numeric and parse_number(value) is None:
        raise invalid(f"value must be a number for {condition}, got {value[:40]!r}")
    return Condition(key, condition, value)


def _check_text(value: Any, *, invalid: Callable[[str], InvalidTree]) -> None:
    if not isinstance(value, str):
        raise invalid("value must be a string")
    if "\x00" in value:
        raise invalid("value must not contain NUL characters")
    if len(value) > MAX_VALUE_LENGTH:
        raise invalid(f"value must be at most {MAX_VALUE_LENGTH} characters")


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
    return and_(
        tenant.owns(contacts), node_sql(spec.compiled_root, tenant=tenant, correlated=correlated)
    )


def node_sql(
    node: Node, *, tenant: Tenant, correlated: bool = False, negated: bool = False
) -> ColumnElement[bool]:
    """One node of a filter as a clause over `contacts`. Every clause is true or false,
    never NULL, so `not` is the exact complement: a country list says "country known
    and listed" under a `not` (`negated`), where NULL IN (...) would be neither."""
    if isinstance(node, Condition):
        return _condition_sql(node, tenant=tenant, correlated=correlated)
    if isinstance(node, Places):
        column = contacts.c.country_code if node.field == "country" else contacts.c.continent_code
        listed = column.in_(node.codes)
        return and_(column.is_not(None), listed) if negated else listed
    if isinstance(node, Not):
        return not_(node_sql(node.child, tenant=tenant, correlated=correlated, negated=not negated))
    children = node.children
    if isinstance(node, All):
        # An AND is the same set in any order, but SQLite drives a count from its first
        # usable list of holders: a positive condition's, never an OR's or a NOT's.
        children = tuple(sorted(children, key=_driving_rank))
    clauses = [
        node_sql(child, tenant=tenant, correlated=correlated, negated=negated) for child in children
    ]
    if isinstance(node, All):
        # Not SQL's TRUE for an empty `all`: SQLAlchemy folds `AND NOT TRUE` into a
        # bare FALSE and drops the statement's other clauses with it, its tenant
        # scope included. id is never NULL.
        return and_(*clauses) if clauses else contacts.c.id.is_not(None)
    return or_(*clauses)


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


def _driving_rank(node: Node) -> tuple[int, int]:
    """How well a child of an `all` drives its walk, best first: narrow positive
    conditions (one value, a few values, a prefix), other positive ones and places,
    then groups, then negations."""
    if isinstance(node, Condition):
        if node.kind.negated:
            return (3, 0)
        return (0 if node.kind.drives_count else 1, node.kind.index.order)
    if isinstance(node, Places):
        return (1, 9)
    return (2, 0) if isinstance(node, All | AnyOf) else (3, 0)


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
    flat = spec.as_flat()
    if flat is None:
        return _tree_count_sql(spec, user_id=user_id)
    spec = flat
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


def _tree_count_sql(spec: Filter, *, user_id: int) -> Select[int]:
    """A tree that is not an `all` of conditions and places. When its root is an `all`
    with a narrow positive condition (exact, in, starts_with), the count walks that
    condition's index range and probes each contact for the rest of the tree, like a
    flat filter's; otherwise the rest of the tree is checked against every contact."""
    tenant = Tenant(user_id)
    root = spec.compiled_root
    driver: Condition | None = None
    if isinstance(root, All):
        positives = [
            child
            for child in root.children
            if isinstance(child, Condition) and child.kind.drives_count
        ]
        if positives:
            driver = min(positives, key=lambda c: c.kind.index.order)
    if driver is None or not isinstance(root, All):
        return (
            select(func.count())
            .select_from(contacts)
            .where(to_sql(spec, user_id=user_id), contacts.c.has_opted_out.is_(False))
        )
    rest = All(tuple(child for child in root.children if child is not driver))
    clauses, driving = _driven_walk(driver, [], tenant=tenant, name="walk")
    clauses.append(
        exists().where(
            tenant.owns(contacts),
            contacts.c.id == driving.c.contact_id,
            contacts.c.has_opted_out.is_(False),
            node_sql(rest, tenant=tenant),
        )
    )
    return select(func.count()).select_from(driving).where(*clauses)


# -- the walk from a selective condition ----------------------------------------------

# A tree whose root `all` has a condition held by fewer contacts than SELECTIVE, or (on
# SQLite) by at most 1/SHARE of the user's contacts and fewer than DRIVING, is counted
# by walking that condition's holders (`walk_sql`; `counts.selective_driver` chooses).
# Holders are counted up to a cap (`capped_counts_sql`): at most that many index
# entries a condition, some 10 ms for DRIVING at 1M on SQLite. The walk costs about
# 5 us a holder there, gathering a dense condition's holders about 0.7 us each: a
# driver held by a tenth of the contacts wins as soon as the rest of the tree has a
# dense condition or two.
SELECTIVE = 10_000
SHARE = 10
DRIVING = 100_000


def driver_candidates(spec: Filter) -> tuple[Condition, ...]:
    """The conditions that can drive a walk of a tree: the narrow positive ones
    (`exact`, `in`, `starts_with`) among the children of its (simplified) root `all`.
    Every member of the tree holds each of them. None for a flat filter (`count_sql`
    drives its own)."""
    root = spec.compiled_root
    if spec.tree is None:
        return ()
    children = root.children if isinstance(root, All) else (root,)
    return tuple(
        dict.fromkeys(
            child for child in children if isinstance(child, Condition) and child.kind.drives_count
        )
    )


def capped_counts_sql(candidates: Sequence[Condition], *, user_id: int, cap: int) -> Select[Any]:
    """One row: how many contacts hold each candidate, counted up to `cap` (a walk of
    at most `cap` entries of the covering index each, however dense the condition)."""
    return select(
        *(
            select(func.count())
            .select_from(holders_sql(candidate, user_id=user_id).limit(cap).subquery())
            .scalar_subquery()
            for candidate in candidates
        )
    )


def contacts_up_to_sql(*, user_id: int, cap: int) -> Select[Any]:
    """How many contacts the user has, counted up to `cap`."""
    return select(func.count()).select_from(
        Tenant(user_id).select(contacts.c.id).limit(cap).subquery()
    )


def walk_sql(spec: Filter, driver: Condition, *, user_id: int) -> Select[Any]:
    """The members of a tree that have not opted out, as contact ids: `driver`'s holders
    walked along its range of the covering (user_id, key, value, contact_id) index, and
    each one probed by primary key, for its opt-out in contacts and for the rest of the
    tree in contact_parameters (the correlated shape of `node_sql`). With a driver held
    by few contacts (`SELECTIVE`, `SHARE`) this reads a few entries per holder, where `count_sql`
    gathers every other condition's holders whole, however dense: about a microsecond an
    entry, most of a second at a million contacts. `driver` is one of
    `driver_candidates(spec)`; the same set as `to_sql` (tests check every candidate)."""
    tenant = Tenant(user_id)
    root = spec.compiled_root
    children = root.children if isinstance(root, All) else (root,)
    rest = All(tuple(child for child in children if child is not driver))
    driving = contact_parameters.alias("walk")
    return select(driving.c.contact_id).where(
        tenant.owns(driving),
        driving.c.key == driver.key,
        driver.kind.held_sql(driving, driver.operand),
        # The contact is probed, never joined (as in `count_sql`): given a join, SQLite
        # may walk every contact of the user instead.
        exists().where(
            tenant.owns(contacts),
            contacts.c.id == driving.c.contact_id,
            contacts.c.has_opted_out.is_(False),
            node_sql(rest, tenant=tenant, correlated=True),
        ),
    )


def walk_count_sql(spec: Filter, driver: Condition, *, user_id: int) -> Select[int]:
    """`walk_sql`, counted."""
    return select(func.count()).select_from(walk_sql(spec, driver, user_id=user_id).subquery())


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
    return node_python(spec.compiled_root)


def node_python(node: Node) -> Predicate:
    """One node as a predicate over one contact (`to_python`, and explanations)."""
    if isinstance(node, Condition):
        return _condition_python(node)
    if isinstance(node, Places):
        codes = frozenset(node.codes)
        if node.field == "country":
            return lambda c: c.country_code in codes
        return lambda c: c.continent_code in codes
    if isinstance(node, Not):
        child = node_python(node.child)
        return lambda c: not child(c)
    checks = [node_python(child) for child in node.children]
    if isinstance(node, AnyOf):
        return lambda contact: any(check(contact) for check in checks)

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
