"""SQLite files written before the store moved to SQLAlchemy Core open, upgrade and read back exactly.

The files are built here with the DDL and the value formats of the code at 366638f, written out literally (not
imported): schema v1 and v2, the version in ``PRAGMA user_version``, timestamps as ISO-8601 text, JSON as text.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memagent.memory.migrations import LATEST_VERSION
from memagent.memory.search_text import day_text
from memagent.memory.store import Store

V1_DDL = (
    """
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
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
    *(
        statement
        for table in ("messages", "passages")
        for statement in (
            f"CREATE VIRTUAL TABLE {table}_fts USING fts5(text, content='{table}', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')",
            f"CREATE TRIGGER {table}_fts_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {table}_fts(rowid, text) VALUES (new.id, new.text); END",
            f"CREATE TRIGGER {table}_fts_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {table}_fts({table}_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
            f"CREATE TRIGGER {table}_fts_au AFTER UPDATE OF text ON {table} BEGIN "
            f"INSERT INTO {table}_fts({table}_fts, rowid, text) VALUES ('delete', old.id, old.text); "
            f"INSERT INTO {table}_fts(rowid, text) VALUES (new.id, new.text); END",
        )
    ),
)
V2_DDL = ("ALTER TABLE agents ADD COLUMN version INTEGER NOT NULL DEFAULT 0",)

CREATED = "2026-12-02T17:10:07.123456+00:00"
STATE = {"preset": "memgpt_chat", "core_memory": {"human": {"content": "Brad, likes tea 🍵"}}, "in_context": [1, 2]}
PAYLOADS = [
    {"role": "user", "content": json.dumps({"type": "user_message", "message": "Grüße aus Zürich"})},
    {"role": "assistant", "content": "thinking", "function_call": {"name": "send_message", "arguments": "{}"}},
]
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def old_file(path: Path, version: int) -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    for statement in V1_DDL + (V2_DDL if version >= 2 else ()):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(
        "INSERT INTO agents (name, state, created_at, updated_at) VALUES (?, ?, ?, ?)",
        ("brad", json.dumps(STATE), CREATED, CREATED),
    )
    for payload, text in zip(PAYLOADS, ("Grüße aus Zürich", "thinking"), strict=True):
        conn.execute(
            "INSERT INTO messages (agent_id, role, text, payload, created_at) VALUES (1, ?, ?, ?, ?)",
            (payload["role"], text, json.dumps(payload), CREATED),
        )
    passage = "INSERT INTO passages (agent_id, text, created_at) VALUES (1, 'Brad was born in Zürich', ?)"
    conn.execute(passage, (CREATED,))
    conn.execute("COMMIT")
    conn.close()
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_a_file_of_the_previous_store_opens_upgrades_and_reads_back_identically(tmp_path: Path, version: int) -> None:
    path = old_file(tmp_path / f"v{version}.db", version)
    moment = datetime(2026, 12, 2, 17, 10, 7, 123456, tzinfo=UTC)
    with Store(path, read_only=True) as store:  # read-only: nothing upgraded, everything readable
        assert store.schema_version == version
        assert store.find_agent("brad").state == STATE
        assert [m.id for m in store.search_messages(1, "zurich").items] == [1]  # the old FTS5 index serves
    with Store(path) as store:
        assert store.schema_version == LATEST_VERSION
        row = store.find_agent("brad")
        assert (row.state, row.created_at, row.updated_at, row.version) == (STATE, moment, moment, 0)
        messages = store.get_messages(row.id, [1, 2])
        assert [m.payload for m in messages] == PAYLOADS and [m.created_at for m in messages] == [moment] * 2
        # The index rebuilt by migration 3: message 1, and message 2, whose context (the turn before) it is.
        assert [m.id for m in store.search_messages(row.id, "zurich").items] == [1, 2]
        assert [m.id for m in store.search_messages(row.id, "thinking").items] == [2]
        assert [p.text for p in store.search_passages(row.id, "zurich").items] == ["Brad was born in Zürich"]
        with store.transaction() as tx:
            tx.save_agent_state(row.id, {**STATE, "in_context": [1, 2, 3]}, 0)
            tx.add_message(row.id, "user", "new words", {"role": "user", "content": "new words"})
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    rows = raw.execute("SELECT created_at, payload FROM messages ORDER BY id").fetchall()
    assert rows[:2] == [(CREATED, json.dumps(p)) for p in PAYLOADS]  # untouched, byte for byte
    texts = raw.execute("SELECT text, search_text, search_context FROM messages ORDER BY id").fetchall()
    day = day_text(moment)
    assert texts[:2] == [
        ("Grüße aus Zürich", f"({day}) user: Grüße aus Zürich", ""),
        ("thinking", f"({day}) assistant: thinking", "user: Grüße aus Zürich"),
    ]
    assert raw.execute("SELECT text, search_text, search_context FROM passages").fetchall() == [
        ("Brad was born in Zürich", f"({day}) Brad was born in Zürich", "")
    ]
    assert ISO_UTC.fullmatch(rows[2][0]) and json.loads(rows[2][1]) == {"role": "user", "content": "new words"}
    state, updated = raw.execute("SELECT state, updated_at FROM agents").fetchone()
    assert json.loads(state)["in_context"] == [1, 2, 3] and ISO_UTC.fullmatch(updated)
    raw.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")  # the index kept in sync


def test_the_search_text_migration_indexes_the_rows_already_stored_on_both_databases(database: str) -> None:
    """A database at the schema before the index held role, date and context, written with plain SQL (the store of
    then wrote no search columns), upgraded by opening it: every row is indexed as a new one would be."""
    import sqlalchemy as sa

    from memagent.memory.migrations import MIGRATIONS, search_text_migration

    before = MIGRATIONS.index(search_text_migration)
    with Store(database, migrations=MIGRATIONS[:before]):
        pass
    engine = sa.create_engine(database if "://" in database else f"sqlite:///{database}")
    moment = datetime(2026, 12, 2, 17, 10, 7, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO agents (name, state, created_at, updated_at) VALUES ('a', '{}', :t, :t)"),
                     {"t": moment.isoformat()})
        agent_id = conn.execute(sa.text("SELECT id FROM agents")).scalar_one()
        insert = "INSERT INTO messages (agent_id, role, text, payload, created_at) VALUES (:a, :r, :x, '{}', :t)"
        for role, text in [("user", "I adopted a puppy"), ("function", "puppy status OK"), ("assistant", "Congrats!")]:
            conn.execute(sa.text(insert), {"a": agent_id, "r": role, "x": text, "t": moment.isoformat()})
        for text in ("Ann lives in Lisbon", "She sails on weekends"):
            conn.execute(
                sa.text("INSERT INTO passages (agent_id, text, created_at) VALUES (:a, :x, :t)"),
                {"a": agent_id, "x": text, "t": moment.isoformat()},
            )
    engine.dispose()
    with Store(database) as store:
        assert store.schema_version == LATEST_VERSION
        found = store.search_messages(agent_id, "puppies adopted")  # stemmed; the function row is not indexed
        assert [m.text for m in found.items] == ["I adopted a puppy", "Congrats!"]  # the reply: by its context
        assert [p.text for p in store.search_passages(agent_id, "Lisbon").items] == [
            "Ann lives in Lisbon", "She sails on weekends"
        ]
        assert [m.text for m in store.all_messages(agent_id)] == ["I adopted a puppy", "puppy status OK", "Congrats!"]
        with store.transaction() as tx:  # and rows written after the upgrade join the same index
            tx.add_message(agent_id, "user", "The puppy is called Biscuit", {})
        assert store.search_messages(agent_id, "biscuit").total == 1
