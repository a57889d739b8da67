"""The base function set: schemas from signatures, results in MemGPT's convention, memory behaviour."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from fakes import call, reply

from memagent.functions.memory import builtin_functions
from memagent.functions.registry import AgentFunction, FunctionFailed, schema_from_function


def results(events):
    return [(e.text, e.data["status"], e.data["message"]) for e in events.of("function_return")]


def run(make_agent, events, *outputs, text="go"):
    agent, backend = make_agent([*outputs, reply("done")])
    agent.run_turn(text, events)
    return agent


def test_schemas_are_derived_from_signatures_and_docstrings():
    registry = builtin_functions()
    assert registry.get("send_message").schema == {
        "name": "send_message",
        "description": "Sends a message to the human user.",
        "parameters": {"type": "object", "properties": {"message": {
            "type": "string", "description": "Message contents. All unicode (including emojis) are supported."}},
            "required": ["message"]},
    }
    search = registry.get("conversation_search").schema["parameters"]
    assert search["properties"]["page"]["type"] == "integer"
    assert search["required"] == ["query", "request_heartbeat"]
    with_heartbeat = {n for n in registry.names() if registry.get(n).takes_heartbeat}
    assert with_heartbeat == set(registry.names()) - {"send_message", "pause_heartbeats"}


def test_a_date_parameter_is_a_yyyy_mm_dd_string_to_the_model_and_a_date_to_the_function():
    def on_day(ctx: object, day: date) -> str:
        """Look at one day.

        Args:
            day: The day.
        """
        return f"{type(day).__name__} {day:%d %B %Y}"

    function = AgentFunction("on_day", on_day, schema_from_function(on_day, heartbeat=False))
    assert function.schema["parameters"]["properties"]["day"] == {
        "type": "string", "format": "date", "description": "The day."}
    assert function(None, day=" 2026-12-02") == "date 02 December 2026"
    with pytest.raises(FunctionFailed, match="^day 'monday' is not a date: use YYYY-MM-DD"):
        function(None, day="monday")


def test_a_function_without_docstring_or_type_hints_is_refused():
    def nodoc(ctx, x: str):
        pass

    def untyped(ctx, x):
        """Does things.

        Args:
            x: a thing
        """

    with pytest.raises(TypeError, match="docstring"):
        schema_from_function(nodoc, heartbeat=True)
    with pytest.raises(TypeError, match="type hint"):
        schema_from_function(untyped, heartbeat=True)


def test_core_memory_edits_fail_with_messages_the_model_can_act_on(make_agent, events):
    run(make_agent, events,
        call("core_memory_append", name="friends", content="x", request_heartbeat=False),
        call("core_memory_append", name="human", content="y" * 2500, request_heartbeat=False),
        call("core_memory_replace", name="human", old_content="", new_content="x", request_heartbeat=False),
        call("core_memory_replace", name="human", old_content="Chad", new_content="Brad", request_heartbeat=False))
    (_, s1, m1), (_, s2, m2), (_, s3, m3), (_, s4, _) = results(events)
    assert (s1, s2, s3, s4) == ("Failed", "Failed", "Failed", "OK")
    assert "No core memory section named 'friends'. Sections: persona, human." in m1
    assert "over its limit of 2000" in m2 and "archival_memory_insert" in m2
    assert "must not be empty" in m3


def test_conversation_search_pages_with_correct_totals(make_agent, events, store):
    agent, _ = make_agent()
    with store.transaction() as tx:
        for i in range(37):
            tx.add_message(agent.agent_id, "user", f"the kraken number {i}", {"role": "user", "content": "x"})
    agent.backend.outputs = [call("conversation_search", query="kraken", page=0, request_heartbeat=True),
                             call("conversation_search", query="kraken", page=7, request_heartbeat=True),
                             call("conversation_search", query="kraken", page=9, request_heartbeat=True), reply("ok")]
    agent.run_turn("search", events)
    pages = [m for name, _, m in results(events) if name == "conversation_search"]
    # 38: the user's "search" is found too, by its context (the turn before it: "the kraken number 36").
    assert pages[0].startswith("Showing 5 of 38 results (page 1/8):")
    assert pages[1].startswith("Showing 3 of 38 results (page 8/8):")
    assert pages[2] == "No results on page 9 (there are 8 pages, numbered from 0)."
    assert json.loads(pages[0].split(": ", 1)[1])[0].startswith("timestamp: ")


def test_search_text_is_searched_literally(make_agent, events, store):
    agent, _ = make_agent()
    with store.transaction() as tx:
        tx.add_passage(agent.agent_id, 'He said "NEAR(the AND shore)" *loudly* (really 🦑')
    queries = ['"NEAR(the', "AND", "*loudly*", "(really", "🦑", "shore)", "NOT OR -x ^y z:w"]
    agent.backend.outputs = [call("archival_memory_search", query=q, request_heartbeat=True) for q in queries]
    agent.backend.outputs.append(reply("ok"))
    agent.run_turn("search", events)
    found = [(status, message) for _, status, message in results(events)[:-1]]
    assert all(status == "OK" for status, _ in found)
    assert all("Showing 1 of 1 results" in message for _, message in found[:-1]), found
    assert found[-1][1] == "No results found."


def test_archival_hits_carry_their_real_insertion_time(make_agent, events, store):
    agent, _ = make_agent()
    when = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    with store.transaction() as tx:
        tx.add_passage(agent.agent_id, "the treasure is buried under the old oak", created_at=when)
    run_agent = agent
    run_agent.backend.outputs = [call("archival_memory_search", query="treasure oak", request_heartbeat=True),
                                 reply("ok")]
    run_agent.run_turn("where?", events)
    message = results(events)[0][2]
    assert when.astimezone().strftime("%Y-%m-%d %I:%M:%S %p") in message


def test_archival_insert_then_search_finds_it(make_agent, events):
    run(make_agent, events,
        call("archival_memory_insert", content="Brad's boat is called Petrel", request_heartbeat=True),
        call("archival_memory_search", query="boat name", request_heartbeat=True))
    assert results(events)[1][2].startswith("Showing 1 of 1 results (page 1/1):")
    assert "Petrel" in results(events)[1][2]


def test_conversation_search_date_is_inclusive_and_rejects_bad_dates(make_agent, events, store):
    agent, _ = make_agent()
    day = datetime.now().astimezone().replace(hour=12)
    with store.transaction() as tx:
        for offset in (-2, -1, 0):
            tx.add_message(agent.agent_id, "user", f"day {offset}", {"role": "user", "content": "x"},
                           created_at=day + timedelta(days=offset))
    start = (day - timedelta(days=2)).strftime("%Y-%m-%d")
    end = (day - timedelta(days=1)).strftime("%Y-%m-%d")
    agent.backend.outputs = [
        call("conversation_search_date", start_date=start, end_date=end, request_heartbeat=True),
        call("conversation_search_date", start_date="yesterday", end_date=end, request_heartbeat=True),
        call("conversation_search_date", start_date=end, end_date=start, request_heartbeat=True), reply("ok")]
    agent.run_turn("when?", events)
    (_, s1, m1), (_, s2, m2), (_, s3, m3), _ = results(events)
    assert s1 == "OK" and m1.startswith("Showing 2 of 2 results") and "day -2" in m1 and "day -1" in m1
    assert s2 == "Failed" and "use YYYY-MM-DD" in m2
    assert s3 == "Failed" and "before start_date" in m3


def test_long_non_search_results_are_truncated_with_a_note(make_agent, events):
    def shout(ctx, text: str) -> str:
        """Repeat text many times.

        Args:
            text: what to repeat
        """
        return text * 5000

    agent, _ = make_agent([call("shout", text="ab", request_heartbeat=False), reply("ok")])
    agent.functions["shout"] = AgentFunction("shout", shout, schema_from_function(shout, heartbeat=True))
    agent.run_turn("go", events)
    message = results(events)[0][2]
    assert len(message) < 3100 and message.endswith("[NOTE: result truncated at 3000 characters]")


def test_pause_heartbeats_is_capped(make_agent, events):
    agent = run(make_agent, events, call("pause_heartbeats", minutes=100000))
    assert results(events)[0][2] == "Pausing timed heartbeats for 360 min"
    assert agent.state.heartbeats_paused_until > datetime.now().timestamp() + 359 * 60


def test_a_search_with_more_matches_than_it_counts_says_more_than(make_agent, events, store):
    from memagent.memory.search import COUNT_PAGES

    agent, _ = make_agent()
    with store.transaction() as tx:
        tx.add_passages(agent.agent_id, [f"the kraken number {i}" for i in range(COUNT_PAGES * 5 + 3)])
    agent.backend.outputs = [call("archival_memory_search", query="kraken", request_heartbeat=True), reply("ok")]
    agent.run_turn("search", events)
    (page,) = [m for name, _, m in results(events) if name == "archival_memory_search"]
    assert page.startswith(f"Showing 5 of more than {COUNT_PAGES * 5} results (page 1 of more than {COUNT_PAGES}):")
