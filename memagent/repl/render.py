"""How events look: rich text for people, one JSON object per line for scripts (--json).

The printer is the last line of defence for what reaches the terminal: every text it prints goes through
``clean_text`` first, so a lone surrogate can't raise UnicodeEncodeError and escape codes from the model,
a file or a stored message never reach the terminal raw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from memagent.events import (
    AssistantMessage,
    AssistantMessageDelta,
    Event,
    FunctionCall,
    FunctionReturn,
    InnerThoughts,
    Retry,
    UserMessage,
)
from memagent.text import clean_any, clean_text

_STYLES = {
    "inner_thoughts": ("💭", "dim italic"),
    "assistant_message": ("🤖", "bold"),
    "user_message": ("🧑", ""),
    "heartbeat": ("♥", "dim"),
    "system_alert": ("⚠", "dim yellow"),
    "retry": ("↻", "yellow"),
    "warning": ("!", "yellow"),
    "error": ("✗", "bold red"),
    "info": ("·", "cyan"),
}


def format_call(name: str, arguments: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in arguments.items())
    return f"{name}({args})"


def safe(value: object) -> str:
    """Any value as rich markup that shows it literally: clean, with its square brackets escaped."""
    return escape(clean_text(str(clean_any(value))))


def json_line(event: Event) -> str:
    """The event as one line of JSON, cleaned: valid UTF-8, no raw control characters, whatever it held."""
    data = clean_any(event.data)
    line = {"type": event.type, "text": clean_text(event.text), **(data if isinstance(data, dict) else {})}
    try:
        return clean_text(json.dumps(line, ensure_ascii=False))
    except (TypeError, ValueError):  # a value JSON can't hold: show it as text rather than lose the event
        return clean_text(json.dumps(line, ensure_ascii=False, default=str))


class EventPrinter:
    """Prints events to a console. `echo_user` shows user messages (scripted mode, where nobody typed)."""

    def __init__(
        self, console: Console, *, json_output: bool = False, echo_user: bool = False, show_returns: bool = True
    ) -> None:
        self.console, self.json_output, self.echo_user, self.show_returns = (
            console,
            json_output,
            echo_user,
            show_returns,
        )

    def __call__(self, event: Event) -> None:
        if self.json_output:
            self.console.file.write(json_line(event) + "\n")
            self.console.file.flush()
            return
        match event:
            case UserMessage() if not self.echo_user:
                return
            case AssistantMessageDelta():
                return
            case FunctionCall(name=name, arguments=arguments):
                if name != "send_message":
                    cleaned = clean_any(arguments)
                    call = format_call(name, cleaned if isinstance(cleaned, dict) else {})
                    self.console.print(f"[magenta]⚡ {safe(call)}[/]")
                return
            case FunctionReturn(name=name, status=status, message=message):
                if self.show_returns and name != "send_message":
                    style = "green" if status == "OK" else "red"
                    self.console.print(f"  [{style}]↳ {safe(status)}[/] [dim]{safe(message)}[/]")
                return
            case InnerThoughts(text=""):
                return
        icon, style = _STYLES.get(event.type, ("", ""))
        text = safe(event.text)
        self.console.print(f"[{style}]{icon} {text}[/]" if style else f"{icon} {text}")


class LivePrinter(EventPrinter):
    """The terminal's view of a turn: a spinner while the model works, then send_message's text printed as
    it is generated. The final assistant_message only ends that line, so a reply never shows twice; if the
    final text differs from what streamed (a repaired call), the final text is printed as well."""

    def __init__(self, console: Console, *, spinner_text: str = "thinking…", **options: bool) -> None:
        super().__init__(console, **options)
        self.spinner_text = spinner_text
        self._status: Status | None = None
        self._spinning = False
        self._line_open = False  # a streamed reply is being printed on the current line
        self._streamed = ""  # what streamed since the last assistant_message

    @contextmanager
    def working(self) -> Iterator[None]:
        """Show the spinner for the duration of the block (it pauses while a reply streams)."""
        self._status = self.console.status(f"[dim]{safe(self.spinner_text)}[/]", spinner="dots")
        self._resume()
        try:
            yield
        finally:
            self._pause()
            self._status = None
            self._end_line()
            self._streamed = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, AssistantMessageDelta):
            self._stream(event.text)
            return
        if isinstance(event, Retry):
            self._streamed = ""  # that attempt's text was abandoned
        self._end_line()
        if isinstance(event, AssistantMessage) and self._streamed:
            already_shown = self._streamed.strip() == clean_text(event.text).strip()
            self._streamed = ""
            if already_shown:
                self._resume()
                return
        super().__call__(event)
        if not self._streamed:
            self._resume()

    def _stream(self, text: str) -> None:
        text = clean_text(text)
        if not text:
            return
        self._pause()
        if not self._line_open:
            icon, style = _STYLES["assistant_message"]
            self.console.print(f"{icon} ", end="", style=style, markup=False, highlight=False)
            self._line_open = True
        self.console.print(text, end="", style=_STYLES["assistant_message"][1], markup=False, highlight=False)
        self._streamed += text

    def _end_line(self) -> None:
        if self._line_open:
            self.console.print()
            self._line_open = False

    def _pause(self) -> None:
        if self._status is not None and self._spinning:
            self._status.stop()
            self._spinning = False

    def _resume(self) -> None:
        if self._status is not None and not self._spinning:
            self._status.start()
            self._spinning = True
