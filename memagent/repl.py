"""The chat loops: interactive (prompt_toolkit input, rich output, spinner) and scripted (one message per
line of stdin). Both send lines through the same slash-command table and the same agent."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from rich.console import Console

from memagent.agent import Agent
from memagent.commands import COMMANDS, ExitChat, run_command
from memagent.events import Event
from memagent.render import EventPrinter


def handle_line(line: str, agent: Agent, emit: EventPrinter, ask) -> None:
    if line.startswith("/") and not line.startswith("//"):
        run_command(line, agent, emit, ask)
    else:
        agent.run_turn(line, emit)


def run_scripted(agent: Agent, lines: Iterable[str], emit: EventPrinter) -> None:
    """Piped use: each line is a user message (or a slash command); ends at end of input."""
    for raw in lines:
        line = raw.rstrip("\n")
        try:
            handle_line(line, agent, emit, ask=lambda _prompt: None)
        except ExitChat:
            return
        except KeyboardInterrupt:
            emit(Event("warning", "Cancelled; the agent and its messages are kept."))
            return


def run_interactive(agent: Agent, console: Console, emit: EventPrinter, history_file: Path) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    history_file.parent.mkdir(parents=True, exist_ok=True)
    words = [f"/{name}" for name in COMMANDS] + agent.template.field_names()
    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history_file)),
        completer=WordCompleter(words, sentence=True),
    )
    console.print(f"[dim]Chatting with [bold]{agent.name}[/bold]. /help for commands, Ctrl-D or /exit to leave.[/]")

    def ask(prompt: str) -> str | None:
        try:
            return session.prompt(prompt)
        except (KeyboardInterrupt, EOFError):
            return None

    while True:
        try:
            line = session.prompt("> ")
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            return
        try:
            with console.status("[dim]thinking…[/]", spinner="dots"):
                handle_line(line, agent, emit, ask)
        except ExitChat:
            return
        except KeyboardInterrupt:
            console.print("[yellow]Cancelled. The agent and every stored message are intact.[/]")


def chat(agent: Agent, *, json_output: bool, color: bool, home: Path, stdin: TextIO | None = None) -> None:
    stdin = stdin or sys.stdin
    console = Console(no_color=not color, highlight=False, soft_wrap=True)
    interactive = stdin.isatty() and sys.stdout.isatty() and not json_output
    printer = EventPrinter(console, json_output=json_output, echo_user=not interactive)
    if interactive:
        run_interactive(agent, console, printer, home / "history")
    else:
        run_scripted(agent, stdin, printer)
