"""A step says what happens next as a typed value (issue 17): run again on a heartbeat or alert, wait for the
user, or stop and why. The loop matches on it; nothing is decoded from the stored message."""

from __future__ import annotations

import json

from fakes import call, reply

from memagent.agent.outcomes import AwaitUser, NextInput, RunAgain, StepResult, Stopped, step_error
from memagent.errors import ContextOverflowError, LLMOutputError, StoreError
from memagent.events import ContextOverflow, Error, Heartbeat, ModelError, SystemAlert
from memagent.messages import HEARTBEAT_FAILED, HEARTBEAT_REQUESTED, MEMORY_PRESSURE, HeartbeatMessage


def test_a_reply_ends_the_turn_waiting_for_the_user(make_agent, events):
    agent, _ = make_agent([reply("Hi!")])
    assert agent.run_turn("hello", events) == AwaitUser()


def test_a_requested_heartbeat_is_a_typed_run_again(make_agent, events):
    agent, _ = make_agent([call("archival_memory_insert", content="Brad sails", request_heartbeat=True)])
    result = agent.step(events)
    assert isinstance(result, StepResult) and isinstance(result.next, RunAgain)
    next_input = result.next.input
    assert (next_input.kind, next_input.reason) == ("heartbeat", HEARTBEAT_REQUESTED)
    assert next_input.message == HeartbeatMessage(HEARTBEAT_REQUESTED, next_input.message.time)
    assert json.loads(next_input.message.to_dict()["content"])["reason"] == HEARTBEAT_REQUESTED
    assert next_input.event() == Heartbeat(HEARTBEAT_REQUESTED)
    assert events.of("heartbeat") == []  # the loop stores it and shows it, not the step


def test_a_failed_call_runs_again_with_the_failure_heartbeat(make_agent, events):
    agent, _ = make_agent([
        call("core_memory_replace", name="human", old_content="not there", new_content="x", request_heartbeat=False),
    ])
    result = agent.step(events)
    assert result.next == RunAgain(NextInput("heartbeat", HEARTBEAT_FAILED, result.next.input.message))


def test_a_reply_in_a_step_waits_for_the_user(make_agent, events):
    agent, _ = make_agent([reply("Hi!")])
    assert agent.step(events) == StepResult(AwaitUser())


def test_the_step_limit_is_a_stop_with_its_reason(make_agent, events):
    loop = call("archival_memory_insert", content="again", request_heartbeat=True)
    agent, _ = make_agent([loop] * 8)
    end = agent.run_turn("hello", events)
    assert end == Stopped("step_limit", "8 steps in one turn")
    assert "Stopped after 8 steps" in events.of("warning")[0].text


def test_a_failed_step_is_a_stop_for_an_error(make_agent, events):
    agent, _ = make_agent(["nope", "still nope", "never"])
    end = agent.run_turn("remember this line", events)
    assert isinstance(end, Stopped) and end.reason == "error" and "could not be parsed" in end.detail
    assert isinstance(events.of("error")[0], ModelError)


def test_an_empty_message_stops_before_any_step(make_agent, events):
    agent, backend = make_agent([])
    assert agent.run_turn("   ", events) == Stopped("error", "empty message")
    assert backend.prompts == []


def test_next_inputs_carry_the_envelope_they_store():
    alert = NextInput.alert(MEMORY_PRESSURE)
    envelope = json.loads(alert.message.to_dict()["content"])
    assert (alert.kind, envelope["type"], envelope["message"]) == ("system_alert", "system_alert", MEMORY_PRESSURE)
    assert alert.event() == SystemAlert(MEMORY_PRESSURE) and alert.event().data == {}


def test_step_errors_become_the_events_they_were():
    assert step_error(LLMOutputError("bad", raw="junk")) == ModelError("bad", raw="junk")
    stored = step_error(StoreError("locked"))
    assert type(stored) is Error and stored.text == "locked (your message is saved; the interrupted step was not)"
    overflow = step_error(ContextOverflowError(9000, 8192))
    assert isinstance(overflow, ContextOverflow) and overflow.prompt_tokens == 9000
    assert overflow.text.endswith(
        "(9000 > 8192 tokens), even after summarizing. Use a larger --context-length, or /pop long messages."
    )
