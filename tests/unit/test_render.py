"""The event printer is total: whatever an event holds, printing it can't raise and can't reach the terminal
as raw control codes. The console writes to a strict UTF-8 stream, as a real stdout does."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from memagent.events import (
    AssistantMessage,
    AssistantMessageDelta,
    Event,
    FunctionCall,
    FunctionReturn,
    Info,
    InnerThoughts,
    ModelError,
    UserMessage,
    Warning,
)
from memagent.repl.render import EventPrinter, LivePrinter

DIRTY = "a\ud800b\x00c\x1b[2J\x1b]0;pwned\x07d\x1b[31me"
EVENTS: list[Event] = [
    AssistantMessage(DIRTY),
    InnerThoughts(DIRTY),
    UserMessage(DIRTY),
    ModelError(DIRTY, raw=DIRTY),
    FunctionCall("core_memory_append", {"content\x1b": DIRTY, "n": 1}),
    FunctionCall("weird", {"when": object()}),
    FunctionReturn("core_memory_append", "OK", DIRTY),
    FunctionReturn("x", "Failed\ud800", ["[bold]", DIRTY]),  # type: ignore[arg-type]
    Info("[/nonsense] [bold]" + DIRTY),
    Warning(DIRTY, raw=DIRTY),
]

def strict_console() -> tuple[Console, io.BytesIO]:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    return Console(file=stream, width=200, no_color=True, highlight=False, soft_wrap=True), raw


def test_rich_output_of_dirty_events_is_clean_text():
    console, raw = strict_console()
    printer = EventPrinter(console, echo_user=True)
    for event in EVENTS:
        printer(event)
    out = raw.getvalue().decode("utf-8")
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out and "\x9b" not in out
    assert "a\ufffdbcde" in out
    assert "[/nonsense] [bold]" in out  # markup in text is shown, not interpreted
    assert "pwned" not in out


def test_json_output_of_dirty_events_is_one_valid_clean_object_per_line():
    console, raw = strict_console()
    printer = EventPrinter(console, json_output=True)
    for event in EVENTS:
        printer(event)
    lines = raw.getvalue().decode("utf-8").splitlines()
    assert len(lines) == len(EVENTS)
    decoded = [json.loads(line) for line in lines]
    assert [d["type"] for d in decoded] == [e.type for e in EVENTS]
    assert decoded[0]["text"] == "a\ufffdbcde"
    assert decoded[3]["raw"] == "a\ufffdbcde"
    assert decoded[4]["arguments"] == {"content": "a\ufffdbcde", "n": 1}
    assert all("\x1b" not in json.dumps(d, ensure_ascii=False) for d in decoded)


def test_a_streamed_reply_with_dirty_deltas_is_printed_clean_and_once():
    console, raw = strict_console()
    printer = LivePrinter(console)
    with printer.working():
        for delta in ("Hel", "lo\ud800", "\x1b[31m", " there"):
            printer(AssistantMessageDelta(delta))
        printer(AssistantMessage("Hello\ud800\x1b[31m there"))
    out = raw.getvalue().decode("utf-8")
    assert "\x1b[31m" not in out
    assert out.count("Hello\ufffd there") == 1, out


@pytest.mark.parametrize("event", EVENTS, ids=[e.type for e in EVENTS])
def test_each_event_prints_in_both_modes(event):
    for json_output in (False, True):
        console, raw = strict_console()
        EventPrinter(console, json_output=json_output, echo_user=True)(event)
        raw.getvalue().decode("utf-8")
