"""Hostile model output and names: a runaway argument, unencodable text, names that would be paths."""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedBackend, call, reply

from memagent.app import cache_path, open_agent
from memagent.errors import ConfigError
from memagent.functions.registry import MAX_ARGUMENT_CHARS
from memagent.settings import Settings


def test_a_runaway_archival_insert_fails_readably_and_does_not_fill_the_context(make_agent, events, store):
    huge = "spam " * 30_000  # 150 KB
    agent, backend = make_agent([
        call("archival_memory_insert", content=huge, request_heartbeat=True),
        reply("Sorry, that was too long."),
        reply("Still fine."),
    ])
    agent.run_turn("store this", events)
    failed = events.of("function_return")[0]
    assert failed.data["status"] == "Failed" and f"{MAX_ARGUMENT_CHARS:,}" in failed.data["message"]
    assert store.count_passages(agent.agent_id) == 0
    agent.run_turn("next", events)  # the turn after is not bricked by the stored call
    assert len(backend.prompts[-1]) < MAX_ARGUMENT_CHARS * 3
    assert [e.text for e in events.of("assistant_message")] == ["Sorry, that was too long.", "Still fine."]
    stored = [m for _, m in agent.messages if m.get("function_call", {}).get("name") == "archival_memory_insert"]
    assert "more characters]" in json.loads(stored[0]["function_call"]["arguments"])["content"]


def test_a_lone_surrogate_in_the_model_output_is_shown_and_stored(make_agent, events, store):
    raw = '{"function": "send_message", "params": {"inner_thoughts": "hm \\ud800", "message": "bad \\ud800 char"}}'
    agent, _ = make_agent([raw])
    agent.run_turn("hi", events)
    shown = events.of("assistant_message")[0]
    assert "\ud800" not in shown.text and "bad" in shown.text
    for event in events:
        event.to_json().encode("utf-8")  # never raises
    assert store.search_messages(agent.agent_id, "bad char").total >= 1


def test_surrogates_in_raw_error_text_still_print_as_json(make_agent, events):
    agent, _ = make_agent(["no call here \ud800"] * 3)
    agent.run_turn("hi", events)
    assert events.of("error")
    for event in events:
        assert "\ud800" not in event.to_json()


@pytest.mark.parametrize("name", ["../../x", "/", "a\nb", "\x1b[31mred", ".hidden", "x" * 65, ""])
def test_agent_names_that_could_escape_the_home_are_refused(home, store, name):
    settings = Settings(home=home, agent=name, no_verify=True)
    with pytest.raises(ConfigError, match="Invalid agent name") as caught:
        open_agent(settings, store, ScriptedBackend())
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
    assert store.list_agents() == []


def test_the_kv_cache_of_an_agent_is_a_file_directly_in_the_home_cache(home):
    assert cache_path(home, "sam-1.v2") == home / "cache" / "sam-1.v2.kv"
    with pytest.raises(ConfigError):
        cache_path(home, "../escape")


def test_a_huge_user_message_is_kept_whole_in_recall_and_cut_in_context(make_agent, events, store):
    pasted = "The launch code is 4417. " + "filler words " * 20_000
    agent, backend = make_agent([reply("Got it."), reply("Still here.")])
    agent.run_turn(pasted, events)
    agent.run_turn("and now?", events)
    assert [e.text for e in events.of("assistant_message")] == ["Got it.", "Still here."]
    assert "characters" in events.of("warning")[0].text
    assert len(backend.prompts[-1]) < len(pasted) / 4
    hits = store.search_messages(agent.agent_id, "launch code 4417").items
    assert pasted in [hit.text for hit in hits]  # nothing lost: the whole message is searchable


def test_search_hits_are_cut_so_a_page_fits_the_context(make_agent, events):
    agent, backend = make_agent([
        call("archival_memory_search", query="zebra", request_heartbeat=True),
        reply("Found it."),
    ])
    agent.add_passages(["zebra " * 3000])
    agent.run_turn("what about zebras?", events)
    result = events.of("function_return")[0].data["message"]
    assert "more characters]" in result and len(result) < 2000


def test_a_runaway_function_name_is_quoted_short_in_the_correction_and_the_error(make_agent, events):
    name = "x" * 200_000
    bad = '{"function": "' + name[:150_000] + '", "params": {"inner_thoughts": "hm"}}'
    agent, backend = make_agent([bad, bad, bad])
    agent.run_turn("hi", events)
    assert len(backend.prompts[1]) < len(backend.prompts[0]) + 2000  # the correction did not carry the name
    assert len(events.of("error")[0].text) < 1000


def test_a_store_failure_storing_a_heartbeat_ends_the_turn_with_one_error(make_agent, events, monkeypatch):
    from memagent.errors import StoreError

    agent, _ = make_agent([call("archival_memory_insert", content="x", request_heartbeat=True), reply("never")])
    real_append = agent._append_input
    calls = []

    def locked_on_the_heartbeat(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise StoreError("Can't write to database x: it is locked by another program")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(agent, "_append_input", locked_on_the_heartbeat)
    agent.run_turn("hi", events)  # no exception reaches the REPL
    errors = [e.text for e in events.of("error")]
    assert len(errors) == 1 and errors[0].startswith("Can't write to database x: it is locked")
    assert [e.data["status"] for e in events.of("function_return")] == ["OK"]
