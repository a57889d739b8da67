"""What a text search runs, on either database: the dialect's full-text search of the query's terms, or, for a
query with no indexable term (only punctuation or emoji), a case-insensitive substring match, newest first. An
empty query matches everything, newest first. Also ``chunks``: id lists cut to what one statement may bind."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from memagent.memory.dialect import Dialect, query_terms
from memagent.text import clean_text

IDS_PER_STATEMENT = 500
"""Ids bound by one ``IN (...)``: well under SQLite's variable limit (32,766; 999 before 3.32) and PostgreSQL's."""


def chunks(ids: Sequence[int], size: int = IDS_PER_STATEMENT) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def search_statements(
    dialect: Dialect,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    agent_id: int,
    roles: Sequence[str] | None,
    query: str,
    page: int,
    page_size: int,
) -> tuple[sa.Executable, sa.Executable]:
    """(count of every match, one page of matches) for ``query`` taken literally."""
    query = clean_text(query)
    terms = query_terms(query)
    limit, offset = page_size, page * page_size
    if terms:
        return dialect.text_search(table, columns, agent_id, roles, terms, limit, offset)
    where = [table.c.agent_id == agent_id, dialect.contains(table.c.text, query.strip())]
    if roles is not None:
        where.append(table.c.role.in_(list(roles)))
    count = sa.select(sa.func.count()).select_from(table).where(*where)
    page_rows = (
        sa.select(*columns)
        .where(*where)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return count, page_rows
