"""How a deleted contact's parameter rows go with it on PostgreSQL: one statement-level
trigger instead of the foreign key contact_parameters -> contacts.

The foreign key cost the import more than any index: PostgreSQL checks it with one
look-up and one row lock (FOR KEY SHARE) of the contact per parameter row inserted,
about 40% of the time of `contact_parameters`' insert (five rows per contact in the
benchmark's files; docs/postgresql.md has the figures). Its only work for Segmenti is
the cascade: every contact id a parameter row holds comes from the contact written in
the same transaction (contacts/importer.py, contacts/service.py).

So migration 0012_import_parameters_cascade drops it on plain PostgreSQL and creates
this trigger: after any DELETE on `contacts` (the API's delete, a user's cascade, SQL
typed by hand) it deletes the gone contacts' parameter rows with one set-based
statement over the statement's transition table, in the same transaction. Inserts pay
nothing.

SQLite keeps the foreign key (its check is a b-tree probe, not a trigger), and so does
Citus, where triggers on distributed tables are refused and co-located foreign keys are
checked inside a shard: the migration leaves a Citus database alone, and
`segmenti db distribute` puts the foreign key back (`TO_FOREIGN_KEY`) before placing
the tables of a database migrated as plain PostgreSQL.
"""

from __future__ import annotations

TRIGGER = "contacts_parameters_cascade"
FOREIGN_KEY = "fk_contact_parameters_user_id_contacts"

_ADD_FOREIGN_KEY = (
    f"ALTER TABLE contact_parameters ADD CONSTRAINT {FOREIGN_KEY}"
    " FOREIGN KEY (user_id, contact_id) REFERENCES contacts (user_id, id) ON DELETE CASCADE"
)
_DROP_TRIGGER = [
    f"DROP TRIGGER IF EXISTS {TRIGGER} ON contacts",
    "DROP FUNCTION IF EXISTS contact_parameters_cascade()",
]

PG_CREATE = [
    """CREATE OR REPLACE FUNCTION contact_parameters_cascade() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM contact_parameters AS p USING gone
        WHERE p.user_id = gone.user_id AND p.contact_id = gone.id;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER {TRIGGER} AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION contact_parameters_cascade()""",
    f"ALTER TABLE contact_parameters DROP CONSTRAINT IF EXISTS {FOREIGN_KEY}",
]

# Back to the foreign key (downgrade, and Citus before distributing). Rows of contacts
# deleted while neither held cannot exist; the DELETE makes sure the key can be added.
TO_FOREIGN_KEY = [
    """DELETE FROM contact_parameters AS p WHERE NOT EXISTS (
        SELECT 1 FROM contacts AS c WHERE c.user_id = p.user_id AND c.id = p.contact_id)""",
    _ADD_FOREIGN_KEY,
    *_DROP_TRIGGER,
]

HAS_TRIGGER = (
    "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'contacts_parameters_cascade'"
    " AND tgrelid = to_regclass('contacts'))"
)
