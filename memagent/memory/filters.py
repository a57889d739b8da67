"""What narrows a search besides its words: ``SearchFilter`` (roles, tags, a date range), one value for every search.

The searches (``search.py``: full text, the substring fallback; a vector search applies the same value) put it into
their SQL, so the capped totals count only what the filter lets through. ``clauses`` is the filter as Core
conditions on a table (PostgreSQL and the fallback use them); SQLite's FTS5 statement is text and renders the same
conditions with ``sqlite_conditions``.

Dates are local calendar days, both ends included, as ``conversation_search_date`` reads them: from local midnight
of ``start`` to local midnight after ``end``. Tags match if a passage has ANY of them (the model's tags are
hints: more tags widen a search, and the words still rank it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from memagent.memory import schema
from memagent.memory.rows import local_day_start


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """``roles``: messages of these roles only (None: every role); ``tags``: passages with any of these (already
    normalised, ``tags.normalise_tags``; empty: no tag filter); ``start``/``end``: created on these local days or
    between them (None: open)."""

    roles: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """(from, before): the filter's days as aware times, ``from`` included and ``before`` not."""
        low = None if self.start is None else local_day_start(self.start)
        high = None if self.end is None else local_day_start(self.end + timedelta(days=1))
        return low, high

    def clauses(self, table: sa.Table, agent_id: int) -> list[sa.ColumnElement[bool]]:
        """The filter as conditions on the agent's rows of ``table`` (messages or passages; ``roles`` counts only for
        messages, ``tags`` only for passages)."""
        where: list[sa.ColumnElement[bool]] = []
        if self.roles is not None and "role" in table.c:
            where.append(table.c.role.in_(list(self.roles)))
        low, high = self.bounds()
        if low is not None:
            where.append(table.c.created_at >= low)
        if high is not None:
            where.append(table.c.created_at < high)
        if self.tags and table.name == schema.passages.name:
            t = schema.passage_tags
            tagged = sa.select(t.c.passage_id).where(t.c.agent_id == agent_id, t.c.tag.in_(list(self.tags)))
            where.append(table.c.id.in_(tagged.scalar_subquery()))
        return where


NO_FILTER = SearchFilter()


def sqlite_conditions(filters: SearchFilter, table: sa.Table, alias: str) -> tuple[str, list[sa.BindParameter[Any]]]:
    """``clauses`` as SQL text on ``table`` named ``alias`` (" AND ..." each, or ""), with its bound values: what
    SQLite's FTS5 statement appends to its WHERE (which binds the agent as ``:agent_id``)."""
    sql: list[str] = []
    binds: list[sa.BindParameter[Any]] = []
    if filters.roles is not None and "role" in table.c:
        sql.append(f"AND {alias}.role IN :filter_roles")
        binds.append(sa.bindparam("filter_roles", list(filters.roles), expanding=True))
    low, high = filters.bounds()
    for name, moment, operator in (("filter_from", low, ">="), ("filter_before", high, "<")):
        if moment is not None:
            sql.append(f"AND {alias}.created_at {operator} :{name}")
            binds.append(sa.bindparam(name, moment, type_=schema.UtcTime()))
    if filters.tags and table.name == schema.passages.name:
        sql.append(
            f"AND {alias}.id IN (SELECT passage_id FROM {schema.passage_tags.name} "
            "WHERE agent_id = :agent_id AND tag IN :filter_tags)"
        )
        binds.append(sa.bindparam("filter_tags", list(filters.tags), expanding=True))
    return " ".join(sql), binds
