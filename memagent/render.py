"""How events look: rich text for people, one JSON object per line for scripts (--json)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from memagent.events import Event

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


def format_call(name: str, arguments: dict) -> str:
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{name}({args})"


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
            self.console.file.write(event.to_json() + "\n")
            self.console.file.flush()
            return
        if event.type == "user_message" and not self.echo_user:
            return
        if event.type == "assistant_message_delta":
            return
        if event.type == "function_call":
            if event.text != "send_message":
                self.console.print(f"[magenta]⚡ {escape(format_call(event.text, event.data.get('arguments', {})))}[/]")
            return
        if event.type == "function_return":
            if self.show_returns and event.text != "send_message":
                status = event.data.get("status")
                style = "green" if status == "OK" else "red"
                message = escape(str(event.data.get("message")))
                self.console.print(f"  [{style}]↳ {status}[/] [dim]{message}[/]")
            return
        if event.type == "inner_thoughts" and not event.text:
            return
        icon, style = _STYLES.get(event.type, ("", ""))
        text = escape(event.text)
        self.console.print(f"[{style}]{icon} {text}[/]" if style else f"{icon} {text}")
