"""Hybrid search: the full-text ranking (``search.py``) fused with the dense one (``vectors.py``, the dialect's
``dense_search``), for recall and archival search alike.

How (``fuse``): the first ``Fusion.depth`` rows of each ranking, each row scored by weighted reciprocal rank,
``weight / (k + rank)`` summed over the rankings it is in, best first; a tie keeps the full-text order. Rows only
the dense side found join the list (a question whose words are not the answer's: "What did she do after the
move?"); a row far down both lists stays below the rows either side ranks first.

Why these weights (``Fusion``'s defaults; bench/README.md, "Hybrid search"): plain RRF (k 60, equal weights)
lowered recall@5 on LoCoMo's dev split from .704 to .591 (conversation_search) and .707 to .668 (archival): the
dense ranking alone is the weaker one, and equal weights let it push full-text hits out of the first page.
Weighted at 0.3 with k 20 it raised both (.717, .730; R@10 .796, .803).

Pages: the fused list is the first pages; after it, the full-text ranking continues from ``depth`` on, leaving
out rows already shown, so a page never repeats a row of an earlier one. ``total`` counts the full-text matches
(capped as ``search.py`` caps them: the ranking is read up to that cap, ids only) plus the rows only the dense
side brought in, each row once.

The query's embedding (~13-20 ms of CPU with e5) runs on a thread of its own while the full-text side runs on the
caller's: both release the GIL for most of their work (the model's engine through ctypes, SQLite while it steps),
so with a free core a search costs about the longer of the two instead of their sum; on the busy 2-core machine
of docs/BENCHMARKS.md ("Hybrid search at scale") it saved less (~2 ms of 40 at 100k rows).

Used when the store has an embedder (``Store.use_embedder``) and the query has terms to search; a query without
terms (punctuation only, empty) is the plain search's. Without the embeddings extra nothing here runs: search
is full text, and the chat says so once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from memagent.memory import schema
from memagent.memory.dialect import RANK_WINDOW, Dialect
from memagent.memory.embed import Embedder
from memagent.memory.filters import NO_FILTER, SearchFilter
from memagent.memory.rows import Passage, SearchPage, StoredMessage, message_from_row, passage_from_row, search_page
from memagent.memory.search import (
    Rows,
    Searcher,
    candidates_to_read,
    check_paging,
    chunks,
    count_limit,
    full_text_terms,
)
from memagent.memory.search_text import INDEXED_ROLES


@dataclass(frozen=True)
class Fusion:
    """How the two rankings are fused (measured on LoCoMo's dev split: docs/BENCHMARKS.md, memory_quality)."""

    depth: int = 50
    """Rows taken from each ranking."""
    k: float = 20.0
    """Reciprocal-rank constant: smaller makes the first ranks count more against later ones."""
    dense_weight: float = 0.3
    """What a dense rank counts against the same full-text rank: the dense ranking alone is the weaker one (R@5
    ~.5-.6 against ~.7), so it mostly decides among rows full text ranks alike."""
    dense_only: bool = True
    """Whether rows only the dense side found join the list (False: the dense ranking only reorders full-text rows)."""


def fuse(full_text: Sequence[int], dense: Sequence[int], fusion: Fusion) -> list[int]:
    """Row ids best first by weighted reciprocal rank; ties keep the full-text order, then the dense order."""
    scores: dict[int, float] = {}
    for weight, ranking in ((1.0, full_text), (fusion.dense_weight, dense)):
        for rank, row_id in enumerate(ranking[: fusion.depth], 1):
            if fusion.dense_only or row_id in scores or ranking is full_text:
                scores[row_id] = scores.get(row_id, 0.0) + weight / (fusion.k + rank)
    order = {row_id: position for position, row_id in enumerate(scores)}
    return sorted(scores, key=lambda row_id: (-scores[row_id], order[row_id]))


_embedding_thread: ThreadPoolExecutor | None = None
_embedding_thread_lock = threading.Lock()


def embed_query_meanwhile(embedder: Embedder, query: str) -> Future[bytes]:
    """``embedder.query(query)`` started on the process's one query-embedding thread (made on first use)."""
    global _embedding_thread
    with _embedding_thread_lock:
        if _embedding_thread is None:
            _embedding_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memagent-query-embedding")
        return _embedding_thread.submit(embedder.query, query)


@dataclass(frozen=True)
class _Source:
    kind: str
    table: sa.Table
    columns: Sequence[sa.Column[Any]]


_MESSAGES = _Source("message", schema.messages, schema.MESSAGE_COLUMNS)
_PASSAGES = _Source("passage", schema.passages, schema.PASSAGE_COLUMNS)


class HybridSearcher(Searcher):
    """``Searcher`` with recall and archival search fused with the dense ranking of ``embedder``'s vectors."""

    def __init__(self, dialect: Dialect, rows: Rows, embedder: Embedder, fusion: Fusion | None = None) -> None:
        super().__init__(dialect, rows)
        self.embedder = embedder
        self.fusion = fusion or Fusion()

    def messages(
        self, agent_id: int, query: str, page: int, page_size: int, filters: SearchFilter = NO_FILTER
    ) -> SearchPage[StoredMessage]:
        terms = full_text_terms(self._dialect, query)
        if not terms:
            return super().messages(agent_id, query, page, page_size, filters)
        total, rows, capped = self._hybrid(_MESSAGES, agent_id, filters, query, terms, page, page_size)
        return search_page([message_from_row(row) for row in rows], total, page, page_size, capped)

    def passages(
        self, agent_id: int, query: str, page: int, page_size: int, filters: SearchFilter = NO_FILTER
    ) -> SearchPage[Passage]:
        terms = full_text_terms(self._dialect, query)
        if not terms:
            return super().passages(agent_id, query, page, page_size, filters)
        total, rows, capped = self._hybrid(_PASSAGES, agent_id, filters, query, terms, page, page_size)
        return search_page([passage_from_row(row) for row in rows], total, page, page_size, capped)

    def _hybrid(
        self, source: _Source, agent_id: int, filters: SearchFilter, query: str, terms: Sequence[str],
        page: int, page_size: int,
    ) -> tuple[int, list[sa.Row[Any]], bool]:
        """(total, the page's rows, capped): the full-text ranking's ids up to the count limit (one more says
        "more than"; ranked within the window as ``Searcher`` ranks them), its first ``depth`` fused with the dense
        ranking's, then the rest of it. ``filters`` apply to both sides. The query is embedded meanwhile."""
        check_paging(page, page_size)
        limit = count_limit(page, page_size)
        embedding = embed_query_meanwhile(self.embedder, query)
        full_text, windowed = self._full_text_ids(source, agent_id, filters, terms, page_size, limit)
        vector = embedding.result()
        depth = self.fusion.depth
        nearest = self._dialect.dense_search(self._rows, source.kind, agent_id, self.embedder.model, vector, depth)
        fused = fuse(full_text[:depth], self._kept(source, agent_id, filters, nearest), self.fusion)
        shown = set(fused)
        order = fused + [row_id for row_id in full_text[depth:limit] if row_id not in shown]
        dense_only = len(shown - set(full_text))
        total = min(len(full_text), limit) + dense_only
        rows = self._fetch(source, order[page * page_size : (page + 1) * page_size])
        return total, rows, len(full_text) > limit or windowed

    def _full_text_ids(
        self, source: _Source, agent_id: int, filters: SearchFilter, terms: Sequence[str], page_size: int, limit: int
    ) -> tuple[list[int], bool]:
        """The full-text ranking's first ``limit`` + 1 ids, and whether the window left matches out; over every match
        when the window holds less than a page of this agent's (the rule of ``Searcher._text_page``)."""
        ranked_terms = self._narrow(source.table, terms)

        def ranking(window: int | None, candidates: int | None = None) -> tuple[sa.Executable, sa.Executable]:
            table = source.table
            return self._dialect.text_search(
                table, (table.c.id,), agent_id, filters, ranked_terms, limit + 1, 0, limit, window, candidates,
                terms_held=bool(bound),
            )

        def ids(statement: sa.Executable) -> list[int]:
            return [int(row[0]) for row in self._rows(statement)]

        bound = 0  # until counted: whether the window is full decides the ranking (``terms_held``)
        matches, bound = self._counted(ranking(RANK_WINDOW)[0])
        if bound and matches < page_size:  # every match ranked: nothing left out
            return ids(ranking(None)[1]), False
        for candidates in candidates_to_read(limit + 1):  # as ``Searcher._text_page`` reads them
            found = ids(ranking(RANK_WINDOW, candidates)[1])
            if len(found) >= min(matches, limit + 1):
                break
        return found, bool(bound)

    def _kept(self, source: _Source, agent_id: int, filters: SearchFilter, ids: Sequence[int]) -> list[int]:
        """``ids`` (in their order) that are the agent's indexed rows passing the filters: the dense side sees only
        what the full-text side could find.

        Without a filter that narrows them, ``ids`` as they are: the agent's vectors are of its indexed rows only (a
        row whose index text is emptied or rewritten loses its vector in the same transaction), so reading them
        would only find rows deleted since the dense side looked, which ``_fetch`` leaves out anyway. Reading 50
        rows scattered over a million took 2-8 ms (bench/README.md, "The dense side now")."""
        if not ids:
            return []
        if filters.roles is not None and set(INDEXED_ROLES) <= set(filters.roles):
            filters = replace(filters, roles=None)  # every indexed row has one of these roles
        table = source.table
        narrowing = filters.clauses(table, agent_id)
        if not narrowing:
            return list(ids)
        where = [table.c.id.in_(list(ids)), table.c.agent_id == agent_id, table.c.search_text != "", *narrowing]
        found = {int(row[0]) for row in self._rows(sa.select(table.c.id).where(*where))}
        return [row_id for row_id in ids if row_id in found]

    def _fetch(self, source: _Source, ids: Sequence[int]) -> list[sa.Row[Any]]:
        """The rows of ``ids``, in that order (a row deleted meanwhile is left out)."""
        by_id: dict[int, sa.Row[Any]] = {}
        for chunk in chunks(list(ids)):
            by_id.update(
                (int(row.id), row) for row in self._rows(sa.select(*source.columns).where(source.table.c.id.in_(chunk)))
            )
        return [by_id[row_id] for row_id in ids if row_id in by_id]

