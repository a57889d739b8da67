"""Building the ``search_text`` and ``search_context`` of rows already stored (``search_text.py``): what
the full-text migration runs once for a database written before the index held role, date and context, and what a full
reindex would run again.

Messages are read per agent in conversation order (``created_at``, then id: the ``messages_agent_created``
index), in batches of ``BATCH`` rows by key, so a database of millions of rows is never held in memory; each
batch is one ``executemany`` of updates by id. It runs on the caller's connection, inside its transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from memagent.memory import schema
from memagent.memory.search_text import (
    SearchText,
    context_text,
    message_search_text,
    passage_context,
    passage_search_text,
)

BATCH = 5_000

Progress = Callable[[int], None]
"""Called with the number of rows done so far."""


def _set_search_text(table: sa.Table) -> sa.Update:
    values: dict[str, Any] = {"search_context": sa.bindparam("new_context"), "search_text": sa.bindparam("new_text")}
    return sa.update(table).where(table.c.id == sa.bindparam("row_id")).values(values)


def _values(row_id: int, indexed: SearchText) -> dict[str, Any]:
    return {"row_id": row_id, "new_context": indexed[0], "new_text": indexed[1]}


def _after(column: sa.ColumnElement[Any], key: tuple[datetime, int] | None, table: sa.Table) -> list[Any]:
    """Rows after ``key`` in (``column``, id) order: a range the index can seek to."""
    if key is None:
        return []
    moment, row_id = key
    return [column >= moment, sa.or_(column > moment, table.c.id > row_id)]


def backfill_messages(conn: sa.Connection, progress: Progress | None = None) -> int:
    """Set every message's ``search_text`` and ``search_context``; returns how many rows were read."""
    m, done = schema.messages, 0
    update = _set_search_text(m)
    agent_ids = conn.execute(sa.select(m.c.agent_id).distinct().order_by(m.c.agent_id)).scalars().all()
    for agent_id in agent_ids:
        previous: str | None = None
        key: tuple[datetime, int] | None = None
        while True:
            statement = (
                sa.select(m.c.id, m.c.role, m.c.text, m.c.created_at)
                .where(m.c.agent_id == agent_id, *_after(m.c.created_at, key, m))
                .order_by(m.c.created_at, m.c.id)
                .limit(BATCH)
            )
            rows = conn.execute(statement).all()
            if not rows:
                break
            values = []
            for row in rows:
                indexed = message_search_text(row.role, row.text, row.created_at, previous)
                if indexed[1]:
                    values.append(_values(row.id, indexed))
                    previous = context_text(row.role, row.text)
            if values:
                conn.execute(update, values)
            key, done = (rows[-1].created_at, rows[-1].id), done + len(rows)
            if progress is not None:
                progress(done)
    return done


def backfill_passages(conn: sa.Connection, progress: Progress | None = None) -> int:
    """Set every passage's ``search_text`` and ``search_context``; returns how many rows were read."""
    p, done = schema.passages, 0
    update = _set_search_text(p)
    agent_ids = conn.execute(sa.select(p.c.agent_id).distinct().order_by(p.c.agent_id)).scalars().all()
    for agent_id in agent_ids:
        previous: str | None = None
        last = 0
        while True:
            statement = (
                sa.select(p.c.id, p.c.text, p.c.created_at)
                .where(p.c.agent_id == agent_id, p.c.id > last)
                .order_by(p.c.id)
                .limit(BATCH)
            )
            rows = conn.execute(statement).all()
            if not rows:
                break
            values = []
            for row in rows:
                values.append(_values(row.id, passage_search_text(row.text, row.created_at, previous)))
                previous = passage_context(row.text) or previous
            conn.execute(update, values)
            last, done = rows[-1].id, done + len(rows)
            if progress is not None:
                progress(done)
    return done
