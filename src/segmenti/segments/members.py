"""Who is in a segment: one WHERE clause over `contacts` per segment, shared by every
reader of membership (member lists, previews, CSV export), and the reading of it that
explains one contact's membership."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from segmenti import errors, timeutil
from segmenti.contacts import search as contact_search
from segmenti.contacts import service as contacts_service
from segmenti.contacts.service import CONTACT_COLUMNS, render_contact
from segmenti.db.tables import contacts, segment_members, segments
from segmenti.db.tenant import Tenant
from segmenti.membership import conditions, filters
from segmenti.paging import Page

# A filter segment with at least this many counted members is listed by walking the
# user's contacts in id order with one primary-key probe per condition (the correlated
# shape of `filters.to_sql`): a page then reads about results_per_page / density rows,
# at most a few thousand per page at this density over 10M contacts. A smaller
# segment is rare among the contacts, and building each condition's holders once (the
# uncorrelated shape) is cheaper than walking the contacts to find it.
DENSE_MEMBERS = 10_000


def members_where(
    *,
    user_id: int,
    segment_id: int,
    type: str,
    settings: Mapping[str, Any],
    include_opted_out: bool = False,
    correlated: bool = False,
) -> ColumnElement[bool]:
    """Contacts of the user that are members of the segment now.

    Bulk and custom: the listed contacts that still exist (segment_members). Filter:
    the contacts that satisfy the filter now. Opted-out contacts only when asked.
    `correlated` picks the EXISTS shape of the same set (see `filters.to_sql`)."""
    tenant = Tenant(user_id)
    if type == "filter":
        spec = filters.Filter.from_settings(settings)
        where = filters.to_sql(spec, user_id=user_id, correlated=correlated)
    elif correlated:
        listed = (
            tenant.select(segment_members.c.contact_id)
            .where(
                segment_members.c.segment_id == segment_id,
                segment_members.c.contact_id == contacts.c.id,
            )
            .correlate(contacts)
            .exists()
        )
        where = and_(tenant.owns(contacts), listed)
    else:
        listed_ids = tenant.select(segment_members.c.contact_id).where(
            segment_members.c.segment_id == segment_id
        )
        where = and_(tenant.owns(contacts), contacts.c.id.in_(listed_ids))
    if include_opted_out:
        return where
    return and_(where, contacts.c.has_opted_out.is_(False))


@dataclass(frozen=True)
class OptOuts:
    """Which opted-out members a member list or a segment's export holds: none by
    default (exactly the members total_contacts counts), all of them with
    `include_opted_out`, or, when `has_opted_out` is given, only the members that have
    (True) or have not (False) opted out, whatever `include_opted_out` says."""

    include_opted_out: bool = False
    has_opted_out: bool | None = None

    @property
    def counted_only(self) -> bool:
        """Exactly the members total_contacts counts."""
        if self.has_opted_out is None:
            return not self.include_opted_out
        return self.has_opted_out is False


def selected_members_where(
    *,
    user_id: int,
    segment_id: int,
    type: str,
    settings: Mapping[str, Any],
    opt_outs: OptOuts,
    correlated: bool = False,
) -> ColumnElement[bool]:
    """`members_where` with the opted-out members `opt_outs` selects."""
    where = members_where(
        user_id=user_id,
        segment_id=segment_id,
        type=type,
        settings=settings,
        include_opted_out=opt_outs.include_opted_out or opt_outs.has_opted_out is not None,
        correlated=correlated,
    )
    if opt_outs.has_opted_out is not None:
        where = and_(where, contacts.c.has_opted_out.is_(opt_outs.has_opted_out))
    return where


def _load(session: Session, *, user_id: int, segment_id: int) -> dict[str, Any]:
    """What membership needs of a segment: its type, count and, for a filter, its
    settings (those of a bulk segment can hold 100,000 numbers and are not needed)."""
    tenant = Tenant(user_id)
    row = session.execute(
        tenant.select(segments.c.type, segments.c.total_contacts).where(segments.c.id == segment_id)
    ).first()
    if row is None:
        raise errors.NotFound(f"segment {segment_id} does not exist")
    settings: Mapping[str, Any] = {}
    if row.type == "filter":
        settings = session.execute(
            tenant.select(segments.c.settings).where(segments.c.id == segment_id)
        ).scalar_one()
    return {"type": row.type, "total_contacts": row.total_contacts, "settings": settings}


load_segment = _load
"""What membership needs of a segment (snapshots read it too); NotFound if absent."""


# -- listing --------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberPage:
    """One page of members: the rendered contacts, the total the list's meta reports,
    and whether a member follows the last one (the cursor `next` link needs it)."""

    rows: list[dict[str, Any]]
    total: int
    has_more: bool


def list_members(
    session: Session,
    *,
    user_id: int,
    segment_id: int,
    page: Page,
    after_id: int | None = None,
    include_opted_out: bool = False,
    has_opted_out: bool | None = None,
    search: str | None = None,
) -> MemberPage:
    """Members in contact id order. `after_id` (keyset) starts after that id and makes
    `page` a label only; without it `page` is an OFFSET. `has_opted_out`, when given,
    decides on its own which opted-out members are in (it needs no include flag).
    `search` keeps the members the contacts list's search would find."""
    segment = _load(session, user_id=user_id, segment_id=segment_id)
    opt_outs = OptOuts(include_opted_out, has_opted_out)
    wanted = contact_search.parse(search)
    # Exactly the members total_contacts counts, which is maintained exact: no COUNT
    # over the members per page.
    counted_only = opt_outs.counted_only and wanted is None
    is_filter = segment["type"] == "filter"

    def members(correlated: bool) -> ColumnElement[bool]:
        where = selected_members_where(
            user_id=user_id,
            segment_id=segment_id,
            type=segment["type"],
            settings=segment["settings"],
            opt_outs=opt_outs,
            correlated=correlated,
        )
        if wanted is None:
            return where
        return and_(where, contact_search.where(session, wanted, user_id=user_id))

    if counted_only:
        total = int(segment["total_contacts"])
    else:
        # Counted like total_contacts is: each condition's holders (or the segment's
        # list) gathered once, never a walk over every contact.
        total = int(
            session.execute(
                select(func.count()).select_from(contacts).where(members(correlated=False))
            ).scalar_one()
        )
    # Members with opted-out ones are at least as dense as total_contacts says; opted-out
    # members alone may be few, whatever it says.
    dense = segment["total_contacts"] >= DENSE_MEMBERS and has_opted_out is not True
    where = members(correlated=not is_filter or dense)
    if is_filter:
        query = select(*CONTACT_COLUMNS).where(where).order_by(contacts.c.id)
    else:
        # Walk the segment's own (user_id, segment_id, contact_id) key in order: a page
        # reads that page's members, however few they are among the user's contacts.
        tenant = Tenant(user_id)
        query = (
            select(*CONTACT_COLUMNS)
            .select_from(
                tenant.join(
                    segment_members, contacts, contacts.c.id == segment_members.c.contact_id
                )
            )
            .where(
                tenant.owns(segment_members),
                segment_members.c.segment_id == segment_id,
                where,
            )
            .order_by(segment_members.c.contact_id)
        )
    if after_id is not None:
        query = query.where(contacts.c.id > after_id)
    else:
        query = query.offset(page.offset)
    rows = session.execute(query.limit(page.size + 1)).all()
    return MemberPage(
        rows=[render_contact(row) for row in rows[: page.size]],
        total=total,
        has_more=len(rows) > page.size,
    )


# -- explaining -----------------------------------------------------------------------


def explain_membership(
    session: Session, *, user_id: int, segment_id: int, contact_id: int
) -> dict[str, Any]:
    """Whether the contact is a member of the segment, and why.

    `member`: the contact is in the segment's member list with opted-out members
    included; `counted`: also in the default list and in total_contacts (a member that
    has not opted out). Filter conditions are evaluated one by one with the same
    Python predicates that keep total_contacts exact, so the verdict is the SQL's."""
    segment = _load(session, user_id=user_id, segment_id=segment_id)
    contact = contacts_service.get_contact(session, user_id=user_id, contact_id=contact_id)
    explanation: dict[str, Any] = {
        "segment_id": segment_id,
        "contact_id": contact_id,
        "type": segment["type"],
    }
    spec = (
        filters.Filter.from_settings(segment["settings"]).on(timeutil.today())
        if segment["type"] == "filter"
        else None
    )
    if spec is not None and spec.tree is not None:
        verdict = _node_verdict(spec.tree, "filter", contact)
        member = verdict["held"]
        explanation.update(
            conditions=_leaf_checks(verdict), countries=None, continents=None, tree=verdict
        )
        reason = _tree_reason(verdict)
    elif spec is not None:
        checks = _filter_checks(spec, contact)
        member = all(check["held"] for check in checks["conditions"]) and all(
            checks[place]["held"] for place in ("countries", "continents") if checks[place]
        )
        explanation.update(checks)
        if not member:
            reason = _filter_reason(checks)
        elif segment["settings"]:
            reason = "every condition of the filter holds"
        else:
            reason = "the filter has no conditions: every contact is a member"
    else:
        member = (
            session.execute(
                Tenant(user_id)
                .select(segment_members.c.contact_id)
                .where(
                    segment_members.c.segment_id == segment_id,
                    segment_members.c.contact_id == contact_id,
                )
            ).first()
            is not None
        )
        explanation["listed"] = member
        reason = (
            "the contact is listed in the segment"
            if member
            else "the contact is not listed in the segment"
        )
    opted_out = bool(contact["has_opted_out"])
    if member and opted_out:
        reason += "; it has opted out, so it is listed only with include_opted_out=1 "
        reason += "and not counted in total_contacts"
    explanation.update(
        member=member,
        counted=member and not opted_out,
        has_opted_out=opted_out,
        reason=reason,
    )
    return explanation


def _filter_checks(spec: filters.Filter, contact: Mapping[str, Any]) -> dict[str, Any]:
    state = contacts_service.state_of(contact)
    parameters: Mapping[str, str] = contact["custom_parameters"]
    conditions = [
        {
            **condition.as_settings(),
            "contact_value": parameters.get(condition.key),
            "held": filters.to_python(filters.Filter(conditions=(condition,)))(state),
        }
        for condition in spec.conditions
    ]
    countries = None
    if spec.countries is not None:
        countries = {
            "allowed": list(spec.countries),
            "contact_value": contact["country_code"],
            "held": filters.to_python(filters.Filter(countries=spec.countries))(state),
        }
    continents = None
    if spec.continents is not None:
        continents = {
            "allowed": list(spec.continents),
            "contact_value": contact["continent_code"],
            "held": filters.to_python(filters.Filter(continents=spec.continents))(state),
        }
    return {"conditions": conditions, "countries": countries, "continents": continents}


def _node_verdict(node: filters.Node, path: str, contact: Mapping[str, Any]) -> dict[str, Any]:
    """One node of a filter tree, evaluated for the contact with the Python predicates
    that keep total_contacts exact: `held`, its children's verdicts, and `decided_by`,
    the paths of the leaves that decided it (for a group that holds: every child of an
    `all`, the children of an `any` that hold; for one that does not: the children of
    an `all` that fail, every child of an `any`; a `not` is decided by its child's)."""
    state = contacts_service.state_of(contact)
    held = filters.node_python(node)(state)
    if isinstance(node, filters.Condition):
        return {
            "path": path,
            "node": "condition",
            **node.as_settings(),
            "contact_value": contact["custom_parameters"].get(node.key),
            "held": held,
            "decided_by": [path],
        }
    if isinstance(node, filters.Places):
        place = "country_code" if node.field == "country" else "continent_code"
        return {
            "path": path,
            "node": node.field,
            "allowed": list(node.codes),
            "contact_value": contact[place],
            "held": held,
            "decided_by": [path],
        }
    if isinstance(node, filters.Not):
        child = _node_verdict(node.child, f"{path}.not", contact)
        return {
            "path": path,
            "node": "not",
            "held": held,
            "decided_by": child["decided_by"],
            "children": [child],
        }
    name = "all" if isinstance(node, filters.All) else "any"
    children = [
        _node_verdict(child, f"{path}.{name}[{index}]", contact)
        for index, child in enumerate(node.children)
    ]
    # The children whose result is the group's own decided it (an `all` that fails:
    # the failing ones; an `any` that holds: the holding ones); otherwise all of them.
    deciding = [child for child in children if child["held"] == held] or children
    return {
        "path": path,
        "node": name,
        "held": held,
        "decided_by": [leaf for child in deciding for leaf in child["decided_by"]],
        "children": children,
    }


def _leaf_checks(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every condition of a tree's verdict, depth first (the flat `conditions` field)."""
    if verdict["node"] == "condition":
        return [{key: value for key, value in verdict.items() if key != "decided_by"}]
    return [leaf for child in verdict.get("children", ()) for leaf in _leaf_checks(child)]


def _leaves_by_path(verdict: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    if "children" not in verdict:
        return {verdict["path"]: verdict}
    found: dict[str, Mapping[str, Any]] = {}
    for child in verdict["children"]:
        found.update(_leaves_by_path(child))
    return found


def _tree_reason(verdict: Mapping[str, Any]) -> str:
    by_path = _leaves_by_path(verdict)
    words = []
    for path in verdict["decided_by"]:
        leaf = by_path[path]
        if leaf["node"] == "condition":
            phrase = conditions.named(leaf["condition"]).phrase(
                leaf["key"],
                tuple(leaf["value"]) if isinstance(leaf.get("value"), list) else leaf.get("value"),
            )
            value = leaf["contact_value"]
            has = "it has no such key" if value is None else f"it has {value!r}"
        else:
            phrase = f"{leaf['node']} {', '.join(leaf['allowed'])}"
            has = f"it has {leaf['contact_value']}"
        held = "holds" if leaf["held"] else "does not hold"
        words.append(f"{path}: {phrase} {held} ({has})")
    if not words:
        return "the filter is an empty all: every contact is a member"
    lead = "the filter holds" if verdict["held"] else "not a member; the filter does not hold"
    return f"{lead}, decided by: " + "; ".join(words)


def _filter_reason(checks: Mapping[str, Any]) -> str:
    failed = []
    for check in checks["conditions"]:
        if not check["held"]:
            value = check["contact_value"]
            has = "it has no such key" if value is None else f"it has {value!r}"
            phrase = conditions.named(check["condition"]).phrase(check["key"], check["value"])
            failed.append(f"{phrase} ({has})")
    for place in ("countries", "continents"):
        check = checks[place]
        if check and not check["held"]:
            allowed = ", ".join(check["allowed"])
            failed.append(f"{place} {allowed} (it has {check['contact_value']})")
    return "not a member; these do not hold: " + "; ".join(failed)
