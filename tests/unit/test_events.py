"""The typed events write the same JSON lines as the one dict-based Event class before them (issue 17), and the
printers tell them apart by class."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any, get_args

import pytest
from rich.console import Console

from memagent.events import (
    AssistantMessage,
    AssistantMessageDelta,
    ContextOverflow,
    Error,
    Event,
    EventType,
    FunctionCall,
    FunctionReturn,
    Heartbeat,
    Info,
    InnerThoughts,
    ModelError,
    Retry,
    SessionInfo,
    SystemAlert,
    UserMessage,
    Warning,
)
from memagent.repl.render import EventPrinter, json_line
from memagent.text import clean_any, clean_text


def old_json(type_: str, text: str = "", data: dict[str, Any] | None = None) -> str:
    """What `Event(type, text, data).to_json()` wrote before the events were typed."""
    return clean_text(json.dumps({"type": type_, "text": text, **(data or {})}, ensure_ascii=False))


# Each typed event beside the (type, text, data) the agent built for it before; values as the agent makes them.
CASES: list[tuple[Event, tuple[str, str, dict[str, Any]]]] = [
    (UserMessage("héllo \ud800 there"), ("user_message", "héllo \ud800 there", {})),
    (
        InnerThoughts("thinking", ("ignored_trailing_text",)),
        ("inner_thoughts", "thinking", {"repairs": ["ignored_trailing_text"]}),
    ),
    (InnerThoughts(""), ("inner_thoughts", "", {"repairs": []})),
    (
        FunctionCall("core_memory_append", {"name": "human", "content": "Likes tea 🍵"}),
        ("function_call", "core_memory_append", {"arguments": {"name": "human", "content": "Likes tea 🍵"}}),
    ),
    (
        FunctionReturn("send_message", "OK", None),
        ("function_return", "send_message", {"status": "OK", "message": None}),
    ),
    (
        FunctionReturn("archival_memory_search", "Failed", "nothing found"),
        ("function_return", "archival_memory_search", {"status": "Failed", "message": "nothing found"}),
    ),
    (AssistantMessage("Hi Brad!"), ("assistant_message", "Hi Brad!", {})),
    (AssistantMessageDelta("Hi"), ("assistant_message_delta", "Hi", {})),
    (Heartbeat("[hidden] Automated timer"), ("heartbeat", "[hidden] Automated timer", {})),
    (SystemAlert("memory pressure"), ("system_alert", "memory pressure", {})),
    (
        SystemAlert("Summarized 4 older messages", "They talked."),
        ("system_alert", "Summarized 4 older messages", {"summary": "They talked."}),
    ),
    (
        Retry("No JSON found", 1, "I think I will say hi"),
        ("retry", "No JSON found", {"attempt": 1, "raw": "I think I will say hi"}),
    ),
    (Warning("Stopped after 8 steps"), ("warning", "Stopped after 8 steps", {})),
    (
        Warning("The reply was cut", raw='{"function": "x"'),
        ("warning", "The reply was cut", {"raw": '{"function": "x"'}),
    ),
    (Error("Empty message"), ("error", "Empty message", {})),
    (ModelError("bad output", raw=None), ("error", "bad output", {"raw": None})),
    (ModelError("bad output", raw="junk\x1b[2J"), ("error", "bad output", {"raw": "junk\x1b[2J"})),
    (ContextOverflow("too long", prompt_tokens=4100), ("error", "too long", {"prompt_tokens": 4100})),
    (ContextOverflow("too long"), ("error", "too long", {"prompt_tokens": None})),
    (Info("Saved."), ("info", "Saved.", {})),
    (SessionInfo("Created agent sam", "sam", True), ("info", "Created agent sam", {"agent": "sam", "created": True})),
]


@pytest.mark.parametrize(("event", "old"), CASES, ids=[f"{i}-{old[0]}" for i, (_, old) in enumerate(CASES)])
def test_each_event_writes_the_old_json_line(event: Event, old: tuple[str, str, dict[str, Any]]) -> None:
    type_, text, data = old
    assert (event.type, event.text, event.data) == (type_, text, data)
    assert event.to_json() == old_json(type_, text, data)
    assert json_line(event) == old_json(type_, clean_text(text), clean_any(data))


def test_every_event_type_has_a_class_and_a_case():
    classes = get_args(Event)
    assert sorted(cls.type for cls in classes) == sorted(get_args(EventType))
    assert {type(event) for event, _ in CASES} >= set(classes)


def test_events_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AssistantMessage("hi").text = "changed"  # type: ignore[misc]


def test_the_error_kinds_are_all_errors():
    assert all(isinstance(e, Error) for e in (Error("a"), ModelError("b"), ContextOverflow("c")))
    assert isinstance(SessionInfo("x", "sam", False), Info)


def printed(event: Event, **options: bool) -> str:
    out = io.StringIO()
    EventPrinter(Console(file=out, width=200, no_color=True, highlight=False), **options)(event)
    return out.getvalue()


def test_the_printer_tells_events_apart_by_class():
    assert printed(FunctionCall("core_memory_append", {"content": "tea"})) == '⚡ core_memory_append(content="tea")\n'
    assert printed(FunctionCall("send_message", {"message": "hi"})) == ""
    assert printed(FunctionReturn("core_memory_append", "Failed", "no such section")) == (
        "  ↳ Failed no such section\n"
    )
    assert printed(FunctionReturn("core_memory_append", "OK", None), show_returns=False) == ""
    assert printed(InnerThoughts("")) == ""
    assert printed(InnerThoughts("hmm")) == "💭 hmm\n"
    assert printed(UserMessage("hi")) == ""
    assert printed(UserMessage("hi"), echo_user=True) == "🧑 hi\n"
    assert printed(AssistantMessageDelta("Hel")) == ""
    assert printed(ModelError("bad", raw="junk")) == "✗ bad\n"
