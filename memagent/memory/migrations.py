"""Numbered schema migrations for the memagent SQLite database.

The schema version lives in ``PRAGMA user_version`` (0 = empty file). Migration N (1-based) upgrades
version N-1 to N. Migrations are append-only: never edit one that has shipped, add a new one, because
users' databases already ran the old ones. The caller (``Store``) runs them inside one write
transaction, so a crash half-way leaves the previous version intact.

Also here: ``fts_query``, which turns user text into an FTS5 expression. It lives next to the
tokenizer configuration because its quoting rules depend on how that tokenizer splits text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from itertools import groupby

from sqlalchemy import Connection

Migration = Callable[[Connection], None]

# FTS5 over the searchable text only. External content (``content=...``) keeps one copy of the text;
# the triggers below keep the index in sync with the base table on insert, update and delete
# (including rows removed by ON DELETE CASCADE, which fire the child table's triggers too).
_TOKENIZER = "unicode61 remove_diacritics 2"

_V1_TABLES: tuple[str, ...] = (
    """
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    # AUTOINCREMENT: ids are never reused, so an id remembered in an agent's state can't silently
    # start pointing at a different message after a delete.
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX messages_agent_created ON messages(agent_id, created_at, id)",
    """
    CREATE TABLE passages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX passages_agent_id ON passages(agent_id, id)",
)


def _fts_statements(table: str) -> tuple[str, ...]:
    """The FTS5 table and its three sync triggers for ``table.text``."""
    fts = f"{table}_fts"
    return (
        f"CREATE VIRTUAL TABLE {fts} USING fts5(text, content='{table}', content_rowid='id', tokenize='{_TOKENIZER}')",
        f"CREATE TRIGGER {table}_fts_ai AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END",
        f"CREATE TRIGGER {table}_fts_ad AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text); END",
        f"CREATE TRIGGER {table}_fts_au AFTER UPDATE OF text ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text); "
        f"INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END",
    )


def _v1_initial_schema(conn: Connection) -> None:
    """Agents, messages, passages and their full-text indexes."""
    for statement in (*_V1_TABLES, *_fts_statements("messages"), *_fts_statements("passages")):
        conn.exec_driver_sql(statement)


def _v2_agent_version(conn: Connection) -> None:
    """A version number on each agent's state, bumped by every write: concurrent processes on one agent
    re-read the state before they change it, so no edit is written over (see ``Transaction.lock_agent``)."""
    conn.exec_driver_sql("ALTER TABLE agents ADD COLUMN version INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: Sequence[Migration] = (_v1_initial_schema, _v2_agent_version)
"""Index i holds the migration to version i + 1. Append only."""

LATEST_VERSION = len(MIGRATIONS)


def schema_version(conn: Connection) -> int:
    """The version recorded in the database file (0 for a new, empty file)."""
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


def foreign_tables(conn: Connection) -> list[str]:
    """Tables in a database whose schema version is 0: another program's, since memagent sets the version
    in the same transaction that creates its tables."""
    rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return [str(row[0]) for row in rows]


def apply_pending(conn: Connection, current: int, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Run every migration after ``current`` and record the new version; returns it.

    Must be called inside a write transaction (``PRAGMA user_version`` is transactional), so either
    all pending migrations land or none do.
    """
    for number in range(current + 1, len(migrations) + 1):
        migrations[number - 1](conn)
        # PRAGMA values can't be bound parameters; ``number`` is an int we computed.
        conn.exec_driver_sql(f"PRAGMA user_version = {int(number)}")
    return len(migrations)


# ------------------------------------------------------------------------ FTS5 query syntax
# Kept next to the tokenizer definition because the quoting rules depend on it.


def _is_token_char(ch: str) -> bool:
    """A superset of FTS5 unicode61's token characters (letters, numbers, private use, marks).

    Erring towards "token" is safe: each term is re-tokenized by FTS5 inside its quoted string, so a
    term FTS5 would split just becomes a phrase."""
    category = unicodedata.category(ch)
    return category[0] in "LNM" or category == "Co"


def _is_indexable(term: str) -> bool:
    """Marks alone produce no FTS5 token; a term needs a letter, number or private-use character."""
    return any(unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Co" for ch in term)


def query_terms(query: str) -> list[str]:
    """The distinct (case-insensitively) searchable terms of ``query``, in order."""
    seen: set[str] = set()
    terms: list[str] = []
    for is_token, chars in groupby(query, key=_is_token_char):
        term = "".join(chars)
        if is_token and _is_indexable(term) and term.lower() not in seen:
            seen.add(term.lower())
            terms.append(term)
    return terms


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression that searches ``query`` literally, or None if it has no terms.

    Every term becomes a double-quoted FTS5 string (so AND/OR/NOT/NEAR, ``*``, ``^``, ``:``, ``-``,
    parentheses and quotes are just text) and the terms are OR-ed: bm25 then ranks rows that match
    more of the terms first."""
    terms = query_terms(query)
    if not terms:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
