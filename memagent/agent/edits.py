"""Edits: the changes a person makes to the agent's history from the REPL (/pop, /retry, /rethink, /rewrite, /undo,
/attach, `memagent load`). Each writes through to recall memory in one History transaction, decided on the
history as committed now (another process may have changed it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from memagent.agent.history import History
from memagent.memory.versions import UNDO, Cause, Undone, restore
from memagent.messages import AgentMessage, AssistantCall
from memagent.text import clean_text

Cut = Callable[[list[tuple[int, AgentMessage]]], int | None]


class Edits:
    def __init__(self, history: History) -> None:
        self.history = history

    def pop(self, count: int = 3) -> int:
        """Remove the last `count` messages from context and from recall memory. Keeps at least one."""
        return self._cut(lambda messages: len(messages) - count)

    def take_last_user_message(self) -> str | None:
        """Remove everything from the last user message on and give back its text, to send again (/retry);
        None when there is none (or another process removed it meanwhile)."""
        found = next(((mid, m) for mid, m in reversed(self.history.messages) if m.kind == "user_message"), None)
        if found is None:
            return None
        message_id, message = found
        if not self._cut(lambda messages: next((i for i, (mid, _) in enumerate(messages) if mid == message_id), None)):
            return None
        return message.searchable_text

    def _cut(self, cut_at: Cut) -> int:
        """Remove the messages from index `cut_at(messages)` on, decided on the state as committed now."""
        history = self.history
        with history.transaction() as tx:
            cut = cut_at(history.messages)
            cut = len(history.messages) if cut is None else max(1, cut)
            removed, history.messages = history.messages[cut:], history.messages[:cut]
            if not removed:
                return 0
            tx.delete_messages([mid for mid, _ in removed])
            history.save(tx)
        return len(removed)

    def rethink(self, thoughts: str) -> bool:
        """Replace the inner thoughts of the last assistant message."""
        return self._edit_last_call(None, lambda call: call.with_thoughts(clean_text(thoughts)))

    def rewrite(self, text: str) -> bool:
        """Replace the text of the last message the agent sent with send_message."""
        return self._edit_last_call("send_message", lambda call: call.with_said(clean_text(text)))

    def _edit_last_call(self, function: str | None, edit: Callable[[AssistantCall], AssistantCall]) -> bool:
        with self.history.transaction() as tx:
            found = self._last_call(function)
            if found is None:
                return False
            index, mid, call = found
            edited = edit(call)
            tx.update_message(mid, edited.searchable_text, edited.to_dict())
            self.history.messages[index] = (mid, edited)
        return True

    def _last_call(self, function: str | None) -> tuple[int, int, AssistantCall] | None:
        """The last assistant message (index, id, call), if it is a call of `function` (any when None)."""
        messages = self.history.messages
        for index in range(len(messages) - 1, -1, -1):
            mid, message = messages[index]
            if message.role == "assistant":
                if not isinstance(message, AssistantCall) or function not in (None, message.name):
                    return None
                return index, mid, message
        return None

    def add_passages(self, texts: Sequence[str]) -> list[int]:
        """Insert passages and refresh the counts the system message shows, so the agent knows they are there."""
        with self.history.transaction() as tx:
            ids = tx.add_passages(self.history.agent_id, list(texts))
            self.history.refresh_system_message(tx)
            self.history.save(tx)
        return ids

    def undo(self, version_id: int | None = None) -> Undone | None:
        """Put the block of the agent's most recent core-memory change (by any process), or of change
        ``version_id``, back as it was before that change, and rebuild the system message. The undo is recorded as a
        change itself, so undoing again re-applies it. None when there is no such change."""
        history = self.history
        store, agent_id = history.store, history.agent_id
        with history.transaction() as tx:
            found = store.memory_versions(agent_id, limit=1, version_id=version_id)
            if not found:
                return None
            restore(history.core_memory, found[0])
            history.refresh_system_message(tx)
            recorded = history.save(tx, Cause(UNDO, reverts=found[0].id))
            result = store.memory_versions(agent_id, version_id=recorded[0]) if recorded else []
        return Undone(found[0], result[0] if result else None)
