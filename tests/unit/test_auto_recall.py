"""Auto recall (memory/auto_recall.py): the best recall and archival hits for the user's message ride in its
envelope, bounded, never repeating the context window, never indexed as the user's words; off by default."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import ScriptedBackend, reply

from memagent.app import choose_auto_recall
from memagent.errors import ConfigError, StoreError
from memagent.llm.backends.base import estimate_tokens
from memagent.llm.wrappers.base import RETRIEVED_HEADING, user_text
from memagent.memory.auto_recall import LINE_CHARS, AutoRecall, bound
from memagent.messages import UserMessage, assistant_call, heartbeat_message, message_from_dict, user_message
from memagent.prompts.presets import BUNDLED, Library, load_preset
from memagent.settings import Settings

NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
DAY = NOON.astimezone().date().isoformat()


def recall_preset(home: Path, setting: str = "true", name: str = "recall") -> str:
    """The default preset with ``auto_recall: <setting>``, as a user's preset."""
    folder = home / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    text = (BUNDLED / "presets" / "memgpt_chat.yaml").read_text(encoding="utf-8")
    (folder / f"{name}.yaml").write_text(f"{text}auto_recall: {setting}\n", encoding="utf-8")
    return name


def remember(store, agent, *messages: dict, moment: datetime = NOON) -> list[int]:
    """Messages in recall memory but out of the context window (as after a summary)."""
    with store.transaction() as tx:
        return [tx.add_message(agent.agent_id, m["role"], _text(m), m, created_at=moment) for m in messages]


def _text(message: dict) -> str:
    return message_from_dict(message).searchable_text


def last_user(store, agent) -> tuple[int, dict]:
    mid, message = next((mid, m) for mid, m in reversed(agent.messages) if m["role"] == "user")
    return mid, json.loads(message["content"])


def test_retrieved_memory_rides_in_the_user_envelope_and_the_prompt(make_agent, events, store, home):
    agent, backend = make_agent([reply("You live in Lisbon.")], preset=recall_preset(home))
    remember(store, agent, user_message("My cat is called Miso"), user_message("I live in Lisbon"))
    agent.add_passages(["Brad moved to Lisbon to live by the sea."])
    agent.run_turn("Where do I live?", events)
    _, envelope = last_user(store, agent)
    assert envelope["retrieved_memory"] == [
        f"({DAY}) user: I live in Lisbon",
        f"({envelope['retrieved_memory'][1][1:11]}) archival memory: Brad moved to Lisbon to live by the sea.",
    ]
    assert envelope["message"] == "Where do I live?"
    assert "retrieved_memory" in backend.prompts[0] and "I live in Lisbon" in backend.prompts[0]
    assert "Miso" not in backend.prompts[0]


def test_the_prompt_before_the_message_is_unchanged_and_the_next_turn_renders_it_the_same(
    make_agent, events, store, home
):
    agent, backend = make_agent([reply("Lisbon!"), reply("Rex.")], preset=recall_preset(home))
    remember(store, agent, user_message("I live in Lisbon"), user_message("My dog is Rex"))
    marker = agent.wrapper.generation_prompt
    before = agent.prompt()
    agent.run_turn("Where do I live?", events)
    head = before[: before.rindex(marker)]
    assert backend.prompts[0].startswith(head)
    assert "I live in Lisbon" in backend.prompts[0][len(head):]
    agent.run_turn("What is my dog called?", events)
    first = backend.prompts[0]
    assert backend.prompts[1].startswith(first[: first.rindex(marker)])  # the cached prompt still holds
    assert "My dog is Rex" in backend.prompts[1][first.rindex(marker):]


def test_off_by_default(make_agent, events, store):
    agent, backend = make_agent([reply("Hmm.")])
    assert agent.config.auto_recall is None
    remember(store, agent, user_message("I live in Lisbon"))
    agent.run_turn("Where do I live?", events)
    _, envelope = last_user(store, agent)
    assert list(envelope) == ["type", "message", "time"]
    assert "retrieved_memory" not in backend.prompts[0]


def test_no_hits_no_field(make_agent, events, store, home):
    agent, _ = make_agent([reply("Hi.")], preset=recall_preset(home))
    remember(store, agent, user_message("I live in Lisbon"))
    agent.run_turn("Tell me a joke about penguins", events)
    _, envelope = last_user(store, agent)
    assert list(envelope) == ["type", "message", "time"]


def test_messages_in_the_window_are_not_repeated(make_agent, events, store, home):
    agent, _ = make_agent([reply("Noted, Lisbon."), reply("In Lisbon.")], preset=recall_preset(home))
    agent.run_turn("I live in Lisbon near the river", events)  # stays in the context window
    [old] = remember(store, agent, user_message("I used to live in Porto"))
    agent.run_turn("Where do I live?", events)
    _, envelope = last_user(store, agent)
    assert envelope["retrieved_memory"] == [f"({DAY}) user: I used to live in Porto"]
    assert old not in {mid for mid, _ in agent.messages}


def test_only_what_people_said_is_retrieved(make_agent, events, store, home):
    agent, _ = make_agent([reply("Sure.")], preset=recall_preset(home, "{hits: 5}"))
    remember(
        store, agent,
        heartbeat_message("garden check"),
        assistant_call("The garden matters to them", "core_memory_append", {"name": "human", "content": "garden"}),
        assistant_call("reply", "send_message", {"message": "Your garden has tomatoes"}),
    )
    agent.run_turn("What grows in my garden?", events)
    _, envelope = last_user(store, agent)
    assert envelope["retrieved_memory"] == [f"({DAY}) assistant: Your garden has tomatoes"]


def test_search_never_finds_the_retrieved_text_as_the_users_words(make_agent, events, store, home):
    agent, _ = make_agent([reply("Lisbon.")], preset=recall_preset(home))
    [old] = remember(store, agent, user_message("I live in Lisbon"))
    agent.run_turn("Where do I live?", events)
    mid, envelope = last_user(store, agent)
    assert "Lisbon" in envelope["retrieved_memory"][0]
    assert [m.id for m in store.search_messages(agent.agent_id, "Lisbon", roles=["user"]).items] == [old]
    [row] = store.get_messages(agent.agent_id, [mid])
    assert row.text == "Where do I live?"
    typed = message_from_dict(row.payload)
    assert isinstance(typed, UserMessage) and typed.searchable_text == "Where do I live?"
    assert typed.retrieved_memory == (f"({DAY}) user: I live in Lisbon",)


def test_hits_are_bounded_by_count_and_tokens(make_agent, events, store, home):
    agent, _ = make_agent([reply("Boats.")], preset=recall_preset(home, "{hits: 2, max_tokens: 40}"))
    remember(store, agent, *(user_message(f"I sail boat number {n} " + "on the blue sea " * 3) for n in range(6)))
    remember(store, agent, user_message("I sail " + "very far " * 400))
    agent.run_turn("Do I sail boats?", events)
    _, envelope = last_user(store, agent)
    lines = envelope["retrieved_memory"]
    assert 1 <= len(lines) <= 2 and sum(estimate_tokens(line) for line in lines) <= 40


def test_bound_skips_what_does_not_fit_and_stops_at_the_count():
    lines = ["a" * 40, "b" * 400, "c" * 40, "d" * 40, "e" * 4]
    assert bound(iter(lines), AutoRecall(hits=2, max_tokens=25), estimate_tokens) == ("a" * 40, "c" * 40)
    assert bound(iter(lines), AutoRecall(hits=5, max_tokens=21), estimate_tokens) == ("a" * 40, "c" * 40, "e" * 4)


def test_a_pasted_document_is_cut_before_it_is_counted(make_agent, events, store, home):
    agent, _ = make_agent([reply("Far.")], preset=recall_preset(home, "{hits: 1, max_tokens: 400}"))
    remember(store, agent, user_message("I sail " + "very far " * 400))
    agent.run_turn("Do I sail?", events)
    _, envelope = last_user(store, agent)
    [line] = envelope["retrieved_memory"]
    assert line.endswith("...") and len(line) < LINE_CHARS + 40


def test_a_failed_search_costs_only_the_retrieved_memory(make_agent, events, store, home, monkeypatch):
    agent, _ = make_agent([reply("Hello.")], preset=recall_preset(home))

    def broken(*args, **kwargs):
        raise StoreError("database is locked")

    monkeypatch.setattr(store, "search_messages", broken)
    agent.run_turn("Where do I live?", events)
    assert "Auto recall could not search memory" in events.of("warning")[0].text
    _, envelope = last_user(store, agent)
    assert envelope["message"] == "Where do I live?" and "retrieved_memory" not in envelope


def test_wrappers_that_send_only_the_text_mark_the_retrieved_lines():
    content = UserMessage("Where do I live?", "now", (f"({DAY}) user: I live in Lisbon",)).to_dict()["content"]
    assert user_text(content) == f"{RETRIEVED_HEADING}\n- ({DAY}) user: I live in Lisbon\n\nWhere do I live?"
    assert user_text(UserMessage("Hi", "now").to_dict()["content"]) == "Hi"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("true", AutoRecall()), ("false", None), ("{}", AutoRecall()), ("{hits: 5}", AutoRecall(5, 200)),
        ("{max_tokens: 80}", AutoRecall(3, 80)),
    ],
)
def test_preset_values(home, setting, expected):
    assert load_preset(Library(home), recall_preset(home, setting)).auto_recall == expected


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("often", "auto_recall is 'often'; write true, false, or {hits: 3, max_tokens: 200}"),
        ("[3]", "auto_recall is [3]"),
        ("{hits: 0}", "auto_recall hits is 0; give a whole number from 1 to 20"),
        ("{hits: '3'}", "auto_recall hits is '3'"),
        ("{max_tokens: 99999}", "auto_recall max_tokens is 99999; give a whole number from 1 to 4000"),
        ("{max_tokens: true}", "auto_recall max_tokens is True"),
        ("{hitz: 3}", "auto_recall has unknown key 'hitz'; known keys: hits, max_tokens"),
    ],
)
def test_bad_preset_values_are_one_line_naming_the_file_and_key(home, setting, says):
    name = recall_preset(home, setting)
    with pytest.raises(ConfigError) as raised:
        load_preset(Library(home), name)
    message = str(raised.value)
    assert "\n" not in message and str(home / "presets" / f"{name}.yaml") in message and says in message


def test_the_flag_overrides_the_preset_for_this_run(home):
    library = Library(home)
    on = load_preset(library, recall_preset(home, "{hits: 5}"))
    off = load_preset(library, "memgpt_chat")
    assert choose_auto_recall(Settings(home=home), on) == AutoRecall(5, 200)
    assert choose_auto_recall(Settings(home=home, auto_recall=False), on) is None
    assert choose_auto_recall(Settings(home=home, auto_recall=True), off) == AutoRecall()
    assert choose_auto_recall(Settings(home=home), off) is None


def test_the_flag_turns_it_on_for_a_resumed_agent(make_agent, events, store, home):
    from memagent.app import open_agent

    agent, _ = make_agent([reply("Hi.")])
    remember(store, agent, user_message("I live in Lisbon"))
    backend = ScriptedBackend([reply("Lisbon.")])
    resumed, created = open_agent(Settings(home=home, agent="tester", no_verify=True, auto_recall=True), store, backend)
    assert not created and resumed.config.auto_recall == AutoRecall()
    resumed.run_turn("Where do I live?", events)
    _, envelope = last_user(store, resumed)
    assert envelope["retrieved_memory"] == [f"({DAY}) user: I live in Lisbon"]


def test_retrieve_on_both_stores(database):
    from memagent.memory.auto_recall import retrieve
    from memagent.memory.store import Store

    store = Store(database)
    try:
        with store.transaction() as tx:
            agent_id = tx.create_agent("recaller", {"preset": "memgpt_chat", "core_memory": {}}).id
            in_window = tx.add_message(agent_id, "user", "I live in Porto", user_message("I live in Porto"), NOON)
            tx.add_message(agent_id, "user", "I live in Lisbon", user_message("I live in Lisbon"), NOON)
            tx.add_passage(agent_id, "The user lives in Lisbon by the sea.", NOON)
        lines = retrieve(store, agent_id, "Where do I live?", exclude={in_window}, settings=AutoRecall(),
                         counter=estimate_tokens)
    finally:
        store.close()
    passage = f"({DAY}) archival memory: The user lives in Lisbon by the sea."
    assert lines == (f"({DAY}) user: I live in Lisbon", passage)
