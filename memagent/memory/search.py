"""The store's searches (``Searcher``; ``Store.search_messages`` and the others call it), on either database.

A query is its terms (``dialect.query_terms``: never query syntax) without the English stopwords
(``stopwords.py``; kept when nothing else would be left), OR-ed and ranked by the dialect's full-text search
(FTS5 bm25; PostgreSQL ts_rank) over each row's ``search_text`` (``search_text.py``), then newest first. A query
with no indexable term (only punctuation or emoji) is a case-insensitive substring match of the stored text,
newest first; an empty query matches everything, newest first. A ``SearchFilter`` (``filters.py``: roles, tags,
dates) narrows every search inside its SQL.

Totals are capped: a search counts at most ``COUNT_PAGES`` pages of matches (or up to the page asked for and one
more), and a page says when there are more (``SearchPage.capped``). Counting every match of a common word made
each search read most of the table (130-170 ms at 100k rows).

With the embeddings extra the store searches through ``hybrid.HybridSearcher`` instead, which fuses this
full-text ranking with the dense one (``Store.use_embedder``); the substring and date searches stay as here.

Also ``chunks``: id lists cut to what one statement may bind."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from memagent.memory import schema
from memagent.memory.dialect import RANK_WINDOW, Dialect, query_terms
from memagent.memory.filters import NO_FILTER, SearchFilter
from memagent.memory.rows import (
    Passage,
    SearchPage,
    StoredMessage,
    local_day_start,
    message_from_row,
    passage_from_row,
    search_page,
)
from memagent.memory.stopwords import content_terms
from memagent.text import clean_text

IDS_PER_STATEMENT = 500
"""Ids bound by one ``IN (...)``: well under SQLite's variable limit (32,766; 999 before 3.32) and PostgreSQL's."""

COUNT_PAGES = 20
"""Pages of matches a search counts before it says "more than"."""

FIRST_CANDIDATES = 200
"""Matches read first to fill a page, ranked in the index (``candidates_to_read``)."""


def chunks(ids: Sequence[int], size: int = IDS_PER_STATEMENT) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def count_limit(page: int, page_size: int) -> int:
    """How many matches to count: ``COUNT_PAGES`` pages, or through the page after the one asked for."""
    return max(COUNT_PAGES, page + 2) * page_size


def candidates_to_read(rows_needed: int) -> tuple[int, ...]:
    """How many of the window's matches, ranked in the index, to read in turn for ``rows_needed`` rows of one agent:
    a few times that (a window is mostly one agent's), then the whole window."""
    return (max(FIRST_CANDIDATES, 4 * rows_needed), RANK_WINDOW)


def capped_count(matches: sa.Select[Any], limit: int) -> sa.Select[int, int]:
    """The number of rows ``matches`` selects, counting at most ``limit`` + 1 (one more says "more than"); and 0, the
    bound of a window that left nothing out (see ``Dialect.text_search``)."""
    return sa.select(sa.func.count(), sa.literal(0)).select_from(matches.limit(limit + 1).subquery())


def ranked_terms(terms: Sequence[str], rows_holding: Sequence[int], window: int) -> list[str]:
    """The terms a search ranks by: those in at most ``window`` rows, if there are any, else all.

    A term in more rows than the window is, at that size, a stopword of this memory: its bm25 weight is near nothing,
    yet its matches would fill the window and push out an older row holding a rarer term of the question."""
    selective = [term for term, held in zip(terms, rows_holding, strict=True) if held <= window]
    return selective or list(terms)


Narrow = Callable[[sa.Table, Sequence[str]], list[str]]
"""Chooses the terms a search ranks by (``Searcher._narrow``); the identity where the dialect doesn't count."""


def full_text_terms(dialect: Dialect, query: str) -> list[str]:
    """The terms the full-text index is searched for (stopwords dropped unless nothing else is left); [] when the
    query has none the index can use (then it is a substring match)."""
    terms = query_terms(clean_text(query))
    kept = content_terms(terms)
    if kept or (terms and not dialect.drops_stopwords):
        return kept or terms
    return []


def search_statements(
    dialect: Dialect,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    agent_id: int,
    filters: SearchFilter,
    query: str,
    page: int,
    page_size: int,
    narrow: Narrow = lambda _table, terms: list(terms),
    window: int | None = None,
    candidates: int | None = None,
    terms_held: bool = False,
) -> tuple[sa.Executable, sa.Executable]:
    """(count of the matches, up to ``count_limit`` + 1, and the window's bound; one page of matches) for ``query``
    taken literally, among the rows ``filters`` lets through; ``window``: rank only the newest matches, where the
    dialect does (see ``Dialect.text_search``, also for ``candidates`` and ``terms_held``)."""
    query = clean_text(query)
    limit, offset = page_size, page * page_size
    terms = full_text_terms(dialect, query)
    if terms:
        ranked = narrow(table, terms)
        return dialect.text_search(
            table, columns, agent_id, filters, ranked, limit, offset, count_limit(page, page_size), window,
            candidates, terms_held,
        )
    # No term, or only stopwords on a database whose index leaves them out: a substring match.
    where = [table.c.agent_id == agent_id, dialect.contains(table.c.text, query.strip())]
    where += filters.clauses(table, agent_id)
    count = capped_count(sa.select(table.c.id).where(*where), count_limit(page, page_size))
    page_rows = (
        sa.select(*columns)
        .where(*where)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return count, page_rows


def check_paging(page: int, page_size: int) -> None:
    if page < 0 or page_size < 1:
        raise ValueError(f"page must be >= 0 and page_size >= 1 (got page={page}, page_size={page_size})")


Rows = Callable[[sa.Executable], Sequence[sa.Row[Any]]]
"""Runs a read and returns its rows (the store's, with its error translation)."""


class Searcher:
    """Searches of one database: the full-text searches of recall and archival memory and the date search."""

    def __init__(self, dialect: Dialect, rows: Rows) -> None:
        self._dialect = dialect
        self._rows = rows

    def _narrow(self, table: sa.Table, terms: Sequence[str]) -> list[str]:
        counting = self._dialect.term_counts(table, terms, RANK_WINDOW) if len(terms) > 1 else None
        if counting is None:
            return list(terms)
        return ranked_terms(terms, [int(held) for held in self._rows(counting)[0]], RANK_WINDOW)

    def _counted(self, count: sa.Executable) -> tuple[int, int]:
        """(matches counted, the window's bound: 0 if it left nothing out)."""
        counted, bound = (int(value or 0) for value in tuple(self._rows(count)[0]))
        return counted, bound

    def _page(
        self, statements: tuple[sa.Executable, sa.Executable], page: int, page_size: int,
        counted: tuple[int, int] | None = None,
    ) -> tuple[int, Sequence[sa.Row[Any]], bool]:
        """(matches counted, one page, whether there are more than that)."""
        count, rows = statements
        matches, bound = counted or self._counted(count)
        limit = count_limit(page, page_size)
        # A window that left matches out can't say how many there are: "more than" what it holds.
        return min(matches, limit), self._rows(rows), matches > limit or bool(bound)

    def _text_page(
        self, table: sa.Table, columns: Sequence[sa.Column[Any]], agent_id: int, filters: SearchFilter,
        query: str, page: int, page_size: int,
    ) -> tuple[int, Sequence[sa.Row[Any]], bool]:
        """A full-text page, ranked within the window; over every match when the window left matches out and holds
        less than a page of this agent's (another agent's newer rows filled it). Ranked in the index first, the
        page's rows read from the first candidates only; a full window (it left matches out) by the terms each match
        holds, not bm25: at a million rows bm25 alone took 10-70 ms a search (docs/BENCHMARKS.md, "Memory at
        scale"). The choice is the same for every page of a query, so paging stays consistent."""
        terms = full_text_terms(self._dialect, query)
        ranked = self._narrow(table, terms) if terms else []  # once: each statement below ranks by the same terms
        args = (self._dialect, table, columns, agent_id, filters, query, page, page_size, lambda _table, _terms: ranked)
        windowed = search_statements(*args, window=RANK_WINDOW)
        matches, bound = counted = self._counted(windowed[0])
        if bound and matches < page_size:
            return self._page(search_statements(*args), page, page_size)
        if not terms:  # a substring match: nothing to rank
            return self._page(windowed, page, page_size, counted)
        shown = min(page_size, matches - page * page_size)
        for candidates in candidates_to_read((page + 1) * page_size):
            statements = search_statements(*args, window=RANK_WINDOW, candidates=candidates, terms_held=bool(bound))
            found = self._page(statements, page, page_size, counted)
            if len(found[1]) >= shown:
                break
        return found

    def messages(
        self, agent_id: int, query: str, page: int, page_size: int, filters: SearchFilter = NO_FILTER
    ) -> SearchPage[StoredMessage]:
        check_paging(page, page_size)
        total, rows, capped = self._text_page(
            schema.messages, schema.MESSAGE_COLUMNS, agent_id, filters, query, page, page_size
        )
        return search_page([message_from_row(row) for row in rows], total, page, page_size, capped)

    def messages_by_date(
        self, agent_id: int, start: date, end: date, page: int, page_size: int, roles: Sequence[str] | None
    ) -> SearchPage[StoredMessage]:
        check_paging(page, page_size)
        m = schema.messages
        lo, hi = local_day_start(start), local_day_start(end + timedelta(days=1))
        where = [m.c.agent_id == agent_id, m.c.created_at >= lo, m.c.created_at < hi]
        if roles is not None:
            where.append(m.c.role.in_(list(roles)))
        count = capped_count(sa.select(m.c.id).where(*where), count_limit(page, page_size))
        rows = sa.select(*schema.MESSAGE_COLUMNS).where(*where).order_by(m.c.created_at, m.c.id)
        total, found, capped = self._page((count, rows.limit(page_size).offset(page * page_size)), page, page_size)
        return search_page([message_from_row(row) for row in found], total, page, page_size, capped)

    def passages(
        self, agent_id: int, query: str, page: int, page_size: int, filters: SearchFilter = NO_FILTER
    ) -> SearchPage[Passage]:
        check_paging(page, page_size)
        total, rows, capped = self._text_page(
            schema.passages, schema.PASSAGE_COLUMNS, agent_id, filters, query, page, page_size
        )
        return search_page([passage_from_row(row) for row in rows], total, page, page_size, capped)
