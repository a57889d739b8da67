"""Typed messages write exactly the dicts memagent has always stored, and read them back (issue 17)."""

from __future__ import annotations

import pytest

from memagent.messages import (
    AssistantCall,
    FunctionResult,
    HeartbeatMessage,
    LoginMessage,
    RawMessage,
    SystemAlertMessage,
    SystemMessage,
    UserMessage,
    message_from_dict,
    searchable_text,
)

T = "2024-01-02 09:30:00 AM UTC+0000"

# The dicts as the code before typed messages wrote them, byte for byte (non-ASCII kept, not escaped).
STORED = [
    (UserMessage("Grüße, I'm Brad", T),
     {"role": "user", "content": '{"type": "user_message", "message": "Grüße, I\'m Brad", "time": "' + T + '"}'}),
    (HeartbeatMessage("timer", T),
     {"role": "user", "content": '{"type": "heartbeat", "reason": "timer", "time": "' + T + '"}'}),
    (SystemAlertMessage("memory ✓", T),
     {"role": "user", "content": '{"type": "system_alert", "message": "memory ✓", "time": "' + T + '"}'}),
    (LoginMessage(time=T),
     {"role": "user", "content": '{"type": "login", "last_login": "Never (first login)", "time": "' + T + '"}'}),
    (AssistantCall("I greet him.", "send_message", {"message": "Hi ✓", "request_heartbeat": False}),
     {"role": "assistant", "content": "I greet him.",
      "function_call": {"name": "send_message", "arguments": '{"message": "Hi ✓", "request_heartbeat": false}'}}),
    (FunctionResult("send_message", True, None, T),
     {"role": "function", "name": "send_message",
      "content": '{"status": "OK", "message": "None", "time": "' + T + '"}'}),
    (FunctionResult("core_memory_replace", False, "Not found", T),
     {"role": "function", "name": "core_memory_replace",
      "content": '{"status": "Failed", "message": "Not found", "time": "' + T + '"}'}),
    (SystemMessage("You are Sam."), {"role": "system", "content": "You are Sam."}),
]


@pytest.mark.parametrize(("message", "stored"), STORED)
def test_each_kind_writes_todays_dict_and_reads_it_back(message, stored):
    assert message.to_dict() == stored
    assert message_from_dict(stored) == message


def test_what_search_indexes_is_the_words():
    assert UserMessage("hello there", T).searchable_text == "hello there"
    assert HeartbeatMessage("timer", T).searchable_text == "timer"
    assert AssistantCall("thinking", "send_message", {"message": "Hi"}).searchable_text == "thinking Hi"
    assert AssistantCall("thinking", "archival_memory_insert", {"content": "x"}).searchable_text == "thinking"
    assert LoginMessage(time=T).searchable_text == ""
    result = FunctionResult("f", True, "done", T)
    assert result.searchable_text == result.to_dict()["content"]  # results were always indexed as their JSON
    for message, stored in STORED:
        assert searchable_text(stored) == message.searchable_text


def test_kinds():
    kinds = [message.kind for message, _ in STORED]
    assert kinds == ["user_message", "heartbeat", "system_alert", "login", "assistant", "function", "function",
                     "system"]


@pytest.mark.parametrize("stored", [
    {"role": "user", "content": "plain text, not an envelope"},
    {"role": "user", "content": '{"type": "user_message", "message": "Gr\\u00fc\\u00dfe", "time": "t"}'},  # escaped
    {"role": "user", "content": '{"type": "user_message", "time": "t", "message": "order differs"}'},
    {"role": "user", "content": '{"type": "user_message", "message": "extra", "time": "t", "mood": "happy"}'},
    {"role": "assistant", "content": None, "function_call": {"name": "send_message", "arguments": "{}"}},
    {"role": "assistant", "content": "x", "function_call": {"name": "f", "arguments": {"already": "a dict"}}},
    {"role": "function", "name": "f", "content": "not json"},
    {"role": "tool", "content": "from another program"},
])
def test_a_dict_of_no_exact_known_shape_is_kept_as_it_is(stored):
    message = message_from_dict(stored)
    assert isinstance(message, RawMessage)
    assert message.to_dict() == stored and message.to_dict() is not stored


def test_raw_messages_are_searched_and_labelled_as_before():
    plain = message_from_dict({"role": "user", "content": "plain text"})
    assert (plain.kind, plain.searchable_text) == ("user_message", "plain text")
    escaped = message_from_dict({"role": "user", "content": '{"type": "heartbeat", "reason": "r\\u00e9", "time": "t"}'})
    assert (escaped.kind, escaped.searchable_text) == ("heartbeat", "ré")
    tool = message_from_dict({"role": "tool", "content": "result"})
    assert (tool.kind, tool.searchable_text) == ("tool", "result")


def test_edits_make_a_new_call():
    call = AssistantCall("old", "send_message", {"message": "Hi", "request_heartbeat": False})
    assert call.with_said("Hello").to_dict()["function_call"]["arguments"] == (
        '{"message": "Hello", "request_heartbeat": false}'
    )
    assert call.with_thoughts("new").thoughts == "new" and call.thoughts == "old"
