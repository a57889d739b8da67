"""The agent loop on a scripted backend: replies, heartbeats, retries, verification, persistence."""

from __future__ import annotations

import json
import os

import pytest
from fakes import ScriptedBackend, call, reply

from memagent.llm.backends.base import Completion
from memagent.llm.wrappers.registry import available_wrappers


def stored_roles(store, agent):
    return [m.role for m in store.get_messages(agent.agent_id, agent.state.in_context)]


def test_a_reply_reaches_the_user_and_every_message_is_stored(make_agent, events, store):
    agent, backend = make_agent([reply("Hello Brad!")])
    agent.run_turn("My name is Brad", events)
    assert [e.text for e in events.of("assistant_message")] == ["Hello Brad!"]
    assert stored_roles(store, agent)[-3:] == ["user", "assistant", "function"]
    hits = store.search_messages(agent.agent_id, "Brad")
    assert {m.role for m in hits.items} == {"user", "assistant"}
    assert backend.constraints[0] is not None and "send-message" in backend.constraints[0].gbnf


def test_heartbeat_chains_a_memory_edit_into_a_reply(make_agent, events):
    agent, backend = make_agent([
        call("core_memory_replace", name="human", old_content="First name: Chad", new_content="First name: Brad",
             request_heartbeat=True),
        reply("Nice to meet you, Brad."),
    ])
    agent.run_turn("My name is Brad, not Chad", events)
    assert agent.core_memory.sections["human"].content == "First name: Brad"
    assert [e.type for e in events if e.type in ("function_call", "heartbeat")] == [
        "function_call", "heartbeat", "function_call"]
    assert "First name: Brad" in backend.prompts[1] and "First name: Brad" not in backend.prompts[0]


def test_a_forgotten_heartbeat_after_a_user_message_is_corrected(make_agent, events):
    agent, _ = make_agent([
        call("archival_memory_insert", content="Brad likes sailing", request_heartbeat=False),
        reply("Noted!"),
    ])
    agent.run_turn("I like sailing", events)
    assert [e.text for e in events.of("assistant_message")] == ["Noted!"]


def test_unparseable_output_is_retried_with_a_correction(make_agent, events, store):
    agent, backend = make_agent(["I think I will say hi", reply("Hi!")])
    agent.run_turn("hello", events)
    assert len(events.of("retry")) == 1 and events.of("retry")[0].data["raw"] == "I think I will say hi"
    assert "could not be used" in backend.prompts[1]
    assert [e.text for e in events.of("assistant_message")] == ["Hi!"]


def test_output_that_never_parses_ends_the_turn_cleanly_and_keeps_the_message(make_agent, events, store):
    agent, _ = make_agent(["nope", "still nope", "never"])
    agent.run_turn("remember this line", events)
    assert len(events.of("error")) == 1 and "could not be parsed after 3 tries" in events.of("error")[0].text
    assert store.search_messages(agent.agent_id, "remember").total == 1
    reopened, _ = make_agent([reply("back")])
    assert reopened.messages[-1][1]["role"] == "user"


def test_a_generation_cut_at_the_token_limit_is_retried_with_more_room(make_agent, events):
    cut = Completion(text='{"function": "send_message", "params": {"inner_thoughts": "lo', finish_reason="length")
    agent, backend = make_agent([cut, reply("complete")])
    agent.run_turn("hi", events)
    assert backend.max_tokens == [400, 800]
    assert [e.text for e in events.of("assistant_message")] == ["complete"]


def test_a_streamed_reply_cut_at_the_token_limit_is_not_joined_to_the_next_try(make_agent, events):
    text = '{"function": "send_message", "params": {"inner_thoughts": "hm", "message": "Hello the'
    cut = Completion(text=text, finish_reason="length")
    agent, backend = make_agent([cut, reply("Hello there!")])
    agent.stream = True
    agent.run_turn("hi", events)
    kinds = [e.type for e in events if e.type in ("assistant_message_delta", "retry", "inner_thoughts")]
    assert kinds.index("retry") < len(kinds) - 1 and backend.max_tokens == [400, 800]
    after_retry = events[max(i for i, e in enumerate(events) if e.type == "retry") + 1:]
    streamed = "".join(e.text for e in after_retry if e.type == "assistant_message_delta")
    assert streamed == "Hello there!" == events.of("assistant_message")[0].text
    assert "cut at 400 tokens" in events.of("retry")[0].text


def test_a_whole_call_followed_by_run_on_text_is_used_without_asking_again(make_agent, events):
    whole = json.dumps({"function": "send_message", "params": {"inner_thoughts": "hi", "message": "Hello!"}})
    ran_on = Completion(text=whole + "\nUSER: hi again\nASSISTANT: {\"function\": \"send_mess", finish_reason="length")
    agent, backend = make_agent([ran_on])
    agent.run_turn("hi", events)
    assert backend.max_tokens == [400]
    assert [e.text for e in events.of("assistant_message")] == ["Hello!"]
    assert "ignored_trailing_text" in events.of("inner_thoughts")[0].data["repairs"]
    assert not events.of("warning") and not events.of("retry")


def test_first_message_verification_retries_until_a_clean_send_message(make_agent, events):
    agent, backend = make_agent([call("archival_memory_insert", content="x", request_heartbeat=False),
                                 reply("Hello!")], no_verify=False)
    agent.run_turn("hi", events)
    assert "First reply check" in events.of("retry")[0].text
    assert [e.text for e in events.of("function_call")] == ["send_message"]


def test_no_verify_accepts_the_first_reply_as_it_is(make_agent, events):
    agent, _ = make_agent([call("archival_memory_insert", content="x", request_heartbeat=False), reply("ok")],
                          no_verify=True)
    agent.run_turn("hi", events)
    assert not events.of("retry")
    assert [e.text for e in events.of("function_call")] == ["archival_memory_insert", "send_message"]


def test_the_prompt_prefix_is_stable_between_turns_without_memory_edits(make_agent, events):
    agent, backend = make_agent([reply("one"), reply("two")])
    agent.run_turn("first", events)
    agent.run_turn("second", events)
    first, second = backend.prompts
    generation_prompt = "<|im_start|>assistant\n"
    assert second.startswith(first[: -len(generation_prompt)])


def test_two_new_agents_send_the_same_prompt_start_and_say_where_it_ends(make_agent, events):
    """The shared prefix (instructions and function schemas, before the memory block) is marked on every request,
    and it is byte-identical for two new agents, so the embedded backend can evaluate it once for both."""
    starts = []
    for name in ("first-agent", "second-agent"):
        agent, backend = make_agent([reply("hello")], agent=name)
        agent.run_turn(f"I am the user of {name}.", events)
        (request,) = backend.requests
        assert 0 < request.shared_prefix < len(request.prompt)
        start = request.prompt[: request.shared_prefix]
        assert all(schema["name"] in start for schema in agent.schemas)  # the functions are in the shared part
        assert start.index("### Memory") > start.index("send_message")  # and core memory after them, shared too
        assert start.endswith("(Memory last modified: ")  # up to the first byte a new agent has of its own
        assert "I am the user" not in start
        starts.append(start)
    assert starts[0] == starts[1]


def test_a_failed_function_reports_failed_and_gets_a_heartbeat(make_agent, events):
    agent, _ = make_agent([
        call("core_memory_replace", name="human", old_content="not there", new_content="x", request_heartbeat=False),
        reply("Sorry."),
    ])
    agent.run_turn("fix my name", events)
    returns = events.of("function_return")
    assert returns[0].data["status"] == "Failed" and "not found" in returns[0].data["message"]
    assert "Function call failed" in events.of("heartbeat")[0].text


def test_chained_steps_are_bounded(make_agent, events):
    outputs = [call("conversation_search", query="x", request_heartbeat=True)] * 8
    agent, _ = make_agent(outputs)
    agent.run_turn("loop forever", events)
    assert len(events.of("function_call")) == 8
    assert "Stopped after 8 steps" in events.of("warning")[0].text


def test_an_agent_resumes_with_its_memory_and_history(make_agent, events, store):
    agent, _ = make_agent([call("core_memory_append", name="human", content="Likes tea", request_heartbeat=True),
                           reply("Got it.")])
    agent.run_turn("I like tea", events)
    again, backend = make_agent([reply("You like tea.")])
    assert "Likes tea" in again.core_memory.sections["human"].content
    assert again.system_message == agent.system_message
    assert [m for _, m in again.messages] == [m for _, m in agent.messages]
    again.run_turn("what do I like?", events)
    assert "I like tea" in backend.prompts[0]


def test_without_a_constraint_the_prompt_forces_the_call_prefix(make_agent, events):
    agent, backend = make_agent(['send_message", "params": {"inner_thoughts": "hi", "message": "Hello"}}'],
                                constrain=False)
    agent.run_turn("hi", events)
    assert backend.constraints == [None]
    assert backend.prompts[0].endswith('<|im_start|>assistant\n{"function": "')
    assert [e.text for e in events.of("assistant_message")] == ["Hello"]


def test_memory_pressure_warns_once_as_a_hidden_alert(make_agent, events):
    big = Completion(text=reply("a"), prompt_tokens=7000)
    agent, backend = make_agent([big, reply("saved"), Completion(text=reply("b"), prompt_tokens=7000)])
    agent.run_turn("hi", events)
    agent.run_turn("again", events)
    alerts = events.of("system_alert")
    assert len(alerts) == 1 and "hidden from the user" in alerts[0].text
    assert "maximum length" in backend.prompts[1]


def test_memory_pressure_is_noticed_when_the_backend_reports_no_usage(make_agent, events):
    """Streaming servers may send no token counts; the agent's own count of the prompt stands in."""
    backend = ScriptedBackend([reply("a"), reply("saved")], reports_usage=False)
    agent, _ = make_agent(backend=backend)
    # Room for an 800-token message and the replies, but then the context is over 75% full.
    backend._context_length = backend.count_tokens(agent.prompt()) + 1600
    agent.run_turn("word " * 640, events)
    assert agent.last_completion is not None
    assert agent.last_completion.prompt_tokens > 0.75 * backend.context_length
    assert len(events.of("system_alert")) == 1 and "maximum length" in backend.prompts[1]


def test_thirty_turns_in_a_small_window_summarize_and_lose_nothing(make_agent, events, store):
    script = (reply(f"reply number {i} " + "words " * 40) for i in range(1000))
    agent, backend = make_agent(context_length=3600)

    def respond(prompt: str) -> str:
        return "We talked about numbers." if prompt.endswith("SUMMARY: ") else next(script)

    backend.outputs = [respond] * 200
    for i in range(30):
        agent.run_turn(f"message marker{i} " + "filler " * 30, events)
    assert not events.of("error")
    assert len(events.of("assistant_message")) >= 30
    summaries = [m for _, m in agent.messages if "summary of the previous" in m.get("content", "")]
    assert len(summaries) == 1 and json.loads(summaries[0]["content"])["type"] == "system_alert"
    assert sum("summary of the previous" in p for p in backend.prompts) > 1  # it summarized more than once
    for i in range(30):  # every user message is still in recall memory, in context or not
        hits = store.search_messages(agent.agent_id, f"marker{i}", roles=("user",), page_size=50).items
        assert sum(hit.text.startswith(f"message marker{i} ") for hit in hits) == 1
    assert all(backend.count_tokens(p) <= 3600 for p in backend.prompts)


def test_a_reply_still_cut_at_the_ceiling_is_completed_when_it_can_be(make_agent, events):
    cut = '{"function": "send_message", "params": {"inner_thoughts": "hi", "message": "I love sailing. I love'
    outputs = [Completion(text=cut, finish_reason="length") for _ in range(3)]
    agent, backend = make_agent(outputs)
    agent.run_turn("hi", events)
    assert backend.max_tokens == [400, 800, 1200]
    assert [e.text for e in events.of("assistant_message")] == ["I love sailing. I love"]
    assert "cut at the token limit" in events.of("warning")[0].text


def test_a_cut_reply_that_cannot_be_completed_is_reported_as_cut_not_as_bad_json(make_agent, events):
    cut = '{"function": "core_memory_replace", "params": {"inner_thoughts": "hmm", "name": "hu'
    agent, _ = make_agent([Completion(text=cut, finish_reason="length")] * 9)
    agent.run_turn("hi", events)
    assert all("cut at the token limit (1200 tokens)" in e.text for e in events.of("retry"))
    assert "cut at the token limit" in events.of("error")[0].text


def test_an_interrupted_step_leaves_memory_and_database_in_agreement(make_agent, events, store):
    from memagent.functions.registry import AgentFunction, schema_from_function

    def edit_then_interrupt(ctx, content: str) -> None:
        """Edit memory, then the user presses Ctrl-C.

        Args:
            content: text
        """
        ctx.core_memory.append("human", content)
        ctx.core_memory_changed()
        raise KeyboardInterrupt

    agent, _ = make_agent([call("edit_then_interrupt", content="Half-done edit", request_heartbeat=False)])
    agent.functions["edit_then_interrupt"] = AgentFunction(
        "edit_then_interrupt", edit_then_interrupt, schema_from_function(edit_then_interrupt, heartbeat=True))
    before_messages, before_system = list(agent.messages), agent.system_message
    with pytest.raises(KeyboardInterrupt):
        agent.run_turn("hello", events)
    assert "Half-done edit" not in agent.core_memory.sections["human"].content
    assert agent.system_message == before_system
    assert [m for _, m in agent.messages][:-1] == [m for _, m in before_messages]  # only the user message added
    reopened, _ = make_agent()
    assert [mid for mid, _ in reopened.messages] == [mid for mid, _ in agent.messages]
    assert "Half-done edit" not in reopened.core_memory.sections["human"].content


@pytest.mark.parametrize("model", sorted(available_wrappers()))
def test_the_prefill_readies_the_next_turns_opening_up_to_the_users_words(make_agent, events, home, store, model):
    from memagent.app import open_agent
    from memagent.settings import Settings

    backend = ScriptedBackend([reply("Hello Brad!"), reply("You are Brad.")])
    agent, _ = open_agent(Settings(home=home, agent=f"prefill-{model}", no_verify=True, model=model), store, backend)
    prefilled: list[str] = []
    backend.prefill = prefilled.append  # type: ignore[method-assign]
    agent.run_turn("My name is Brad", events)
    agent.prefill()()  # what the REPL runs in the background while the user types
    so_far = agent.prompt()  # the conversation as it stands, ending with the reply's opening
    agent.run_turn("What is my name?", events)
    opening, sent = prefilled[0], backend.prompts[-1]
    assert sent.startswith(opening)  # all of it is reused: nothing evaluated in the background is thrown away
    assert len(opening) > len(os.path.commonprefix([so_far, sent]))  # the user turn's opening is readied too
    assert sent[len(opening):].startswith("What is my name?")  # only the user's words and what follows are new
