"""Dense vectors of stored rows (the ``embeddings`` table): which rows still need one, what text is embedded, writing
them, and the nearest rows to a query vector on SQLite.

What is embedded is what the full-text index holds (``search_text.py``): the row with its role and date
(``(8 May 2023) user: text``), and for a message the turn before it first (``assistant: ...``). Measured on
LoCoMo's dev split (bench/README.md), a dense search of the turn alone found little (R@5 .19: turns that address a
person by name win); with speaker and date .51, with the turn before it .58: many answers ("Yes, last week!") mean
something only with their question. A passage is embedded alone: archival memories are mostly facts written to
stand alone, and one vector for two unrelated memories finds neither well (a question about the second found the
first's neighbour: tests/unit/test_hybrid_search.py, the real-model test); the full-text side still weighs the
passage before at half. Rows the index leaves out (function results, empty rows) get no vector either.

Vectors are written after the step that stored their row has committed, by the background worker
(``embed_worker.py``) or `memagent agents reindex` (``Store.embed_pending``): a row without a vector is simply
found by full text alone until it has one, and a process killed half-way loses nothing (the row is embedded by
the next one). A row whose text changes loses its vector (``Transaction.update_message``) and is embedded again.

SQLite has no vector index, so ``DenseIndex`` keeps each agent's vectors in memory, read from the BLOBs once and
then topped up with the rows added since (ids only grow), and ranks them on one thread by a two-stage scan
(``vector_scan.py``: compact codes short-list, float32 re-ranks; messages and passages apart): ~3-5 ms of CPU at
100k rows, ~27 ms at 1M (bench/hybrid_scale.py). No index file to keep in sync with the database, nothing to rebuild:
an HNSW index (usearch) was measured and not taken (bench/README.md, "Hybrid search at scale").
PostgreSQL ranks with pgvector's HNSW index instead (``postgres.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from memagent.memory import schema
from memagent.memory.vector_scan import VectorMatrix

KINDS = ("message", "passage")
"""What an embedding is of: ``embeddings.message_id`` or ``embeddings.passage_id`` is set."""


@dataclass(frozen=True, slots=True)
class ToEmbed:
    """A stored row without a vector, and the text its vector is of."""

    kind: str
    row_id: int
    agent_id: int
    text: str


def source(kind: str) -> sa.Table:
    return schema.messages if kind == "message" else schema.passages


def vector_column(kind: str) -> sa.Column[Any]:
    e = schema.embeddings
    return e.c.message_id if kind == "message" else e.c.passage_id


def embedded_text(kind: str, context: str, text: str) -> str:
    """The text a row's vector is of: its index text, after its context for a message (see above)."""
    return f"{context}\n{text}" if context and kind == "message" else text


def select_pending(kind: str, model: str, after: int, limit: int) -> sa.Select[Any]:
    """Rows of ``kind`` with index text and no vector of ``model``, id order from after ``after``."""
    table, e = source(kind), schema.embeddings
    has_vector = sa.exists().where(vector_column(kind) == table.c.id, e.c.model == model)
    return (
        sa.select(table.c.id, table.c.agent_id, table.c.search_context, table.c.search_text)
        .where(table.c.search_text != "", table.c.id > after, ~has_vector)
        .order_by(table.c.id)
        .limit(limit)
    )


def pending_rows(rows: Sequence[sa.Row[Any]], kind: str) -> list[ToEmbed]:
    return [
        ToEmbed(kind, row.id, row.agent_id, embedded_text(kind, row.search_context, row.search_text)) for row in rows
    ]


def count_pending(kind: str, model: str) -> sa.Select[Any]:
    table, e = source(kind), schema.embeddings
    has_vector = sa.exists().where(vector_column(kind) == table.c.id, e.c.model == model)
    return sa.select(sa.func.count()).select_from(table).where(table.c.search_text != "", ~has_vector)


def still_current(kind: str, batch: Sequence[ToEmbed], model: str) -> sa.Select[Any]:
    """Which rows of ``batch`` are still stored with the text that was embedded, and still have no vector: the
    others were deleted, rewritten or embedded by another process while the model ran."""
    table, e = source(kind), schema.embeddings
    has_vector = sa.exists().where(vector_column(kind) == table.c.id, e.c.model == model)
    return sa.select(table.c.id, table.c.search_context, table.c.search_text).where(
        table.c.id.in_([item.row_id for item in batch]), ~has_vector
    )


def insert_values(kind: str, items: Sequence[tuple[ToEmbed, bytes]], model: str) -> list[dict[str, Any]]:
    column = vector_column(kind).name
    return [
        {"agent_id": item.agent_id, column: item.row_id, "model": model, "vector": vector} for item, vector in items
    ]


# ------------------------------------------------------------------------------------------ SQLite's dense side

Rows = Callable[[sa.Executable], Sequence[sa.Row[Any]]]


@dataclass
class _AgentVectors:
    """What of one agent's vectors of one model is in memory: up to embedding id ``last_id``, read when the agent's
    count of deleted vectors was ``deleted``."""

    last_id: int = 0
    deleted: int = 0
    kinds: dict[str, VectorMatrix] = field(default_factory=lambda: {kind: VectorMatrix() for kind in KINDS})


class DenseIndex:
    """Each agent's vectors in memory (SQLite): refreshed from the table before every search, cheaply, by one
    statement of two lookups (the agent's newest vector id, an index seek; how many of its vectors were ever
    deleted, a primary-key read of ``embedding_deletions``, kept by a trigger), then only the rows with a larger id
    (ids only grow: SQLite has one writer at a time); read again whole when that count says some were deleted, by
    this process or another. A vector deleted between that look and the search can still be ranked: hybrid search
    keeps only ids that are still stored (``HybridSearcher._kept``), and the next search reads them again.

    A database opened read-only before that table existed (schema 6) is read whole before every search."""

    def __init__(self) -> None:
        self._agents: dict[tuple[int, str], _AgentVectors] = {}
        self._deletions_logged = False

    def nearest(self, rows: Rows, kind: str, agent_id: int, model: str, query: bytes, limit: int) -> list[int]:
        """Ids of the agent's rows of ``kind`` nearest to ``query`` (cosine), best first."""
        return self._refreshed(rows, agent_id, model).kinds[kind].nearest(query, limit)

    def _refreshed(self, rows: Rows, agent_id: int, model: str) -> _AgentVectors:
        e, d = schema.embeddings, schema.embedding_deletions
        mine = [e.c.agent_id == agent_id, e.c.model == model]
        newest_id = sa.select(sa.func.max(e.c.id)).where(*mine).scalar_subquery()
        if self._logged(rows):
            deleted_count = sa.select(d.c.deleted).where(d.c.agent_id == agent_id).scalar_subquery()
            newest, deleted = (int(value or 0) for value in tuple(rows(sa.select(newest_id, deleted_count))[0]))
        else:
            newest, deleted = int(tuple(rows(sa.select(newest_id))[0])[0] or 0), -1  # -1: unknown, read again
        vectors = self._agents.get((agent_id, model))
        if vectors is None or deleted != vectors.deleted or deleted < 0:
            vectors = self._agents[(agent_id, model)] = _AgentVectors(deleted=deleted)
        if newest == vectors.last_id:
            return vectors
        added = rows(
            sa.select(e.c.id, e.c.message_id, e.c.passage_id, e.c.vector)
            .where(*mine, e.c.id > vectors.last_id, e.c.id <= newest)
            .order_by(e.c.id)
        )
        for kind, column in (("message", "message_id"), ("passage", "passage_id")):
            found = [row for row in added if getattr(row, column) is not None]
            if found:
                vectors.kinds[kind].append([int(getattr(row, column)) for row in found], [row.vector for row in found])
        vectors.last_id = newest
        return vectors

    def _logged(self, rows: Rows) -> bool:
        """Whether the database counts deleted vectors (``embedding_deletions``; once it does, it always will)."""
        if not self._deletions_logged:
            table = sa.text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'embedding_deletions'")
            self._deletions_logged = bool(tuple(rows(table))[0][0])
        return self._deletions_logged
