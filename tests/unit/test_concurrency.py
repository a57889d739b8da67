"""Several processes on one agent lose nothing, and nothing is shown before it is committed.

Two `Agent` objects on two `Store` connections to one database behave exactly as two processes do (each
has its own connection, its own in-memory copy, and the database's locks between them); the last test runs
real processes. Every test runs on both stores (the `database` fixture): a SQLite file and PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from fakes import Recorder, ScriptedBackend, call, reply

from memagent.app import open_agent
from memagent.errors import StateConflictError
from memagent.memory.store import Store
from memagent.settings import Settings


def append(marker: str) -> list[str]:
    """One turn's outputs: the edit (after a user message the agent continues with a heartbeat), then a reply."""
    return [call("core_memory_append", name="human", content=marker, request_heartbeat=True), reply("Noted.")]


def opened(home: Path, database: str, outputs=(), name: str = "same", context_length: int = 8192):
    store = Store(database)
    backend = ScriptedBackend(outputs, context_length=context_length)
    agent, _ = open_agent(Settings(home=home, agent=name, no_verify=True), store, backend)
    return agent, store


def human_block(database: str, name: str = "same") -> str:
    with Store(database) as store:
        row = store.find_agent(name)
        assert row is not None
        return row.state["core_memory"]["human"]["content"]


def test_edits_from_two_processes_on_one_agent_are_all_kept(home, database):
    first, first_store = opened(home, database, append("marker-A1") + append("marker-A2"))
    second, second_store = opened(home, database, append("marker-B1") + append("marker-B2"))
    for agent, text in ((first, "a1"), (second, "b1"), (first, "a2"), (second, "b2")):
        events = Recorder()
        agent.run_turn(text, events)
        assert [e.data["status"] for e in events.of("function_return")] == ["OK", "OK"]
    stored = human_block(database)
    for marker in ("marker-A1", "marker-A2", "marker-B1", "marker-B2"):
        assert marker in stored
    # each process's copy caught up with the other's edits before writing its own
    assert "marker-A2" in second.core_memory.sections["human"].content
    first_store.close()
    second_store.close()


def test_messages_from_two_processes_are_stored_once_in_commit_order(home, database):
    first, first_store = opened(home, database, [reply("reply to a")])
    second, second_store = opened(home, database, [reply("reply to b")])
    first.run_turn("message a", Recorder())
    second.run_turn("message b", Recorder())
    with Store(database) as store:
        row = store.find_agent("same")
        texts = [m.text for m in store.get_messages(row.id, row.state["in_context"])]
    wanted = ("message a", "reply to a", "message b", "reply to b")
    order = [w for t in texts for w in wanted if w in t]
    assert order == list(wanted)
    assert len(set(row.state["in_context"])) == len(row.state["in_context"])
    first_store.close()
    second_store.close()


def test_a_pop_in_one_process_is_seen_by_the_other(home, database):
    first, first_store = opened(home, database, [reply("one")])
    second, second_store = opened(home, database, [reply("two")])
    first.run_turn("hello", Recorder())
    assert first.pop(3) == 3
    second.run_turn("again", Recorder())
    with Store(database) as store:
        row = store.find_agent("same")
        texts = [m.text for m in store.get_messages(row.id, row.state["in_context"])]
    assert "hello" not in texts and "one" not in texts and texts[-3:][0] == "again"
    first_store.close()
    second_store.close()


def test_a_template_field_set_in_one_process_survives_the_others_next_step(home, database):
    first, first_store = opened(home, database)
    second, second_store = opened(home, database, [reply("ok")])
    field = first.template.field_names()[0]
    first.set_template_field(field, "Set elsewhere")
    second.run_turn("hi", Recorder())
    with Store(database) as store:
        assert store.find_agent("same").state["template_fields"][field] == "Set elsewhere"
    assert "Set elsewhere" in second.system_message
    first_store.close()
    second_store.close()


def test_a_stale_version_is_refused_by_the_store(database):
    with Store(database) as store:
        _stale_version_refused(store)


def _stale_version_refused(store):
    with store.transaction() as tx:
        row = tx.create_agent("v", {"x": 1})
    with store.transaction() as tx:
        version = tx.save_agent_state(row.id, {"x": 2}, 0)
    assert version == 1
    with pytest.raises(StateConflictError), store.transaction() as tx:
        tx.save_agent_state(row.id, {"x": 3}, 0)
    assert store.find_agent("v").state == {"x": 2}


def test_two_processes_creating_one_new_agent_both_get_it(home, database, monkeypatch):
    first, first_store = opened(home, database)
    second_store = Store(database)
    real_find = second_store.find_agent
    calls = []

    def find_missing_once(name):  # the race: the second process looked before the first created it
        calls.append(name)
        return None if len(calls) == 1 else real_find(name)

    monkeypatch.setattr(second_store, "find_agent", find_missing_once)
    second, created = open_agent(Settings(home=home, agent="same", no_verify=True), second_store, ScriptedBackend())
    assert not created and second.agent_id == first.agent_id
    first_store.close()
    second_store.close()


def test_the_reply_is_shown_only_after_it_is_committed(home, database):
    agent, store = opened(home, database, [reply("Saved before shown")])
    seen: list[str] = []

    def check(event) -> None:
        if event.type == "assistant_message":  # another connection must already see it
            with Store(database) as other:
                texts = [m.text for m in other.search_messages(agent.agent_id, "Saved before shown").items]
            seen.append("stored" if any("Saved before shown" in text for text in texts) else "not stored")

    agent.run_turn("hi", check)
    assert seen == ["stored"]
    store.close()


def test_a_memory_edit_is_reported_only_after_it_is_committed(home, database):
    agent, store = opened(home, database, append("committed-marker"))
    states: list[bool] = []

    def check(event) -> None:
        if event.type == "function_return" and event.text == "core_memory_append":
            states.append("committed-marker" in human_block(database))

    agent.run_turn("remember", check)
    assert states == [True]
    store.close()


def _append_in_process(home: str, database: str, worker: int, count: int, results) -> None:
    outputs = [output for i in range(count) for output in append(f"w{worker}-edit{i}")]
    # no memory-pressure alert: 2 outputs a turn
    agent, store = opened(Path(home), database, outputs, context_length=65536)
    ok = []
    for i in range(count):
        events = Recorder()
        agent.run_turn(f"worker {worker} message {i}", events)
        ok += [
            f"w{worker}-edit{i}"
            for e in events.of("function_return")
            if e.text == "core_memory_append" and e.data["status"] == "OK"
        ]
    store.close()
    results.put(ok)


def test_four_real_processes_on_one_agent_lose_no_edit(home, database):
    opened(home, database)[1].close()  # create the agent first
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_append_in_process, args=(str(home), database, w, 6, results)) for w in range(4)]
    for worker in workers:
        worker.start()
    returned_ok = [marker for _ in workers for marker in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(returned_ok) == 24
    stored = human_block(database)
    assert [m for m in returned_ok if m not in stored] == []
    with Store(database) as store:
        row = store.find_agent("same")
        in_context = row.state["in_context"]
        users = [m.text for m in store.get_messages(row.id, in_context) if m.role == "user"]
    assert len(in_context) == len(set(in_context))
    for w in range(4):  # each process's messages in its own order, none twice
        mine = [t for t in users if t.startswith(f"worker {w} ")]
        assert mine == [f"worker {w} message {i}" for i in range(6)]
