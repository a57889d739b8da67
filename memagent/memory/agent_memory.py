"""The FunctionContext the agent's functions see: one agent's core, recall and archival memory, with
writes going into the step's open transaction so they commit together with the step's messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from memagent.memory.core import CoreMemory
from memagent.memory.filters import NO_FILTER, SearchFilter
from memagent.memory.store import Passage, SearchPage, Store, StoredMessage

RECALL_ROLES = ("user", "assistant")


class AgentMemory:
    def __init__(
        self,
        store: Store,
        agent_id: int,
        core_memory: CoreMemory,
        tx: Any,
        *,
        on_send: Callable[[str], None],
        on_pause: Callable[[float], None],
    ) -> None:
        self._store, self._agent_id, self._tx = store, agent_id, tx
        self._on_send, self._on_pause = on_send, on_pause
        self.core_memory = core_memory
        self.memory_edited = False  # the system message shows memory, so it must be rebuilt

    def send_message(self, message: str) -> None:
        self._on_send(message)

    def core_memory_changed(self) -> None:
        self.memory_edited = True

    def search_recall(self, query: str, page: int, filters: SearchFilter = NO_FILTER) -> SearchPage[StoredMessage]:
        """The user's and the assistant's messages (``filters.roles`` may narrow that, never widen it)."""
        roles = RECALL_ROLES if filters.roles is None else tuple(r for r in filters.roles if r in RECALL_ROLES)
        return self._store.search_messages(self._agent_id, query, page=page, filters=replace(filters, roles=roles))

    def search_recall_by_date(self, start: date, end: date, page: int) -> SearchPage[StoredMessage]:
        return self._store.search_messages_by_date(self._agent_id, start, end, page=page)

    def insert_archival(self, content: str, tags: tuple[str, ...] = ()) -> None:
        self._tx.add_passage(self._agent_id, content, tags=tags)
        self.memory_edited = True  # the passage count in the system message changed

    def search_archival(self, query: str, page: int, filters: SearchFilter = NO_FILTER) -> SearchPage[Passage]:
        return self._store.search_passages(self._agent_id, query, page=page, filters=filters)

    def pause_heartbeats(self, minutes: int) -> None:
        self._on_pause(datetime.now().timestamp() + 60 * minutes)
