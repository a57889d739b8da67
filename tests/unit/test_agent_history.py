"""History alone, without a model: the transaction that re-reads another process's state and restores memory on
any failure (issue 16's guarantees, now in one collaborator of the split agent)."""

from __future__ import annotations

import pytest

from memagent.agent.history import History
from memagent.agent.state import AgentState
from memagent.memory.core import CoreMemory, Section
from memagent.messages import SystemAlertMessage, UserMessage
from memagent.prompts.template import SystemPromptTemplate


def make_history(store, name="h") -> History:
    core = CoreMemory({"human": Section("First name: ?")})
    state = AgentState(preset="p", core_memory=core.to_dict())
    with store.transaction() as tx:
        row = tx.create_agent(name, state.to_dict())
        version = tx.save_agent_state(row.id, state.to_dict())
    template = SystemPromptTemplate("You are an agent.", {})
    return History(store=store, agent_id=row.id, state=state, template=template, messages=[], version=version)


def reopen(store, history: History) -> History:
    row = store.find_agent("h")
    state = AgentState.from_dict(row.state)
    return History(store=store, agent_id=row.id, state=state, template=history.template, messages=[],
                   version=0)  # an older version: the first transaction re-reads


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_a_failed_transaction_leaves_memory_and_database_as_they_were(store, failure):
    history = make_history(store)
    history.append(UserMessage("kept"))
    before = (list(history.messages), history.core_memory.to_dict(), history.state.to_dict(), history.version)
    with pytest.raises(failure), history.transaction() as tx:
        history.add(tx, UserMessage("lost"))
        history.core_memory.sections["human"].content = "half-done edit"
        history.save(tx)
        raise failure
    assert (list(history.messages), history.core_memory.to_dict(), history.state.to_dict(), history.version) == before
    assert [m.text for m in store.get_messages(history.agent_id, history.state.in_context)] == ["kept"]


def test_a_transaction_takes_what_another_process_committed_first(store):
    mine = make_history(store)
    other = reopen(store, mine)
    other.append(UserMessage("from the other process"))
    mine.append(SystemAlertMessage("mine"))
    assert [m.searchable_text for _, m in mine.messages] == ["from the other process", "mine"]
    row = store.find_agent("h")
    assert row.state["in_context"] == [mid for mid, _ in mine.messages] and row.version == mine.version


def test_stored_messages_come_back_typed(store):
    history = make_history(store)
    history.append(UserMessage("Grüße"))
    again = reopen(store, history)
    with again.transaction():
        pass
    assert again.messages == history.messages
