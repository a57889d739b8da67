"""The store's plain reads (agents, messages and passages by id or in order): the ``Reads`` part of ``Store``.

Each read is one Core statement on ``schema.py``'s tables, run by the store's ``_rows`` (which translates driver
errors); the searches are ``search.py``'s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from memagent.errors import StoreError
from memagent.memory import schema
from memagent.memory.migrations import PASSAGE_TAGS_SCHEMA
from memagent.memory.rows import (
    AgentRow,
    Passage,
    StoredMessage,
    agent_from_row,
    message_from_row,
    one_line,
    passage_from_row,
)
from memagent.memory.search import chunks
from memagent.memory.tags import group_tags, select_agent_tags, select_tags


class Reads:
    """Reads of a ``Store``, which provides ``where``, ``_version`` and ``_rows``."""

    where: str
    _version: int

    def _rows(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Sequence[sa.Row[Any]]:
        raise NotImplementedError

    def _scalar(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Any:
        rows = self._rows(statement, params)
        return rows[0][0]

    def select_agents(self) -> sa.Select[Any]:
        """Every column of ``agents``; a schema-v1 file opened read-only has no version column yet."""
        if self._version >= 2:
            return sa.select(*schema.AGENT_COLUMNS)
        columns = [c for c in schema.AGENT_COLUMNS if c.name != "version"]
        return sa.select(*columns, sa.literal(0).label("version"))

    def find_agent(self, name: str) -> AgentRow | None:
        rows = self._rows(self.select_agents().where(schema.agents.c.name == name))
        return agent_from_row(rows[0]) if rows else None

    def find_agent_by_id(self, agent_id: int) -> AgentRow | None:
        rows = self._rows(self.select_agents().where(schema.agents.c.id == agent_id))
        return agent_from_row(rows[0]) if rows else None

    def list_agents(self) -> list[AgentRow]:
        """All agents, by name (what a listing shows)."""
        statement = self.select_agents().order_by(schema.agents.c.name, schema.agents.c.id)
        return [agent_from_row(row) for row in self._rows(statement)]

    def get_messages(self, agent_id: int, ids: Sequence[int]) -> list[StoredMessage]:
        """The messages with ``ids``, in the order of ``ids`` (an agent's in-context window).

        A missing id means the saved state points at a message that is gone, so this raises
        StoreError instead of silently dropping part of the context."""
        m = schema.messages
        by_id: dict[int, StoredMessage] = {}
        for chunk in chunks([int(i) for i in ids]):
            statement = sa.select(*schema.MESSAGE_COLUMNS).where(m.c.agent_id == agent_id, m.c.id.in_(chunk))
            by_id.update((row.id, message_from_row(row)) for row in self._rows(statement))
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StoreError(
                one_line(
                    f"Database {self.where} is missing messages {missing[:10]} of agent {agent_id}; the "
                    "file was edited or damaged, restore a backup or delete the agent"
                )
            )
        return [by_id[i] for i in ids]

    def count_messages(self, agent_id: int) -> int:
        m = schema.messages
        return int(self._scalar(sa.select(sa.func.count()).select_from(m).where(m.c.agent_id == agent_id)))

    def count_passages(self, agent_id: int) -> int:
        p = schema.passages
        return int(self._scalar(sa.select(sa.func.count()).select_from(p).where(p.c.agent_id == agent_id)))

    def all_messages(self, agent_id: int) -> list[StoredMessage]:
        """Every message of the agent in id order (the order they were written): what an export holds."""
        m = schema.messages
        statement = sa.select(*schema.MESSAGE_COLUMNS).where(m.c.agent_id == agent_id).order_by(m.c.id)
        return [message_from_row(row) for row in self._rows(statement)]

    def all_passages(self, agent_id: int) -> list[Passage]:
        """Every passage of the agent in id order, with its tags."""
        p = schema.passages
        statement = sa.select(*schema.PASSAGE_COLUMNS).where(p.c.agent_id == agent_id).order_by(p.c.id)
        passages = [passage_from_row(row) for row in self._rows(statement)]
        if not passages or self._version < PASSAGE_TAGS_SCHEMA:
            return passages
        return _tagged(passages, group_tags(self._rows(select_agent_tags(agent_id))))

    def with_tags(self, passages: list[Passage]) -> list[Passage]:
        """``passages`` with their tags read (none in a file older than tags, opened read-only)."""
        if not passages or self._version < PASSAGE_TAGS_SCHEMA:
            return passages
        tags: dict[int, tuple[str, ...]] = {}
        for chunk in chunks([passage.id for passage in passages]):
            tags.update(group_tags(self._rows(select_tags(chunk))))
        return _tagged(passages, tags)

    def list_passages(self, agent_id: int, limit: int, offset: int = 0) -> list[Passage]:
        """Passages oldest first (insertion order)."""
        p = schema.passages
        statement = (
            sa.select(*schema.PASSAGE_COLUMNS).where(p.c.agent_id == agent_id).order_by(p.c.id).limit(limit)
        ).offset(offset)
        return self.with_tags([passage_from_row(row) for row in self._rows(statement)])



def _tagged(passages: list[Passage], tags: Mapping[int, tuple[str, ...]]) -> list[Passage]:
    return [replace(passage, tags=tags[passage.id]) if passage.id in tags else passage for passage in passages]
