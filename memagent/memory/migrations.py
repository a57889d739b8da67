"""Numbered schema migrations for the memagent database, on SQLite and on PostgreSQL.

Migration N (1-based) upgrades version N-1 to N; where the version is recorded is the dialect's business
(SQLite: ``PRAGMA user_version``, 0 = empty file; PostgreSQL: the ``memagent_schema`` table). Migrations are
append-only: never edit one that has shipped, add a new one, because users' databases already ran the old ones.
That is also why they are written as the DDL they ran, not derived from ``schema.py``. The caller (``Store``)
runs them inside one write transaction (DDL is transactional on both), so a crash half-way leaves the previous
version intact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from memagent.errors import StoreError
from memagent.memory.dialect import Dialect
from memagent.memory.reindex import backfill_messages, backfill_passages
from memagent.memory.rows import one_line
from memagent.memory.sqlite import fts_query

__all__ = [
    "LATEST_VERSION",
    "MEMORY_VERSIONS_SCHEMA",
    "MIGRATIONS",
    "PASSAGE_TAGS_SCHEMA",
    "Migration",
    "apply_pending",
    "check_version",
    "fts_query",
    "embeddings_migration",
    "search_text_migration",
]

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


# PostgreSQL's full-text index: a generated tsvector over the text with diacritics removed (NFKD, then the
# combining marks dropped: what FTS5's remove_diacritics does for Latin text) and case folded by the 'simple'
# configuration. Only the first 100,000 characters count: a tsvector holds at most 1 MB.
_SEARCH_VECTOR = (
    "search_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, "
    "regexp_replace(normalize(left(text, 100000), NFKD), '[\\u0300-\\u036f]', '', 'g'))) STORED"
)

_V1_POSTGRES: tuple[str, ...] = (
    """
    CREATE TABLE agents (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT '{}',
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )
    """,
    f"""
    CREATE TABLE messages (
        id BIGSERIAL PRIMARY KEY,
        agent_id BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL DEFAULT '{{}}',
        created_at TIMESTAMPTZ NOT NULL,
        {_SEARCH_VECTOR}
    )
    """,
    "CREATE INDEX messages_agent_created ON messages(agent_id, created_at, id)",
    "CREATE INDEX messages_search ON messages USING gin (search_vector)",
    f"""
    CREATE TABLE passages (
        id BIGSERIAL PRIMARY KEY,
        agent_id BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        {_SEARCH_VECTOR}
    )
    """,
    "CREATE INDEX passages_agent_id ON passages(agent_id, id)",
    "CREATE INDEX passages_search ON passages USING gin (search_vector)",
)


def _v1_initial_schema(conn: Connection) -> None:
    """Agents, messages, passages and their full-text indexes (FTS5 tables and triggers on SQLite; a generated
    ``tsvector`` column with a GIN index on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        statements = _V1_POSTGRES
    else:
        statements = (*_V1_TABLES, *_fts_statements("messages"), *_fts_statements("passages"))
    for statement in statements:
        conn.exec_driver_sql(statement)


def _v2_agent_version(conn: Connection) -> None:
    """A version number on each agent's state, bumped by every write: concurrent processes on one agent
    re-read the state before they change it, so no edit is written over (see ``Transaction.lock_agent``)."""
    conn.exec_driver_sql("ALTER TABLE agents ADD COLUMN version INTEGER NOT NULL DEFAULT 0")  # valid on both


def _memory_versions(conn: Connection) -> None:
    """Core-memory history: a version per change of a block, with its old and new text and what made it (see
    ``versions.py``). Deleted with its agent."""
    postgres = conn.dialect.name == "postgresql"
    big_id = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    integer = "BIGINT" if postgres else "INTEGER"
    conn.exec_driver_sql(
        f"""
        CREATE TABLE memory_versions (
            id {big_id},
            agent_id {integer} NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            block TEXT NOT NULL,
            old_text TEXT,
            new_text TEXT,
            settings TEXT NOT NULL DEFAULT '{{}}',
            source TEXT NOT NULL,
            message_id {integer},
            reverts {integer},
            created_at {"TIMESTAMPTZ" if postgres else "TEXT"} NOT NULL
        )
        """
    )
    conn.exec_driver_sql("CREATE INDEX memory_versions_agent ON memory_versions(agent_id, id)")


# Full-text migration: the index holds what ``search_text.py`` builds: ``search_text`` (the row, its role and date)
# and ``search_context`` (the row before it), with English stemming. SQLite: the FTS5 tables are remade over the
# two columns with the porter tokenizer, holding only the rows with a search text (function results are not);
# PostgreSQL: ``search_vector`` is regenerated from them with the 'english' configuration (stemming, its own
# stopwords), the context weighted 'B' and the row 'A'.
_STEMMED_TOKENIZER = "porter unicode61 remove_diacritics 2"


def _stemmed_fts(table: str) -> tuple[str, ...]:
    fts = f"{table}_fts"
    delete = (
        f"INSERT INTO {fts}({fts}, rowid, search_context, search_text) "
        "SELECT 'delete', old.id, old.search_context, old.search_text"
    )
    insert = f"INSERT INTO {fts}(rowid, search_context, search_text) SELECT new.id, new.search_context, new.search_text"
    return (
        f"CREATE VIRTUAL TABLE {fts} USING fts5(search_context, search_text, content='{table}', content_rowid='id', "
        f"tokenize='{_STEMMED_TOKENIZER}')",
        f"INSERT INTO {fts}(rowid, search_context, search_text) "
        f"SELECT id, search_context, search_text FROM {table} WHERE search_text != ''",
        f"CREATE TRIGGER {table}_fts_ai AFTER INSERT ON {table} WHEN new.search_text != '' BEGIN {insert}; END",
        f"CREATE TRIGGER {table}_fts_ad AFTER DELETE ON {table} WHEN old.search_text != '' BEGIN {delete}; END",
        f"CREATE TRIGGER {table}_fts_au AFTER UPDATE OF search_context, search_text ON {table} BEGIN "
        f"{delete} WHERE old.search_text != ''; {insert} WHERE new.search_text != ''; END",
    )


def _weighted_vector(column: str, weight: str) -> str:
    folded = f"regexp_replace(normalize(left({column}, 100000), NFKD), '[\\u0300-\\u036f]', '', 'g')"
    return f"setweight(to_tsvector('english'::regconfig, {folded}), '{weight}')"


_V3_SEARCH_VECTOR = (
    f"ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({_weighted_vector('search_context', 'B')} || "
    f"{_weighted_vector('search_text', 'A')}) STORED"
)


def _search_text(conn: Connection) -> None:
    """``search_text`` and ``search_context`` columns on messages and passages, filled for every stored row, and
    the full-text index rebuilt over them (see above)."""
    tables = ("messages", "passages")
    postgres = conn.dialect.name == "postgresql"
    for table in tables:
        if postgres:
            conn.exec_driver_sql(f"DROP INDEX {table}_search")
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN search_vector")
        else:
            for trigger in ("ai", "ad", "au"):
                conn.exec_driver_sql(f"DROP TRIGGER {table}_fts_{trigger}")
            conn.exec_driver_sql(f"DROP TABLE {table}_fts")
        for column in ("search_text", "search_context"):
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
    backfill_messages(conn)
    backfill_passages(conn)
    for table in tables:
        if postgres:
            conn.exec_driver_sql(f"ALTER TABLE {table} {_V3_SEARCH_VECTOR}")
            conn.exec_driver_sql(f"CREATE INDEX {table}_search ON {table} USING gin (search_vector)")
        else:
            for statement in _stemmed_fts(table):
                conn.exec_driver_sql(statement)


def _passage_tags(conn: Connection) -> None:
    """Tags on archival passages (see ``tags.py``): one row per passage and tag, deleted with the passage or its
    agent, indexed by (agent, tag) for searches filtered by tags."""
    integer = "BIGINT" if conn.dialect.name == "postgresql" else "INTEGER"
    conn.exec_driver_sql(
        f"""
        CREATE TABLE passage_tags (
            passage_id {integer} NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
            agent_id {integer} NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (passage_id, tag)
        )
        """
    )
    conn.exec_driver_sql("CREATE INDEX passage_tags_agent_tag ON passage_tags(agent_id, tag, passage_id)")


def pgvector_schema(conn: Connection) -> str:
    """The quoted schema pgvector's type and operators live in (the extension is installed)."""
    found = conn.exec_driver_sql(
        "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    ).scalar_one()
    return str(found)


def create_pgvector(conn: Connection) -> str | None:
    """pgvector's quoted schema, the extension created here if it is not yet; None when the server has no pgvector or
    this user may not create it (then the failed statement is rolled back to a savepoint, the transaction goes on)."""
    conn.exec_driver_sql("SAVEPOINT pgvector")
    try:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except DBAPIError:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT pgvector")
        return None
    finally:
        conn.exec_driver_sql("RELEASE SAVEPOINT pgvector")
    # The extension is the database's, in the schema it was first created in: maybe not on this search path.
    return pgvector_schema(conn)


def index_pgvector(conn: Connection, pgvector: str) -> None:
    """The HNSW index of cosine distance over ``embeddings.vector`` (a pgvector column)."""
    conn.exec_driver_sql(f"CREATE INDEX embeddings_hnsw ON embeddings USING hnsw (vector {pgvector}.vector_cosine_ops)")


def _embeddings(conn: Connection) -> None:
    """The ``embeddings`` table: a dense vector per embedded message or passage (see ``vectors.py``), deleted with
    its row and its agent. Every row stored before this is left without a vector: the background worker and
    `memagent agents reindex` embed those. PostgreSQL keeps the vectors in pgvector's ``vector(384)`` with an HNSW
    index for cosine distance; SQLite as float32 BLOBs. A PostgreSQL server without pgvector (or a user who may not
    create it) gets a BYTEA column that stays empty: search there is full text only until pgvector is installed
    (``postgres.dense_vectors`` then converts the column)."""
    postgres = conn.dialect.name == "postgresql"
    big_id = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    integer = "BIGINT" if postgres else "INTEGER"
    pgvector = create_pgvector(conn) if postgres else None
    vector = f"{pgvector}.vector(384)" if pgvector else "BYTEA" if postgres else "BLOB"
    conn.exec_driver_sql(
        f"""
        CREATE TABLE embeddings (
            id {big_id},
            agent_id {integer} NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            message_id {integer} REFERENCES messages(id) ON DELETE CASCADE,
            passage_id {integer} REFERENCES passages(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            vector {vector} NOT NULL
        )
        """
    )
    conn.exec_driver_sql("CREATE UNIQUE INDEX embeddings_message ON embeddings(message_id, model)")
    conn.exec_driver_sql("CREATE UNIQUE INDEX embeddings_passage ON embeddings(passage_id, model)")
    conn.exec_driver_sql("CREATE INDEX embeddings_agent ON embeddings(agent_id, model, id)")
    if pgvector:
        index_pgvector(conn, pgvector)


def _embedding_deletions(conn: Connection) -> None:
    """SQLite: a count of each agent's deleted vectors, bumped by a trigger on every delete from ``embeddings``
    (also those of ON DELETE CASCADE). A process that keeps an agent's vectors in memory (``vectors.DenseIndex``)
    reads it and the newest vector id before each search, both by primary key or index seek: it had counted every
    vector of the agent instead, 20 ms at 100k vectors and 110-220 ms at 1M. PostgreSQL keeps no vectors in memory
    (pgvector's index), so nothing there."""
    if conn.dialect.name == "postgresql":
        return
    conn.exec_driver_sql(
        "CREATE TABLE embedding_deletions (agent_id INTEGER PRIMARY KEY, deleted INTEGER NOT NULL DEFAULT 0)"
    )
    conn.exec_driver_sql(
        """
        CREATE TRIGGER embeddings_deleted AFTER DELETE ON embeddings BEGIN
            INSERT OR IGNORE INTO embedding_deletions (agent_id, deleted) VALUES (old.agent_id, 0);
            UPDATE embedding_deletions SET deleted = deleted + 1 WHERE agent_id = old.agent_id;
        END
        """
    )


VECTOR_COLUMN_TYPE = (
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = to_regclass('embeddings') AND attname = 'vector'"
)
"""PostgreSQL: the type of ``embeddings.vector`` ("bytea" when made without pgvector); no row without the table."""


def adopt_pgvector(conn: Connection) -> bool:
    """Move an ``embeddings`` table made without pgvector (a BYTEA column, empty: nothing embeds there) onto pgvector,
    creating the extension if needed; False, and nothing changed, if it can't be had. Not a numbered migration: the
    same schema version, with the column type the server allows (``Dialect.vector_storage`` tells when to run it).
    The table is locked first and looked at again: another process may have moved it meanwhile."""
    conn.exec_driver_sql("LOCK TABLE embeddings IN ACCESS EXCLUSIVE MODE")
    if conn.exec_driver_sql(VECTOR_COLUMN_TYPE).scalar_one() != "bytea":
        return True
    pgvector = create_pgvector(conn)
    if pgvector is None:
        return False
    conn.exec_driver_sql("DELETE FROM embeddings")
    conn.exec_driver_sql(f"ALTER TABLE embeddings ALTER COLUMN vector TYPE {pgvector}.vector(384) USING NULL")
    index_pgvector(conn, pgvector)
    return True


MIGRATIONS: Sequence[Migration] = (
    _v1_initial_schema,
    _v2_agent_version,
    _memory_versions,
    _search_text,
    _passage_tags,
    _embeddings,
    _embedding_deletions,
)
"""Index i holds the migration to version i + 1. Append only."""

embeddings_migration: Migration = _embeddings
"""The migration that made the ``embeddings`` table (found by it, not by its number: migrations are appended)."""

search_text_migration: Migration = _search_text
"""The migration that built ``search_text`` (tests find the schema before it by it, not by its number)."""

LATEST_VERSION = len(MIGRATIONS)
MEMORY_VERSIONS_SCHEMA = MIGRATIONS.index(_memory_versions) + 1
"""The schema version from which the ``memory_versions`` table exists (an older file opened read-only lacks it)."""
PASSAGE_TAGS_SCHEMA = MIGRATIONS.index(_passage_tags) + 1
"""The schema version from which passages can have tags (``passage_tags``)."""


def check_version(conn: Connection, dialect: Dialect, known: int) -> int:
    """The database's schema version, if this code can open it: StoreError for a newer schema, or for another
    program's database (tables but no version)."""
    current = dialect.schema_version(conn)
    if current > known:
        raise StoreError(
            f"Can't open database {dialect.where}: it was written by a newer memagent (schema "
            f"v{current}, this version knows up to v{known}); upgrade memagent or choose another database path"
        )
    foreign = dialect.foreign_tables(conn) if current == 0 else []
    if foreign:
        raise StoreError(
            one_line(
                f"Can't open database {dialect.where}: it is not a memagent database (it holds tables "
                f"{', '.join(foreign[:5])} but no memagent schema); choose another database path"
            )
        )
    return current


def apply_pending(
    conn: Connection, dialect: Dialect, current: int, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Run every migration after ``current`` and record the new version; returns it.

    Must be called inside a write transaction, so either all pending migrations land or none do."""
    for number in range(current + 1, len(migrations) + 1):
        migrations[number - 1](conn)
        dialect.set_schema_version(conn, number)
    return len(migrations)
