"""Core-memory history and undo: the memory_versions table on both stores, versions recorded by the agent's step in
the transaction of the edit, /undo, /memory history, `agents show`, and the history carried by export/import."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from clihelp import run_cli
from fakes import Recorder, ScriptedBackend, call, reply

from memagent.app import open_agent
from memagent.errors import StoreError
from memagent.memory import schema
from memagent.memory.core import CoreMemory, Section
from memagent.memory.export import VERSION, export_agent, import_agent
from memagent.memory.migrations import LATEST_VERSION, MEMORY_VERSIONS_SCHEMA, MIGRATIONS
from memagent.memory.store import Store, Transaction
from memagent.memory.versions import UNDO, Cause, changed_blocks, restore
from memagent.repl.commands import completions, run_command
from memagent.repl.memory_history import diff_text
from memagent.settings import Settings


def append(content: str, name: str = "human") -> list[str]:
    """One turn: the edit (continued by a heartbeat), then a reply."""
    return [call("core_memory_append", name=name, content=content, request_heartbeat=True), reply("Noted.")]


def command(agent, line: str) -> Recorder:
    events = Recorder()
    run_command(line, agent, events, lambda _prompt: None)
    return events


def text_of(events: Recorder, kind: str = "info") -> str:
    found = events.of(kind)
    assert len(found) == 1, [e.to_json() for e in events]
    return found[0].text


def versions_table(url: str) -> list[tuple]:
    """The rows as another connection sees them (what was committed)."""
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT block, old_text, new_text, source FROM memory_versions ORDER BY id")).all()
    engine.dispose()
    return [tuple(row) for row in rows]


# ------------------------------------------------------------------------------------- the table


def test_the_migration_builds_the_table_schema_py_describes(database: str) -> None:
    with Store(database) as store:
        assert store.schema_version == LATEST_VERSION >= MEMORY_VERSIONS_SCHEMA
    engine = sa.create_engine(database if "://" in database else f"sqlite:///{database}")
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        columns = {column["name"]: column for column in inspector.get_columns("memory_versions")}
        assert set(columns) == {column.name for column in schema.memory_versions.columns}
        nullable = {name for name, column in columns.items() if column["nullable"]} - {"id"}  # SQLite's rowid
        assert nullable == {"old_text", "new_text", "message_id", "reverts"}
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("memory_versions")}
        assert indexes["memory_versions_agent"] == ["agent_id", "id"]
        keys = inspector.get_foreign_keys("memory_versions")  # ON DELETE CASCADE: see the round-trip test
        assert [(k["referred_table"], k["referred_columns"]) for k in keys] == [("agents", ["id"])]
    engine.dispose()


def test_versions_round_trip_newest_first_by_block_and_go_with_their_agent(database: str) -> None:
    moment = datetime(2026, 12, 2, 17, 10, 7, 123456, tzinfo=UTC)
    with Store(database) as store:
        with store.transaction() as tx:
            agent = tx.create_agent("a", {}).id
            other = tx.create_agent("b", {}).id
            tx.add_memory_version(agent, "human", (None, "Brad"), {"max_length": 50, "position": 1},
                                  Cause("memory_create_block", 7), moment)
            tx.add_memory_version(agent, "persona", ("Sam 🍵", "Sam"), {"max_length": 2000, "position": 0},
                                  Cause("core_memory_replace", 9))
            tx.add_memory_version(agent, "human", ("Brad", None), {"max_length": 50, "position": 1},
                                  Cause(UNDO, reverts=1))
            tx.add_memory_version(other, "human", ("x", "y"), {}, Cause("core_memory_append"))
        newest = store.memory_versions(agent)
        assert [(v.block, v.kind, v.cause) for v in newest] == [
            ("human", "deleted", Cause(UNDO, reverts=newest[2].id)),
            ("persona", "changed", Cause("core_memory_replace", 9)),
            ("human", "created", Cause("memory_create_block", 7)),
        ]
        assert (newest[1].old_text, newest[1].new_text) == ("Sam 🍵", "Sam")
        assert newest[2].created_at == moment and newest[2].settings == {"max_length": 50, "position": 1}
        assert newest[0].created_at.tzinfo is not None and newest[0].created_at > moment
        assert [v.kind for v in store.memory_versions(agent, "human")] == ["deleted", "created"]
        assert [v.kind for v in store.memory_versions(agent, newest_first=False, limit=2)] == ["created", "changed"]
        assert len(store.memory_versions(agent, limit=1)) == 1
        with store.transaction() as tx:
            tx.delete_agent("a")
        assert store.memory_versions(agent) == [] and len(store.memory_versions(other)) == 1


def test_a_file_from_before_the_table_is_read_without_history_then_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store(path, migrations=MIGRATIONS[: MEMORY_VERSIONS_SCHEMA - 1]) as old, old.transaction() as tx:
        agent = tx.create_agent("old", {"preset": "memgpt_chat", "core_memory": {}}).id
    with Store(path, read_only=True) as store:  # `agents show` in a home it can't write: no table, no history
        assert store.schema_version == MEMORY_VERSIONS_SCHEMA - 1
        assert store.memory_versions(agent) == []
    with Store(path) as store:
        assert store.schema_version == LATEST_VERSION
        with store.transaction() as tx:
            tx.add_memory_version(agent, "human", ("", "x"), {}, Cause("core_memory_append"))
        assert [v.new_text for v in store.memory_versions(agent)] == ["x"]


# ------------------------------------------------------------------------ what is recorded, and when


def test_a_tool_call_records_its_change_with_the_call_that_made_it(make_agent, store, events) -> None:
    agent, _ = make_agent(append("Name: Brad.") + append("Likes tea."))
    initial = agent.core_memory.sections["human"].content
    agent.run_turn("I'm Brad", events)
    agent.run_turn("I like tea", events)
    first, second = reversed(agent.memory_versions())
    assert (first.block, first.old_text, first.new_text) == ("human", initial, f"{initial}\nName: Brad.")
    assert (second.old_text, second.new_text) == (first.new_text, f"{initial}\nName: Brad.\nLikes tea.")
    assert second.cause.source == "core_memory_append" and second.settings["max_length"] > 0
    [stored_call] = store.get_messages(agent.agent_id, [second.cause.message_id])
    assert stored_call.payload["function_call"]["name"] == "core_memory_append"
    assert "Likes tea." in stored_call.payload["function_call"]["arguments"]


def test_failed_edits_searches_and_replies_record_nothing(make_agent, events) -> None:
    agent, _ = make_agent([
        call("core_memory_replace", name="human", old_content="not there", new_content="x", request_heartbeat=True),
        call("archival_memory_insert", content="a passage", request_heartbeat=True),
        reply("Done."),
    ])
    agent.run_turn("hello", events)
    assert [e.data["status"] for e in events.of("function_return")] == ["Failed", "OK", "OK"]
    assert agent.memory_versions() == []
    assert "Nothing to undo" in text_of(command(agent, "/undo"), "error")


def test_created_and_deleted_blocks_are_recorded_with_their_shape(make_agent, events) -> None:
    agent, _ = make_agent([
        call("memory_create_block", label="projects", description="What they build", content="A boat",
             request_heartbeat=True),
        call("memory_delete_block", label="persona", request_heartbeat=True),
        reply("Done."),
    ], preset="memgpt_blocks")
    persona = agent.core_memory.sections["persona"]
    agent.run_turn("remember my projects", events)
    deleted, created = agent.memory_versions()
    assert (created.kind, created.new_text, created.cause.source) == ("created", "A boat", "memory_create_block")
    assert created.settings == {"max_length": 2000, "position": 3, "description": "What they build"}
    assert (deleted.kind, deleted.old_text) == ("deleted", persona.content)
    assert deleted.settings == {"max_length": persona.max_length, "position": 0, "description": persona.description}


def test_an_edit_and_its_version_commit_together_or_not_at_all(make_agent, store, monkeypatch) -> None:
    agent, _ = make_agent(append("First.") + append("Second."))
    initial = agent.core_memory.sections["human"].content

    def refused(*args, **kwargs):
        raise StoreError("disk full")

    with monkeypatch.context() as patch:  # the version can't be written: neither is the edit
        patch.setattr(Transaction, "add_memory_version", refused)
        events = Recorder()
        agent.run_turn("one", events)
        assert "disk full" in events.of("error")[0].text
    assert "First." not in store.find_agent("tester").state["core_memory"]["human"]["content"]
    assert "First." not in agent.core_memory.sections["human"].content
    with monkeypatch.context() as patch:  # the edit can't be saved: neither is its version
        patch.setattr(Transaction, "save_agent_state", refused)
        agent.run_turn("two", Recorder())
    assert agent.memory_versions() == []
    assert store.find_agent("tester").state["core_memory"]["human"]["content"] == initial


# ------------------------------------------------------------------------------------------ /undo


def test_undo_restores_the_latest_change_and_undo_again_reapplies_it(make_agent, store, events) -> None:
    agent, _ = make_agent(append("Name: Brad.") + append("Likes tea."))
    agent.run_turn("I'm Brad", events)
    agent.run_turn("I like tea", events)
    latest = agent.memory_versions()[0]
    said = text_of(command(agent, "/undo"))
    assert f"Undid change #{latest.id} (core_memory_append (call {latest.cause.message_id})" in said
    assert "block 'human' changed back, \"…⏎Name: Brad.⏎Likes tea.\" → \"…⏎Name: Brad.\"" in said
    before = latest.old_text
    assert agent.core_memory.sections["human"].content == before
    assert "Likes tea." not in agent.system_message and before in agent.system_message
    assert store.find_agent("tester").state["core_memory"]["human"]["content"] == before
    undo = agent.memory_versions()[0]
    assert (undo.cause, undo.old_text, undo.new_text) == (Cause(UNDO, reverts=latest.id), latest.new_text, before)
    assert f"/undo again re-applies it (as #{undo.id})" in said

    assert f"Undid change #{undo.id} (/undo of #{latest.id}" in text_of(command(agent, "/undo"))  # re-applies
    assert agent.core_memory.sections["human"].content == latest.new_text
    assert "Likes tea." in agent.system_message
    assert agent.memory_versions()[0].cause == Cause(UNDO, reverts=undo.id)
    assert "Usage: /undo [N]" in text_of(command(agent, "/undo last"), "error")
    assert "No change #999" in text_of(command(agent, "/undo 999"), "error")


def test_undo_of_an_older_change_puts_its_block_back_as_before_it(make_agent, events) -> None:
    agent, _ = make_agent(append("Name: Brad.") + append("Likes tea.") + append("I am Sam.", name="persona"))
    initial = agent.core_memory.sections["human"].content
    persona = agent.core_memory.sections["persona"].content
    for text in ("one", "two", "three"):
        agent.run_turn(text, events)
    first = agent.memory_versions()[-1]
    said = text_of(command(agent, f"/undo #{first.id}"))
    assert f"Undid change #{first.id}" in said and "Likes tea." in said  # the later change of the block went too
    assert agent.core_memory.sections["human"].content == initial
    assert agent.core_memory.sections["persona"].content == f"{persona}\nI am Sam."  # other blocks untouched
    again = text_of(command(agent, f"/undo {first.id}"))
    assert again.endswith("already was as before it; nothing changed.")
    assert agent.memory_versions()[0].cause == Cause(UNDO, reverts=first.id)  # recorded once, not twice


def test_undo_of_a_created_block_deletes_it_and_of_a_deleted_one_recreates_it_in_place(make_agent, events) -> None:
    agent, _ = make_agent([
        call("memory_create_block", label="projects", description="What they build", content="A boat",
             request_heartbeat=True),
        reply("Done."),
        call("memory_delete_block", label="human", request_heartbeat=True),
        reply("Done."),
    ], preset="memgpt_blocks")
    before = dict(agent.core_memory.sections)
    agent.run_turn("create", events)
    assert "projects" in agent.system_message
    agent.run_turn("delete", events)
    assert "human" not in agent.core_memory.sections
    deleted, created = agent.memory_versions()
    assert "block 'human' restored" in text_of(command(agent, "/undo"))
    assert list(agent.core_memory.sections) == ["persona", "human", "guidelines", "projects"]
    assert agent.core_memory.sections["human"] == before["human"]
    assert "block 'projects' removed" in text_of(command(agent, f"/undo {created.id}"))
    assert agent.core_memory.sections == before
    assert "projects" not in agent.system_message
    assert "block 'projects' restored (6 characters)" in text_of(command(agent, "/undo"))
    assert agent.core_memory.sections["projects"] == Section("A boat", 2000, "What they build")


def test_undo_is_not_held_to_read_only_limits_or_block_counts() -> None:
    """The user's undo returns to a state memory was in; the read-only flag stops the model only."""
    core = CoreMemory({"rules": Section("new rules", 10, read_only=True)})
    [change] = changed_blocks({"rules": Section("old rules, longer than ten", 10, read_only=True)}, core.sections)
    version = _version(change)
    restore(core, version)
    assert core.sections["rules"] == Section("old rules, longer than ten", 10, read_only=True)


def _version(change):
    from memagent.memory.versions import MemoryVersion

    return MemoryVersion(1, 1, change.block, change.old_text, change.new_text, change.settings, Cause("x"),
                         datetime.now(UTC))


def test_two_processes_record_their_own_changes_and_undo_takes_the_latest_of_either(home, database) -> None:
    stores, agents = [], []
    for outputs in (append("from A"), [*append("from B"), reply("Hi.")]):
        store = Store(database)
        agent, _ = open_agent(Settings(home=home, agent="same", no_verify=True), store, ScriptedBackend(outputs))
        stores.append(store)
        agents.append(agent)
    first, second = agents
    initial = first.core_memory.sections["human"].content
    first.run_turn("a", Recorder())
    second.run_turn("b", Recorder())
    b_change, a_change = first.memory_versions()
    assert (a_change.new_text, b_change.new_text) == (f"{initial}\nfrom A", f"{initial}\nfrom A\nfrom B")
    a_call = stores[0].get_messages(first.agent_id, [a_change.cause.message_id])[0]
    b_call = stores[1].get_messages(second.agent_id, [b_change.cause.message_id])[0]
    assert "from A" in a_call.payload["function_call"]["arguments"]
    assert "from B" in b_call.payload["function_call"]["arguments"]
    assert "block 'human'" in text_of(command(first, "/undo"))  # undoes B's change, made in the other process
    assert first.core_memory.sections["human"].content == a_change.new_text
    assert "from B" not in first.system_message
    assert versions_table(database)[-1] == ("human", b_change.new_text, a_change.new_text, UNDO)
    second.run_turn("c", Recorder())  # the other process's next step starts from memory as undone
    assert "from B" not in second.core_memory.sections["human"].content
    for store in stores:
        store.close()


# ------------------------------------------------------------------------------ /memory history


def test_memory_history_shows_changes_newest_first_per_block_cut_to_one_line(make_agent, events) -> None:
    long_text = "word " * 60
    agent, _ = make_agent(
        append("Name: Brad.") + append(long_text.strip(), name="persona") + append("Likes tea.")
    )
    for text in ("one", "two", "three"):
        agent.run_turn(text, events)
    shown = text_of(command(agent, "/memory history")).splitlines()
    assert shown[0] == "Core memory: 3 latest changes, newest first:"
    versions = agent.memory_versions()
    for line, version in zip(shown[1:], versions, strict=True):
        when = version.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        assert line.startswith(f"  #{version.id} {when} {version.block}, core_memory_append (call ")
    assert shown[1].endswith('"…⏎Name: Brad." → "…⏎Name: Brad.⏎Likes tea."')
    assert len(shown[2]) < 250 and "…" in shown[2]  # the persona's long addition is cut
    human = text_of(command(agent, "/memory history human")).splitlines()
    assert human[0] == "Block 'human': 2 latest changes, newest first:" and len(human) == 3
    latest = text_of(command(agent, "/memory history 1")).splitlines()
    assert len(latest) == 3 and latest[1] == shown[1] and "/memory history 5" in latest[2]
    assert "No block named 'nope'" in text_of(command(agent, "/memory history nope"), "error")
    assert "Usage: /memory history" in text_of(command(agent, "/memory history a b"), "error")
    assert "Unknown /memory argument 'hist'" in text_of(command(agent, "/memory hist"), "error")


def test_memory_history_of_an_agent_without_changes(make_agent) -> None:
    agent, _ = make_agent()
    assert text_of(command(agent, "/memory history")) == "No core-memory change recorded yet."
    assert text_of(command(agent, "/memory history human")) == "No core-memory change of block 'human' recorded yet."


def test_tab_completes_history_after_memory(make_agent) -> None:
    agent, _ = make_agent()
    assert completions("/memory h", agent) == ["history"]
    assert "/undo" in completions("/un", agent)


@pytest.mark.parametrize(("old", "new", "shown"), [
    (None, "A boat", 'created "A boat"'),
    ("A boat\nand a car", None, 'deleted (was "A boat⏎and a car")'),
    ("Likes tea and sailing", "Likes coffee and sailing", '"Likes tea and sailing" → "Likes coffee and sailing"'),
    ("I like tea and sailing on lakes", "I like a boat", '"I like tea and sailing on lakes" → "I like a boat"'),
    ("", "x", '"" → "x"'),
    ("same", "same", '"same" → "same"'),
    ("ab" * 100, "ab" * 100 + "!", '"…abababababab" → "…abababababab!"'),
    ("x" + "y" * 100, "z" + "y" * 100, '"xyyyyyyyyyyyy…" → "zyyyyyyyyyyyy…"'),
])
def test_a_change_in_one_line(old, new, shown) -> None:
    assert diff_text(old, new) == shown


def test_a_long_change_is_cut() -> None:
    shown = diff_text("", "z" * 500)
    assert len(shown) < 80 and shown.endswith('…"')


# ------------------------------------------------------------------------------------ agents show


def test_agents_show_lists_recent_changes(home, make_agent, store, events) -> None:
    agent, _ = make_agent(append("Name: Brad.") + append("Likes tea."), agent="sam")
    agent.run_turn("one", events)
    agent.run_turn("two", events)
    command(agent, "/undo")
    store.close()
    shown = run_cli(["agents", "show", "sam"], home)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "Recent core-memory changes, newest first" in out
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith("#")]
    assert len(lines) == 3
    assert "human, /undo of #" in lines[0] and "core_memory_append (call" in lines[1]
    assert 'Likes tea."' in lines[1]


# ------------------------------------------------------------------------------------ export/import


@pytest.fixture
def edited(make_agent, store, events):
    agent, _ = make_agent([
        *append("Name: Brad."),
        call("memory_create_block", label="projects", description="What they build", content="A boat",
             request_heartbeat=True),
        reply("Done."),
    ], preset="memgpt_blocks")
    agent.run_turn("I'm Brad", events)
    agent.run_turn("I build boats", events)
    command(agent, "/undo")
    return agent


def test_export_and_import_carry_the_history(edited, store, tmp_path) -> None:
    data = json.loads(json.dumps(export_agent(store, "tester")))
    assert data["version"] == VERSION
    assert [v["source"] for v in data["memory_versions"]] == ["core_memory_append", "memory_create_block", UNDO]
    with Store(tmp_path / "target.db") as target:
        row = import_agent(target, data, "copy")
        copied = target.memory_versions(row.id, newest_first=False)
        original = store.memory_versions(edited.agent_id, newest_first=False)
        assert [(v.block, v.old_text, v.new_text, v.settings, v.cause.source, v.created_at) for v in copied] == [
            (v.block, v.old_text, v.new_text, v.settings, v.cause.source, v.created_at) for v in original
        ]
        assert copied[2].cause.reverts == copied[1].id
        [call_message] = target.get_messages(row.id, [copied[0].cause.message_id])
        assert call_message.payload["function_call"]["name"] == "core_memory_append"
        assert json.loads(json.dumps(export_agent(target, "copy")))["memory_versions"][1:] == [
            {**v, "id": c.id, "message_id": c.cause.message_id, "reverts": c.cause.reverts}
            for v, c in zip(data["memory_versions"][1:], copied[1:], strict=True)
        ]


def test_an_import_of_a_version_1_export_has_no_history(edited, store, tmp_path) -> None:
    data = json.loads(json.dumps(export_agent(store, "tester")))
    data["version"] = 1
    del data["memory_versions"]
    with Store(tmp_path / "target.db") as target:
        row = import_agent(target, data)
        assert target.memory_versions(row.id) == []
        assert row.state["core_memory"] == store.find_agent("tester").state["core_memory"]


def test_a_call_the_export_no_longer_holds_leaves_no_dangling_id(edited, store, tmp_path) -> None:
    data = json.loads(json.dumps(export_agent(store, "tester")))
    data["memory_versions"][0]["message_id"] = 10**9
    with Store(tmp_path / "target.db") as target:
        row = import_agent(target, data)
        assert target.memory_versions(row.id, newest_first=False)[0].cause == Cause("core_memory_append")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.pop("memory_versions"), r"damaged: memory_versions is missing"),
    (lambda d: d["memory_versions"].append(3), r"memory_versions\[3\] should be an object"),
    (lambda d: d["memory_versions"][0].update(block=None), r"memory_versions\[0\]\.block should be a string"),
    (lambda d: d["memory_versions"][1].update(old_text=None, new_text=None), r"has neither old_text nor new_text"),
    (lambda d: d["memory_versions"][1].update(id=d["memory_versions"][0]["id"]), r"\[1\]\.id repeats id"),
    (lambda d: d["memory_versions"][2].update(reverts="2"), r"\[2\]\.reverts should be a whole number"),
    (lambda d: d["memory_versions"][2].update(created_at="now"), r"\[2\]\.created_at is not an ISO-8601"),
])
def test_a_damaged_history_is_one_clear_line_and_imports_nothing(edited, store, tmp_path, edit, message) -> None:
    data = json.loads(json.dumps(export_agent(store, "tester")))
    edit(data)
    with Store(tmp_path / "target.db") as target:
        with pytest.raises(Exception, match=message) as raised:
            import_agent(target, data, source="agent.json")
        assert "\n" not in str(raised.value) and "agent.json is damaged" in str(raised.value)
        assert target.list_agents() == []
