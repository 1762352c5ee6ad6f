"""The contact search index: what the database keeps so that `search` over a million
contacts reads the matches instead of every contact (docs/search.md).

SQLite: `contact_search`, an FTS5 table with the trigram tokenizer over each contact's
owner, name and phone number, its rowid the contact's id. Triggers on `contacts` keep
it in step in the writing transaction, whichever path writes (one contact, an import,
a bulk segment, a delete, a user's cascade). The owner column holds the user id spelt
as exactly three characters, so it is one trigram: a query ANDs that one term with the
text, and FTS5 reads only this user's entries of a rare term (a small tenant's search
does not walk a big tenant's matches).

PostgreSQL: a GIN index over (user_id, name, phone_number) with pg_trgm's trigram
operator class for the two text columns and btree_gin's for user_id (tables.py), the
same shape: the user is one key of the index. PostgreSQL maintains it itself.

Both are built by migration 0010_contact_search.
"""

from __future__ import annotations

SEARCH_TABLE = "contact_search"
"""The SQLite FTS5 table (and the prefix of its shadow tables)."""

# The user id as three characters of the CJK block (12 bits each): one trigram, made of
# characters no case folding touches. The same formula in SQL (the triggers) and in
# Python (the queries); user ids are below 2**31.
_OWNER_BASE = 0x4E00


def owner_token(user_id: int) -> str:
    return "".join(chr(_OWNER_BASE + (user_id >> shift & 0xFFF)) for shift in (24, 12, 0))


# The owner column is `owner_token(user_id)` spelt in SQL: 19968 is _OWNER_BASE.
# columnsize=0: no per-row sizes (nothing ranks results). content='': the text lives in
# `contacts`, the index keeps only its trigrams, so a delete hands back the old values
# (the triggers have them). The update trigger fires only when an indexed value changed.
_INDEX_NEW = """
    INSERT INTO contact_search (rowid, owner, name, phone_number) VALUES (
        new.id,
        char(19968 + ((new.user_id >> 24) & 4095), 19968 + ((new.user_id >> 12) & 4095),
             19968 + (new.user_id & 4095)),
        new.name, new.phone_number);"""
_UNINDEX_OLD = """
    INSERT INTO contact_search (contact_search, rowid, owner, name, phone_number) VALUES (
        'delete', old.id,
        char(19968 + ((old.user_id >> 24) & 4095), 19968 + ((old.user_id >> 12) & 4095),
             19968 + (old.user_id & 4095)),
        old.name, old.phone_number);"""
SQLITE_CREATE = [
    """CREATE VIRTUAL TABLE contact_search USING fts5(
        owner, name, phone_number, content='', columnsize=0, tokenize='trigram')""",
    "CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts BEGIN" + _INDEX_NEW + " END",
    "CREATE TRIGGER contacts_search_delete AFTER DELETE ON contacts BEGIN" + _UNINDEX_OLD + " END",
    """CREATE TRIGGER contacts_search_update AFTER UPDATE OF user_id, name, phone_number
    ON contacts
    WHEN old.name IS NOT new.name OR old.phone_number IS NOT new.phone_number
        OR old.user_id IS NOT new.user_id
    BEGIN"""
    + _UNINDEX_OLD
    + _INDEX_NEW
    + " END",
    """INSERT INTO contact_search (rowid, owner, name, phone_number)
    SELECT id,
        char(19968 + ((user_id >> 24) & 4095), 19968 + ((user_id >> 12) & 4095),
             19968 + (user_id & 4095)),
        name, phone_number
    FROM contacts""",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS contacts_search_update",
    "DROP TRIGGER IF EXISTS contacts_search_delete",
    "DROP TRIGGER IF EXISTS contacts_search_insert",
    "DROP TABLE IF EXISTS contact_search",
]

# FTS5 keeps a write's new entries in a hash table in memory and flushes it as a new
# segment of the index whenever it holds more than `hashsize` bytes (1 MiB by default),
# merging segments as they pile up. A 100,000-row import batch flushed and merged about
# 25 times at the default; at 16 MiB a handful of times: the index's cost to a 100,000-row
# import went from 19-43% to 2-4% (docs/search.md). The memory is held by the one
# writing connection while it writes, and freed at each flush. Persistent (in
# contact_search_config): set by migration 0013_import_search_hashsize.
SQLITE_HASHSIZE = 16 * 2**20
SQLITE_DEFAULT_HASHSIZE = 2**20


def sqlite_set_hashsize(size: int) -> str:
    # An int, never user input.
    return f"INSERT INTO contact_search (contact_search, rank) VALUES ('hashsize', {int(size)})"  # noqa: S608


PG_CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    # CONCURRENTLY: contact writes go on while it is built (run outside a transaction).
    # A failed build leaves an INVALID index behind: drop it and run the migration again.
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_contacts_search ON contacts USING gin "
    "(user_id, name gin_trgm_ops, phone_number gin_trgm_ops)",
]

PG_DROP = ["DROP INDEX CONCURRENTLY IF EXISTS ix_contacts_search"]


def is_search_table(name: str) -> bool:
    """The FTS5 table and its shadow tables (contact_search_data, ..._idx, ...): not in
    tables.py, so schema comparisons leave them out."""
    return name == SEARCH_TABLE or name.startswith(f"{SEARCH_TABLE}_")
