"""A deleted contact's parameter rows go with it, whichever path deletes it: the foreign
key's cascade on SQLite, the statement-level trigger on PostgreSQL (migration
0012_import_parameters_cascade, db/parameter_cascade.py). No orphan row may remain, or a
filter on a parameter would count a contact that is gone."""

from __future__ import annotations

from sqlalchemy import inspect, text

from segmenti.db import parameter_cascade
from segmenti.db.engine import Database
from segmenti.db.tenant import across_tenants
from tests.conftest import CITUS_URL, User


def _parameter_rows(db: Database, user_id: int | None = None) -> int:
    query = "SELECT count(*) FROM contact_parameters"
    if user_id is not None:
        query += f" WHERE user_id = {int(user_id)}"
    with db.engine.connect() as connection, across_tenants("the test counts every row"):
        return int(connection.execute(text(query)).scalar_one())


def _orphans(db: Database) -> int:
    query = (
        "SELECT count(*) FROM contact_parameters AS p WHERE NOT EXISTS (SELECT 1 FROM"
        " contacts AS c WHERE c.user_id = p.user_id AND c.id = p.contact_id)"
    )
    with db.engine.connect() as connection, across_tenants("the test reads every row"):
        return int(connection.execute(text(query)).scalar_one())


def _import(user: User, rows: int) -> None:
    body = "phone_number,name,plan,age\n" + "".join(
        f"+3933312{n:05d},c{n},pro,{n % 90}\n" for n in range(rows)
    )
    response = user.post(
        "/api/contacts/import", files={"file": ("contacts.csv", body.encode(), "text/csv")}
    )
    assert response.status_code == 200, response.text


def test_deleting_contacts_through_the_api_leaves_no_parameter_rows(
    alice: User, bob: User, db: Database
) -> None:
    kept = bob.make_contact("+393331234501", custom_parameters={"plan": "pro"})
    first = alice.make_contact("+393331234501", custom_parameters={"plan": "pro", "age": "31"})
    _import(alice, 50)
    assert _parameter_rows(db, alice.id) == 2 + 2 * 50
    for contact_id in (first, first + 1):
        assert alice.delete(f"/api/contacts/{contact_id}").status_code == 204
    erased = alice.get("/api/contacts?search=c7").json()["data"][0]["id"]
    assert alice.delete(f"/api/contacts/{erased}?erase=1").status_code == 204
    assert _orphans(db) == 0
    assert _parameter_rows(db, alice.id) == 2 * 48
    assert alice.get("/api/contacts?results_per_page=100").json()["meta"]["total"] == 48
    assert bob.get(f"/api/contacts/{kept}").json()["data"]["custom_parameters"] == {"plan": "pro"}
    assert _parameter_rows(db, bob.id) == 1


def test_deleting_a_user_takes_its_parameter_rows(alice: User, bob: User, db: Database) -> None:
    # No route deletes a user; an operator does it in SQL, and the cascade must hold.
    _import(alice, 20)
    bob.make_contact("+393331234501", custom_parameters={"plan": "pro"})
    with db.engine.begin() as connection, across_tenants("an operator deletes a user"):
        connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": alice.id})
    assert _orphans(db) == 0
    assert _parameter_rows(db) == 1


def test_postgresql_inserts_parameters_without_checking_a_foreign_key(db: Database) -> None:
    foreign_keys = {fk["name"] for fk in inspect(db.engine).get_foreign_keys("contact_parameters")}
    if db.engine.dialect.name == "sqlite" or CITUS_URL:
        # Citus keeps the key (co-located, checked within a shard; it refuses triggers on
        # distributed tables), as SQLite does.
        assert foreign_keys == {parameter_cascade.FOREIGN_KEY}
        return
    assert foreign_keys == set()
    with db.engine.connect() as connection:
        assert connection.execute(text(parameter_cascade.HAS_TRIGGER)).scalar()
