"""History: what the agent remembers between steps, kept equal to the database.

It holds the messages in context (typed), the persisted AgentState, core memory, the template and the system message
rendered from them. Every change goes through `transaction()`: the agent's row is locked and, when another process
wrote it since, re-read first (`_sync`); if the block fails, Ctrl-C included, the in-memory copy is restored, so
memory and database never disagree and an interrupted step leaves no half-applied edit behind.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from memagent.agent.state import AgentState
from memagent.memory.core import CoreMemory
from memagent.memory.store import Passage, Store, Transaction
from memagent.memory.versions import UNKNOWN, Cause, changed_blocks
from memagent.messages import AgentMessage, message_from_dict, now_text
from memagent.prompts.template import MemoryStats, SystemPromptTemplate


@dataclass(frozen=True)
class _Snapshot:
    messages: list[tuple[int, AgentMessage]]
    core_memory: dict[str, Any]
    state: dict[str, Any]
    system_message: str
    template: SystemPromptTemplate
    version: int


class History:
    def __init__(
        self,
        *,
        store: Store,
        agent_id: int,
        state: AgentState,
        template: SystemPromptTemplate,
        messages: list[tuple[int, AgentMessage]],
        version: int = 0,
    ) -> None:
        self.store, self.agent_id = store, agent_id
        self.state, self.template, self.messages = state, template, messages
        self.version = version  # of the stored state this copy matches (see _sync)
        self.core_memory = CoreMemory.from_dict(state.core_memory)
        self.system_message = self.render_system()

    # -- the transaction ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A store transaction on the agent as committed now (see the module's docstring)."""
        saved = self._snapshot()
        try:
            with self.store.transaction() as tx:
                self._sync(tx)
                yield tx
        except BaseException:
            self._restore(saved)
            raise

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(list(self.messages), self.core_memory.to_dict(), copy.deepcopy(self.state.to_dict()),
                         self.system_message, self.template, self.version)

    def _restore(self, saved: _Snapshot) -> None:
        self.messages = saved.messages
        self.core_memory.sections = CoreMemory.from_dict(saved.core_memory).sections
        self.state = AgentState.from_dict(saved.state)
        self.system_message, self.template, self.version = saved.system_message, saved.template, saved.version

    def _sync(self, tx: Transaction) -> None:
        """Another process on this agent committed since we last read or wrote it: take its state (core memory,
        the messages in context, template fields) before changing anything, so its edits are kept."""
        row = tx.lock_agent(self.agent_id)
        if row.version == self.version:
            return
        state = AgentState.from_dict(row.state)
        known = dict(self.messages)
        missing = [mid for mid in state.in_context if mid not in known]
        if missing:
            known.update((m.id, message_from_dict(m.payload)) for m in self.store.get_messages(self.agent_id, missing))
        self.messages = [(mid, known[mid]) for mid in state.in_context]
        self.state = state
        self.core_memory.sections = CoreMemory.from_dict(state.core_memory).sections
        for name, value in state.template_fields.items():
            if name in self.template.field_names():
                self.template = self.template.with_field(name, value)
        self.system_message = self.render_system()
        self.version = row.version

    # -- changes, inside a transaction ---------------------------------------------------------------
    def add(self, tx: Transaction, message: AgentMessage, stored_text: str | None = None) -> int:
        """Store a message and put it in context; `stored_text` is what search sees, if not the message's."""
        text = message.searchable_text if stored_text is None else stored_text
        message_id = tx.add_message(self.agent_id, message.role, text, message.to_dict())
        self.messages.append((message_id, message))
        return message_id

    def save(self, tx: Transaction, cause: Cause = UNKNOWN) -> list[int]:
        """Write the state (core memory, which messages are in context, ...) over the version read, and a version
        of each core-memory block that changed since (what ``cause`` did: see memory/versions.py); their ids."""
        stored = CoreMemory.from_dict(self.state.core_memory).sections
        recorded = []
        for change in changed_blocks(stored, self.core_memory.sections):
            texts = (change.old_text, change.new_text)
            recorded.append(tx.add_memory_version(self.agent_id, change.block, texts, change.settings, cause))
        self.state.core_memory = self.core_memory.to_dict()
        self.state.in_context = [mid for mid, _ in self.messages]
        self.version = tx.save_agent_state(self.agent_id, self.state.to_dict(), self.version)
        return recorded

    def refresh_system_message(self, tx: Transaction) -> None:
        """Memory changed: the counts and the edit time the system message shows are brought up to date."""
        self.state.memory_stats = {
            "edit_timestamp": now_text(),
            "recall_count": self.store.count_messages(self.agent_id),
            "archival_count": self.store.count_passages(self.agent_id),
        }
        self.system_message = self.render_system()

    # -- changes in a transaction of their own -----------------------------------------------------------
    def append(self, message: AgentMessage, stored_text: str | None = None) -> None:
        with self.transaction() as tx:
            self.add(tx, message, stored_text)
            self.save(tx)

    def set_template_field(self, name: str, value: str) -> None:
        with self.transaction() as tx:
            self.template = self.template.with_field(name, value)
            self.state.template_fields[name] = value
            self.system_message = self.render_system()
            self.save(tx)

    # -- reads ----------------------------------------------------------------------------------------
    def render_system(self) -> str:
        """The system message for the current template, core memory and memory statistics."""
        stats = self.state.memory_stats or {}
        return self.template.render(
            self.core_memory,
            MemoryStats(
                edit_timestamp=stats.get("edit_timestamp", now_text()),
                recall_count=stats.get("recall_count", 0),
                archival_count=stats.get("archival_count", 0),
            ),
        )

    def recall_count(self) -> int:
        """How many messages recall memory holds (in context or not)."""
        return self.store.count_messages(self.agent_id)

    def archival_count(self) -> int:
        return self.store.count_passages(self.agent_id)

    def first_passages(self, limit: int) -> list[Passage]:
        """The oldest passages of archival memory."""
        return self.store.list_passages(self.agent_id, limit=limit)
