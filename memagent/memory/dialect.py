"""The seam between the store and its database: everything that differs between SQLite and PostgreSQL.

``Store`` and ``Transaction`` write dialect-neutral Core statements against ``schema.py``. What can't be said
the same way on both sits behind ``Dialect``, implemented once per database (``sqlite.py``, ``postgres.py``):
- how to connect (files, read-only opening, URLs, drivers) and how a write transaction begins (SQLite takes the
  write lock up front with ``BEGIN IMMEDIATE``; PostgreSQL locks rows with ``SELECT ... FOR UPDATE``);
- where the schema version is recorded;
- full-text search of ``search_text`` (FTS5 with bm25, porter stemming; ``tsvector`` with ``ts_rank``, 'english')
  and the substring match it falls back to;
- the dense side of hybrid search: the rows nearest a query vector (SQLite: a matrix in memory, ``vectors.py``;
  PostgreSQL: pgvector's HNSW index);
- the wording of driver errors as "what happened; how to fix it".

Also here: ``query_terms``, how user text becomes search terms on both (never query syntax).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from memagent.memory.filters import SearchFilter

Rows = Callable[[sa.Executable], Sequence[sa.Row[Any]]]
"""Runs a read and returns its rows (the store's, with its error translation)."""

RANK_WINDOW = 3_000
"""At most this many matches of a search are ranked (the newest), and a term in more rows than this is left out of
a query that has rarer terms; a full window is ranked by the terms each match holds rather than bm25. Below it
nothing changes; above it a search costs about the same at any size (SQLite)."""

VectorStorage = Literal["ready", "missing", "installable"]
"""Whether a database keeps dense vectors: "ready"; "missing" (PostgreSQL without pgvector: search is full text only);
"installable" (pgvector can be had now, but the ``embeddings`` table was made without it: ``adopt_pgvector``)."""

Reasons = tuple[tuple[tuple[str, ...], str], ...]
"""(words a driver error may contain, what to tell the user) pairs, first match wins."""


def explain(error: BaseException, reasons: Reasons, fallback: str) -> str:
    """A driver error as the first matching reason, else its own text (cut) followed by ``fallback``'s advice."""
    original = getattr(error, "orig", None) or error
    detail = " ".join(str(original).split()) or type(original).__name__
    lowered = detail.lower()
    for needles, reason in reasons:
        if any(needle in lowered for needle in needles):
            return reason
    return f"{detail[:300]}; {fallback}"


class Dialect(Protocol):
    name: str
    """"sqlite" or "postgresql"."""
    where: str
    """The database as named in messages: a file path, or a URL without its password."""
    begin: str
    """The statement that opens a write transaction."""
    drops_stopwords: bool
    """Whether the full-text index leaves English stopwords out (then a query of stopwords only can't use it)."""

    def create_engine(self) -> sa.Engine: ...

    def prepare(self, conn: sa.Connection) -> None:
        """Run once on the store's connection when it opens (SQLite: WAL; PostgreSQL: check the encoding)."""
        ...

    def in_transaction(self, conn: sa.Connection) -> bool:
        """Whether the driver connection still has a transaction open (some errors already ended it)."""
        ...

    def schema_version(self, conn: sa.Connection) -> int:
        """The recorded schema version; 0 for a database memagent never wrote."""
        ...

    def set_schema_version(self, conn: sa.Connection, version: int) -> None: ...

    def foreign_tables(self, conn: sa.Connection) -> list[str]:
        """Tables in a database whose schema version is 0: another program's."""
        ...

    def reason(self, error: BaseException) -> str:
        """A driver error as "what happened; how to fix it", on one line, never with a password."""
        ...

    def contains(self, column: sa.ColumnElement[str], needle: str) -> sa.ColumnElement[bool]:
        """Case-insensitive substring match: the search of a query with no indexable term."""
        ...

    def term_counts(self, table: sa.Table, terms: Sequence[str], cap: int) -> sa.Executable | None:
        """One row: for each of ``terms``, how many rows of ``table``'s index hold it, counting at most ``cap`` + 1.
        None where ranking every match is cheap enough (no term is ever left out: see ``search.ranked_terms``)."""
        ...

    def text_search(
        self, table: sa.Table, columns: Sequence[sa.Column[Any]], agent_id: int, filters: SearchFilter,
        terms: Sequence[str], limit: int, offset: int, count_limit: int, window: int | None = None,
        candidates: int | None = None, terms_held: bool = False,
    ) -> tuple[sa.Executable, sa.Executable]:
        """(the count of the matches up to ``count_limit`` + 1 and the window's bound, one page of them best first) for
        ``terms`` OR-ed, among the agent's indexed rows of ``table`` that ``filters`` lets through (``filters.py``).
        With a ``window`` a dialect may rank only the newest ``window`` matches; the bound (second column of the count)
        is then the lowest row id ranked, 0 when nothing was left out. With ``candidates`` a dialect may rank in its
        index first and read only that many rows (a page can then come back short: ask again with more); with
        ``terms_held`` too (a full window), rank by the terms each match holds (SQLite: see sqlite.py)."""
        ...

    def vector_storage(self, conn: sa.Connection) -> VectorStorage:
        """Whether the ``embeddings`` table can hold vectors here (see ``VectorStorage``)."""
        ...

    def dense_search(
        self, rows: Rows, kind: str, agent_id: int, model: str, query: bytes, limit: int
    ) -> list[int]:
        """Ids of the agent's rows of ``kind`` ("message" or "passage") whose ``model`` vectors are nearest to
        ``query`` (float32 bytes; cosine), best first, at most ``limit``."""
        ...


# ------------------------------------------------------------------------------- search terms


def _is_token_char(ch: str) -> bool:
    """A superset of FTS5 unicode61's token characters (letters, numbers, private use, marks).

    Erring towards "token" is safe: each term is re-tokenized by the database's own parser, so a term it
    would split just becomes a phrase."""
    category = unicodedata.category(ch)
    return category[0] in "LNM" or category == "Co"


def _is_indexable(term: str) -> bool:
    """Marks alone produce no token; a term needs a letter, number or private-use character."""
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
