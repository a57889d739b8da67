"""What the store hands out (agents, messages, passages, pages of search results) and the conversions
at the database boundary: database rows to these dataclasses, datetimes to sortable UTC text and back,
and error text flattened to the one line a StoreError shows.

Shared by ``store.py`` (the reads) and ``transaction.py`` (the writes); imports nothing from either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AgentRow:
    id: int
    name: str
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    # Bumped by every write of ``state``: a process whose copy is older re-reads before it writes.
    version: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    agent_id: int
    role: str
    text: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Passage:
    id: int
    agent_id: int
    text: str
    created_at: datetime
    tags: tuple[str, ...] = ()  # normalised and sorted (tags.py)


@dataclass(frozen=True, slots=True)
class SearchPage(Generic[T]):
    """One page of a search. ``page`` is 0-based; ``total`` counts every match, not just this page, unless
    ``capped``: then there are more than ``total`` matches (a search stops counting after a few pages, so a
    common word doesn't make every search count most of the table).

    ``num_pages`` is ``ceil(total / page_size)`` but never less than 1: page 0 always exists (it is
    simply empty when nothing matched), so "page 1/1" can be shown for an empty result. A page past
    the end has no items but still reports the real ``total`` and ``num_pages``.
    """

    items: list[T]
    total: int
    page: int
    num_pages: int
    page_size: int
    capped: bool = False


def search_page(items: list[T], total: int, page: int, page_size: int, capped: bool = False) -> SearchPage[T]:
    return SearchPage(items, total, page, max(1, math.ceil(total / page_size)), page_size, capped)


# ------------------------------------------------------------------------------------ time helpers


def utc_iso(moment: datetime | None = None) -> str:
    """UTC ISO-8601 with a fixed width and offset, so string order equals time order in SQL.

    A naive datetime is taken to be local time (that is what ``datetime.now()`` gives callers)."""
    moment = datetime.now(UTC) if moment is None else moment
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def local_day_start(day: date) -> datetime:
    """Midnight at the start of ``day`` in the local timezone (DST rules of that date)."""
    return datetime.combine(day, time.min).astimezone()


# ------------------------------------------------------------------------------------ row converters


def message_from_row(row: sa.Row[Any]) -> StoredMessage:
    """A row of ``schema.MESSAGE_COLUMNS`` (its payload decoded and its time parsed by the column types)."""
    return StoredMessage(row.id, row.agent_id, row.role, row.text, row.payload, row.created_at)


def passage_from_row(row: sa.Row[Any]) -> Passage:
    return Passage(row.id, row.agent_id, row.text, row.created_at)


def agent_from_row(row: sa.Row[Any]) -> AgentRow:
    return AgentRow(row.id, row.name, row.state, row.created_at, row.updated_at, int(row.version or 0))


def one_line(message: str) -> str:
    """A StoreError message on one line, whatever newlines a path or name brought into it."""
    return " ".join(message.split())
