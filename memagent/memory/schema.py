"""The memagent tables as SQLAlchemy Core definitions: what every statement of the store is written against.

The tables are created by the numbered migrations (``migrations.py``), not from these definitions: a shipped
migration never changes, while these describe the schema as of the latest one. A test checks that the two agree
on both databases.

Two column types keep the stored values exactly as the SQLite files written before them hold them:
- ``UtcTime``: aware UTC datetimes. SQLite keeps fixed-width ISO-8601 text (``2026-12-02T17:10:07.123456+00:00``,
  so text order is time order); PostgreSQL a ``timestamptz``.
- ``JsonText``: a JSON document kept as its text on both (``json.dumps`` as written, read back key for key in the
  same order; PostgreSQL's ``jsonb`` would reorder keys).

What the full-text index holds is ``search_text`` (``search_text.py``); PostgreSQL's ``search_vector`` over it is
the dialect's own business: see ``postgres.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from memagent.memory.embed import from_bytes, to_bytes
from memagent.memory.rows import parse_time, utc_iso


class UtcTime(TypeDecorator[datetime]):
    """An aware UTC datetime: ISO-8601 text on SQLite, ``timestamptz`` on PostgreSQL. A naive datetime is local."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return parse_time(utc_iso(value))
        return utc_iso(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return parse_time(str(value))


class JsonText(TypeDecorator[Any]):
    """A JSON document stored as its text (``json.dumps`` of the value), decoded on the way out."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class PgVector(UserDefinedType[str]):
    """pgvector's ``vector`` as its text form, bound without a cast: the server reads the text as the column's type
    (the type may live in a schema outside the search path: see the embeddings migration)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "vector"


class Embedding(TypeDecorator[bytes]):
    """A dense vector as float32 bytes (``embed.to_bytes``): a BLOB on SQLite; pgvector's ``vector`` on PostgreSQL,
    sent and read back in its text form ``[0.1,0.2,...]``."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(PgVector())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return "[" + ",".join(repr(number) for number in from_bytes(value)) + "]"

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None or isinstance(value, bytes | memoryview):
            return None if value is None else bytes(value)
        return to_bytes([float(number) for number in str(value).strip("[]").split(",")])


# SQLite's rowid alias must be spelled INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

# AUTOINCREMENT (SQLite) and sequences (PostgreSQL): ids are never reused, so an id remembered in an agent's
# state can't silently start pointing at a different message after a delete.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("state", JsonText, nullable=False, server_default="{}"),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("updated_at", UtcTime, nullable=False),
    # Bumped by every write of the state (migration 2): see Transaction.lock_agent.
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sqlite_autoincrement=True,
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("agent_id", Id, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False, server_default=""),  # what search sees
    sa.Column("payload", JsonText, nullable=False, server_default="{}"),  # the whole message
    sa.Column("created_at", UtcTime, nullable=False),
    # What the full-text index holds (the full-text migration): see search_text.py. "" = not indexed.
    sa.Column("search_text", sa.Text, nullable=False, server_default=""),
    sa.Column("search_context", sa.Text, nullable=False, server_default=""),
    sa.Index("messages_agent_created", "agent_id", "created_at", "id"),
    sqlite_autoincrement=True,
)

passages = sa.Table(
    "passages",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("agent_id", Id, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("search_text", sa.Text, nullable=False, server_default=""),  # see search_text.py
    sa.Column("search_context", sa.Text, nullable=False, server_default=""),
    sa.Index("passages_agent_id", "agent_id", "id"),
    sqlite_autoincrement=True,
)

# Core-memory history (see versions.py): one row per change of a block, written in the transaction of the edit.
# ``old_text``/``new_text`` are NULL where the block did not exist (created, deleted); ``settings`` holds what the
# block was like before (after, if created): max_length, position, and description/read_only when set.
# ``message_id`` names the stored call that made the change (no foreign key: /pop may delete the call, the
# history stays); ``reverts`` the version an /undo reverted.
memory_versions = sa.Table(
    "memory_versions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("agent_id", Id, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("block", sa.Text, nullable=False),
    sa.Column("old_text", sa.Text),
    sa.Column("new_text", sa.Text),
    sa.Column("settings", JsonText, nullable=False, server_default="{}"),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("reverts", sa.BigInteger),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Index("memory_versions_agent", "agent_id", "id"),
    sqlite_autoincrement=True,
)

# Tags on archival passages (see tags.py): one row per (passage, tag), normalised; gone with the passage or agent.
# The (agent_id, tag) index serves a search filtered by tags.
passage_tags = sa.Table(
    "passage_tags",
    metadata,
    sa.Column("passage_id", Id, sa.ForeignKey("passages.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("agent_id", Id, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tag", sa.Text, primary_key=True),
    sa.Index("passage_tags_agent_tag", "agent_id", "tag", "passage_id"),
)

# Dense vectors of messages and passages (the embeddings migration; see vectors.py): one row per embedded row and
# model, deleted with the row it embeds and with its agent. A row of messages/passages with no vector here yet is
# "to embed": the background worker and `agents reindex` find those. ``vector`` is pgvector's vector(384) on
# PostgreSQL (an HNSW index for cosine distance), a BLOB of float32 on SQLite.
embeddings = sa.Table(
    "embeddings",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("agent_id", Id, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("message_id", Id, sa.ForeignKey("messages.id", ondelete="CASCADE")),
    sa.Column("passage_id", Id, sa.ForeignKey("passages.id", ondelete="CASCADE")),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("vector", Embedding, nullable=False),
    sa.Index("embeddings_message", "message_id", "model", unique=True),
    sa.Index("embeddings_passage", "passage_id", "model", unique=True),
    sa.Index("embeddings_agent", "agent_id", "model", "id"),
    sqlite_autoincrement=True,
)

# SQLite only (the embedding_deletions migration): how many of each agent's vectors were ever deleted, kept by a
# trigger on ``embeddings``; ``vectors.DenseIndex`` reads it to know when its copy in memory lost rows.
embedding_deletions = sa.Table(
    "embedding_deletions",
    metadata,
    sa.Column("agent_id", Id, primary_key=True),
    sa.Column("deleted", sa.Integer, nullable=False),
)

# The schema version on PostgreSQL (one row; SQLite keeps it in PRAGMA user_version): see dialect.py.
schema_versions = sa.Table("memagent_schema", metadata, sa.Column("version", sa.Integer, nullable=False))

MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.agent_id,
    messages.c.role,
    messages.c.text,
    messages.c.payload,
    messages.c.created_at,
)
PASSAGE_COLUMNS = (passages.c.id, passages.c.agent_id, passages.c.text, passages.c.created_at)
AGENT_COLUMNS = tuple(agents.c)
