"""`memagent.memory.export`: an agent as versioned JSON and back (a fresh database per import), into SQLite and
into PostgreSQL, and round trip SQLite -> PostgreSQL -> SQLite."""

from __future__ import annotations

import copy
import json

import pytest
import sqlalchemy as sa
from fakes import ScriptedBackend, call, reply
from pg_server import BOTH_STORES

from memagent.app import open_agent
from memagent.errors import AgentExistsError, UserError
from memagent.memory import schema
from memagent.memory.export import FORMAT, VERSION, check_export, export_agent, import_agent
from memagent.memory.store import Store, Transaction
from memagent.settings import Settings


@pytest.fixture(params=BOTH_STORES)
def target_db(request, tmp_path):
    """An empty database to import into, other than the source's: a SQLite file, then PostgreSQL."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "other" / "memagent.db")


def summarizing(outputs):
    """A backend output list whose raw summary prompts get a summary and whose turns get ``outputs`` in order."""
    script = iter(outputs)

    def respond(prompt: str) -> str:
        return "Brad likes tea and Zürich." if prompt.endswith("SUMMARY: ") else next(script)

    return [respond] * 50


@pytest.fixture
def exported(make_agent, store, events):
    """A well-used agent: core-memory edit, template field, non-ASCII messages, a summary alert, passages."""
    agent, _ = make_agent(summarizing([
        call("core_memory_append", name="human", content="Likes tea 🍵", request_heartbeat=True),
        reply("Got it, Brad."),
        reply("Grüße aus Zürich — 你好!"),
    ]))
    agent.run_turn("I'm Brad and I like tea", events)
    agent.set_template_field(agent.template.field_names()[0], "Edited field ✓")
    assert agent.summarize(events)
    agent.run_turn("Hallo, wie geht's? 😀", events)
    agent.add_passages(["first passage", "zweite Passage: Größe", "third"])
    data = export_agent(store, "tester")
    return agent, json.loads(json.dumps(data, ensure_ascii=False))  # through JSON text, as a file would be


def comparable(store: Store, name: str):
    row = store.find_agent(name)
    messages = store.all_messages(row.id)
    index = {m.id: i for i, m in enumerate(messages)}
    state = dict(row.state)
    state["in_context"] = [index[i] for i in state["in_context"]]  # ids as positions in the log
    return {
        "created_at": row.created_at,
        "state": state,
        "messages": [(m.role, m.text, m.payload, m.created_at) for m in messages],
        "passages": [(p.text, p.created_at) for p in store.all_passages(row.id)],
    }


def test_the_export_holds_the_whole_agent(exported, store):
    agent, data = exported
    assert (data["format"], data["version"]) == (FORMAT, VERSION)
    assert data["agent"]["name"] == "tester" and data["exported_at"].endswith("+00:00")
    state = data["agent"]["state"]
    assert "Likes tea 🍵" in state["core_memory"]["human"]["content"]
    assert "Edited field ✓" in state["template_fields"].values()
    assert state["in_context"] == [mid for mid, _ in agent.messages]
    ids = [m["id"] for m in data["messages"]]
    assert ids == sorted(ids) and len(ids) == store.count_messages(agent.agent_id)
    assert set(state["in_context"]) < set(ids)  # summarized messages stay in recall memory
    texts = " ".join(m["text"] for m in data["messages"])
    assert "Grüße aus Zürich — 你好!" in texts and "😀" in texts
    assert any("summary of the previous" in m["payload"].get("content", "") for m in data["messages"])
    assert [p["text"] for p in data["passages"]] == ["first passage", "zweite Passage: Größe", "third"]
    assert all(m["created_at"].endswith("+00:00") for m in data["messages"] + data["passages"])


@pytest.mark.parametrize("name", [None, "copy-of-tester"])
def test_an_import_into_a_fresh_database_equals_the_original_and_resumes(
    exported, store, tmp_path, name, events, target_db
):
    agent, data = exported
    with Store(target_db) as target:
        with target.transaction() as tx:  # an agent already there: the imported ids differ from the source's
            other = tx.create_agent("someone-else", {"preset": "memgpt_chat", "core_memory": {}})
            for text in ("a", "b", "c", "d"):
                tx.add_message(other.id, "user", text, {"role": "user", "content": text})
        row = import_agent(target, data, name)
        assert row.name == (name or "tester")
        assert comparable(target, row.name) == comparable(store, "tester")
        assert row.state["in_context"] != data["agent"]["state"]["in_context"]  # remapped to the new ids
        backend = ScriptedBackend([reply("Still here.")])
        resumed, created = open_agent(Settings(home=tmp_path / "other", agent=row.name), target, backend)
        assert not created
        assert [m for _, m in resumed.messages] == [m for _, m in agent.messages]
        assert resumed.system_message == agent.system_message
        resumed.run_turn("do you remember me?", events)
        assert events.of("assistant_message")[-1].text == "Still here."
        assert "Likes tea 🍵" in backend.prompts[0] and "Edited field ✓" in backend.prompts[0]


def test_an_import_over_an_existing_name_changes_nothing(exported, store):
    _, data = exported
    before = comparable(store, "tester")
    with pytest.raises(AgentExistsError):
        import_agent(store, data)
    assert comparable(store, "tester") == before and len(store.list_agents()) == 1


def test_a_failing_import_leaves_no_half_agent(exported, tmp_path, monkeypatch):
    _, data = exported

    def explode(*args, **kwargs):
        raise RuntimeError("disk went away")

    monkeypatch.setattr(Transaction, "add_passage", explode)  # after the agent and all its messages
    with Store(tmp_path / "t.db") as target:
        with pytest.raises(RuntimeError, match="disk went away"):
            import_agent(target, data)
        assert target.list_agents() == []
        assert target._scalar(sa.select(sa.func.count()).select_from(schema.messages)) == 0


def test_text_is_cleaned_on_the_way_in(exported, tmp_path):
    _, data = exported
    data["messages"][0]["text"] = "bell\x07 and nul\x00 gone"
    data["passages"][0]["text"] = "esc\x1b[31m"
    with Store(tmp_path / "t.db") as target:
        row = import_agent(target, data)
        text = target.all_messages(row.id)[0].text
        assert "\x07" not in text and "\x00" not in text
        assert "\x1b" not in target.all_passages(row.id)[0].text


def broken(data, edit):
    data = copy.deepcopy(data)
    edit(data)
    return data


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(format="something-else"), r"not a memagent agent export"),
    (lambda d: d.update(version=VERSION + 1), rf"format version {VERSION + 1}.*upgrade memagent"),
    (lambda d: d.update(version="1"), r"damaged: version should be a whole number"),
    (lambda d: d.pop("messages"), r"damaged: messages is missing"),
    (lambda d: d["agent"]["state"].pop("preset"), r"damaged: agent.state.preset is missing"),
    (lambda d: d["agent"]["state"].update(core_memory=[]), r"agent.state.core_memory should be an object, not a list"),
    (lambda d: d["messages"][1].update(role=3), r"messages\[1\]\.role should be a string, not a whole number"),
    (lambda d: d["messages"][2].update(created_at="yesterday"), r"messages\[2\]\.created_at is not an ISO-8601"),
    (lambda d: d["messages"][2].update(created_at="2026-01-01T00:00:00"), r"has no time zone"),
    (lambda d: d["messages"][2].update(id=d["messages"][1]["id"]), r"messages\[2\]\.id repeats id"),
    (lambda d: d["passages"].append("text"), r"passages\[3\] should be an object"),
    (lambda d: d["agent"]["state"]["in_context"].append(10**6), r"in_context names messages \[1000000\]"),
    (lambda d: d["agent"].update(name="../evil"), r"Invalid agent name"),
])
def test_a_bad_export_is_one_clear_line_and_writes_nothing(exported, tmp_path, edit, message):
    _, data = exported
    with Store(tmp_path / "t.db") as target:
        with pytest.raises(UserError, match=message) as raised:
            import_agent(target, broken(data, edit), source="agent.json")
        assert "\n" not in str(raised.value)
        assert target.list_agents() == []


def test_not_a_dict_is_not_an_export():
    with pytest.raises(UserError, match=r"agent.json is not a memagent agent export"):
        check_export([1, 2], "agent.json")


def test_exporting_an_unknown_agent_is_a_user_error(store):
    with pytest.raises(UserError, match="No agent named 'ghost'"):
        export_agent(store, "ghost")


def test_an_agent_without_messages_or_passages_round_trips(store, tmp_path):
    with store.transaction() as tx:
        tx.create_agent("bare", {"preset": "memgpt_chat", "core_memory": {}})
    data = export_agent(store, "bare")
    assert data["messages"] == [] and data["passages"] == []
    with Store(tmp_path / "t.db") as target:
        assert import_agent(target, data).state == {"preset": "memgpt_chat", "core_memory": {}, "in_context": []}


@pytest.mark.postgres
def test_an_agent_moves_sqlite_to_postgresql_and_back_unchanged(exported, store, pg_url, tmp_path):
    _, data = exported
    with Store(pg_url) as postgres:
        import_agent(postgres, data)
        assert comparable(postgres, "tester") == comparable(store, "tester")
        again = json.loads(json.dumps(export_agent(postgres, "tester"), ensure_ascii=False))
    with Store(tmp_path / "back" / "memagent.db") as back:
        import_agent(back, again)
        assert comparable(back, "tester") == comparable(store, "tester")
    assert again["passages"] == data["passages"]  # texts and times exactly, through timestamptz and back
    assert [{**m, "id": 0} for m in again["messages"]] == [{**m, "id": 0} for m in data["messages"]]
    without_ids = [{**d["agent"], "state": {**d["agent"]["state"], "in_context": None}} for d in (again, data)]
    assert without_ids[0] == without_ids[1]
