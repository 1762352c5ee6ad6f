"""Contacts: one phone number of a user, with custom parameters and an opt-out flag.

Every function takes the user and builds its statements through `Tenant(user_id)`;
another user's contact answers exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmenti import errors
from segmenti.contacts import search as contact_search
from segmenti.db.tables import (
    contact_parameters,
    contacts,
    events,
    segment_members,
    snapshot_members,
)
from segmenti.db.tenant import Tenant
from segmenti.membership import counts
from segmenti.membership.filters import ContactState, fold, indexed_parameters, parse_number
from segmenti.paging import Page
from segmenti.phones import PhoneInfo
from segmenti.timeutil import render, utcnow

CONTACT_COLUMNS = (
    contacts.c.id,
    contacts.c.user_id,
    contacts.c.name,
    contacts.c.phone_number,
    contacts.c.custom_parameters,
    contacts.c.continent_code,
    contacts.c.country_code,
    contacts.c.has_opted_out,
    contacts.c.last_datetime,
    contacts.c.datetime,
)


@dataclass(frozen=True)
class ContactInput:
    """A validated create or update; None means "not given"."""

    phone: PhoneInfo | None = None
    name: str | None = None
    custom_parameters: dict[str, str] | None = None
    has_opted_out: bool | None = None


def render_contact(row: Any) -> dict[str, Any]:
    data = row._mapping if isinstance(row, Row) else row
    return {
        "id": data["id"],
        "user_id": data["user_id"],
        "name": data["name"],
        "phone_number": data["phone_number"],
        "custom_parameters": data["custom_parameters"] or {},
        "continent_code": data["continent_code"],
        "country_code": data["country_code"],
        "has_opted_out": bool(data["has_opted_out"]),
        "last_datetime": render(data["last_datetime"]),
        "datetime": render(data["datetime"]),
    }


def state_of(row: Any) -> ContactState:
    data = row._mapping if isinstance(row, Row) else row
    return ContactState(
        country_code=data["country_code"],
        continent_code=data["continent_code"],
        has_opted_out=bool(data["has_opted_out"]),
        parameters=indexed_parameters(data["custom_parameters"] or {}),
    )


def parameter_rows(
    *, user_id: int, contact_id: int, raw: Mapping[str, str]
) -> list[dict[str, Any]]:
    return [
        {
            "contact_id": contact_id,
            "user_id": user_id,
            "key": key,
            "value_folded": fold(value),
            "value_number": parse_number(value),
        }
        for key, value in raw.items()
    ]


def get_contact(session: Session, *, user_id: int, contact_id: int) -> dict[str, Any]:
    return render_contact(_load(session, user_id=user_id, contact_id=contact_id))


def _load(session: Session, *, user_id: int, contact_id: int, for_update: bool = False) -> Any:
    query = Tenant(user_id).select(*CONTACT_COLUMNS).where(contacts.c.id == contact_id)
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None:
        raise errors.NotFound(f"contact {contact_id} does not exist")
    return row


def list_contacts(
    session: Session,
    *,
    user_id: int,
    page: Page,
    search: str | None = None,
    country_code: str | None = None,
    has_opted_out: bool | None = None,
) -> tuple[list[dict[str, Any]], int]:
    tenant = Tenant(user_id)
    where = [tenant.owns(contacts)]
    wanted = contact_search.parse(search)
    if wanted is not None and not country_code and has_opted_out is None:
        # The search alone: its index counts and pages (contacts/search.py).
        total = contact_search.count(session, wanted, user_id=user_id)
        ids = contact_search.newest_ids(session, wanted, user_id=user_id, page=page)
        rows = session.execute(
            tenant.select(*CONTACT_COLUMNS)
            .where(contacts.c.id.in_(ids))
            .order_by(contacts.c.id.desc())
        ).all()
        return [render_contact(row) for row in rows], total
    if wanted is not None:
        where.append(contact_search.where(session, wanted, user_id=user_id))
    if country_code:
        where.append(contacts.c.country_code == country_code.upper())
    if has_opted_out is not None:
        where.append(contacts.c.has_opted_out == has_opted_out)
    total = session.execute(select(func.count()).select_from(contacts).where(*where)).scalar_one()
    rows = session.execute(
        select(*CONTACT_COLUMNS)
        .where(*where)
        .order_by(contacts.c.id.desc())
        .limit(page.size)
        .offset(page.offset)
    ).all()
    return [render_contact(row) for row in rows], int(total)


def _phone_taken(phone_number: str) -> errors.Conflict:
    return errors.Conflict(
        f"a contact with phone number {phone_number} already exists", parameter="phone_number"
    )


def create_contact(session: Session, *, user_id: int, data: ContactInput) -> int:
    if data.phone is None:
        raise errors.Invalid("phone_number is required", parameter="phone_number")
    version = counts.lock_tenant(session, user_id=user_id, exclusive=False)
    values: dict[str, Any] = {
        "name": data.name or "",
        "phone_number": data.phone.e164,
        "custom_parameters": data.custom_parameters or {},
        "country_code": data.phone.country_code,
        "continent_code": data.phone.continent_code,
        "has_opted_out": bool(data.has_opted_out),
        "datetime": utcnow(),
    }
    contact_id = _insert_unless_taken(session, user_id=user_id, values=values)
    if contact_id is None:
        raise _phone_taken(data.phone.e164)
    rows = parameter_rows(user_id=user_id, contact_id=contact_id, raw=values["custom_parameters"])
    if rows:
        session.execute(insert(contact_parameters), rows)
    counts.contacts_written(
        session,
        user_id=user_id,
        version=version,
        written=counts.ContactChanges([counts.Change(contact_id, None, state_of(values))]),
    )
    return int(contact_id)


def _insert_unless_taken(session: Session, *, user_id: int, values: dict[str, Any]) -> int | None:
    """Inserts the contact and returns its id, or None when the user has the number
    already (then nothing is written). One statement, where a look-up, a savepoint,
    the insert and the savepoint's release were four round trips to the server (a
    concurrent create of the same number waits for the other and finds it taken)."""
    insert_into = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    statement = (
        insert_into(contacts)
        .values(user_id=user_id, **values)
        .on_conflict_do_nothing(index_elements=[contacts.c.user_id, contacts.c.phone_number])
        .returning(contacts.c.id)
    )
    contact_id = session.execute(statement).scalar()
    return None if contact_id is None else int(contact_id)


def update_contact(session: Session, *, user_id: int, contact_id: int, data: ContactInput) -> int:
    tenant = Tenant(user_id)
    version = counts.lock_tenant(session, user_id=user_id, exclusive=False)
    before = _load(session, user_id=user_id, contact_id=contact_id, for_update=True)
    values: dict[str, Any] = {"last_datetime": utcnow()}
    if data.phone is not None and data.phone.e164 != before.phone_number:
        taken = session.execute(
            tenant.select(contacts.c.id).where(contacts.c.phone_number == data.phone.e164)
        ).first()
        if taken is not None:
            raise _phone_taken(data.phone.e164)
        values.update(
            phone_number=data.phone.e164,
            country_code=data.phone.country_code,
            continent_code=data.phone.continent_code,
        )
    if data.name is not None:
        values["name"] = data.name
    if data.has_opted_out is not None:
        values["has_opted_out"] = data.has_opted_out
    if data.custom_parameters is not None:
        values["custom_parameters"] = data.custom_parameters
    write = tenant.update(contacts).where(contacts.c.id == contact_id).values(**values)
    if "phone_number" in values:
        # Only a new number can break the unique key (a concurrent write taking it).
        try:
            with session.begin_nested():
                session.execute(write)
        except IntegrityError:
            raise _phone_taken(values["phone_number"]) from None
    else:
        session.execute(write)
    if data.custom_parameters is not None:
        session.execute(
            tenant.delete(contact_parameters).where(contact_parameters.c.contact_id == contact_id)
        )
        rows = parameter_rows(user_id=user_id, contact_id=contact_id, raw=data.custom_parameters)
        if rows:
            session.execute(insert(contact_parameters), rows)
    after = state_of({**before._mapping, **values})
    counts.contacts_written(
        session,
        user_id=user_id,
        version=version,
        written=counts.ContactChanges([counts.Change(contact_id, state_of(before), after)]),
    )
    return contact_id


def delete_contact(session: Session, *, user_id: int, contact_id: int, erase: bool = False) -> None:
    """Deletes the contact. `erase`: its membership events (the exit this delete records
    included) and its rows in snapshots go too, in the same transaction."""
    version = counts.lock_tenant(session, user_id=user_id, exclusive=False)
    before = _load(session, user_id=user_id, contact_id=contact_id, for_update=True)
    counts.contacts_written(
        session,
        user_id=user_id,
        version=version,
        written=counts.ContactChanges([counts.Change(contact_id, state_of(before), None)]),
    )
    # Its memberships first: no foreign key deletes them on PostgreSQL (tables.py); its
    # contact_parameters rows go with it (the foreign key's cascade on SQLite, a
    # statement trigger on PostgreSQL: db/parameter_cascade.py).
    tenant = Tenant(user_id)
    session.execute(
        tenant.delete(segment_members).where(segment_members.c.contact_id == contact_id)
    )
    session.execute(tenant.delete(contacts).where(contacts.c.id == contact_id))
    if erase:
        session.execute(tenant.delete(events).where(events.c.contact_id == contact_id))
        session.execute(
            tenant.delete(snapshot_members).where(snapshot_members.c.contact_id == contact_id)
        )
