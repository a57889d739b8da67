"""The chat loops: interactive (prompt_toolkit input, rich output, spinner, streamed replies) and scripted
(one message per line of stdin). Both send lines through the same slash-command table and the same agent.

Ctrl-C while the model works raises KeyboardInterrupt out of the generation. The user's message was
committed before generation began, and a step commits its messages only after the model has answered, so
the interrupted step leaves nothing behind and every earlier one is kept. An interrupt that lands while
Python runs inside a C callback or a finalizer (llama-cpp-python's log callback, a ctypes object's __del__)
is swallowed there, so the Ctrl-C is also noted and the next event of the turn raises it again.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

from rich.console import Console

from memagent.agent import Agent
from memagent.events import Error, Event, Warning
from memagent.repl.commands import Ask, Emit, ExitChat, is_command, run_command, uses_model
from memagent.repl.prompt import MULTILINE_SWITCH, InputPrompt
from memagent.repl.render import EventPrinter, LivePrinter, safe
from memagent.text import clean_text

CANCELLED = "Cancelled. Your message is saved and the agent is intact; type another message or /retry."
CANCELLED_COMMAND = "Cancelled. What was done before Ctrl-C is saved and the agent is intact."


def handle_line(line: str, agent: Agent, emit: Emit, ask: Ask, home: Path | None = None) -> None:
    if is_command(line):
        run_command(line, agent, emit, ask, home)
    else:
        agent.run_turn(line, emit)


# -- scripted ----------------------------------------------------------------------------------------


def tolerant(stdin: TextIO) -> TextIO:
    """Piped input that bytes which are not text (invalid UTF-8) can't end: they are read as U+FFFD.
    Reconfigured rather than read as bytes, so the human backend's input() reads the same text layer."""
    reconfigure = getattr(stdin, "reconfigure", None)
    if reconfigure is not None and getattr(stdin, "errors", None) != "replace":
        with suppress(ValueError, OSError):  # a closed or detached stream
            reconfigure(errors="replace")
    return stdin


def scripted_messages(lines: Iterable[str]) -> Iterator[str]:
    """Lines of stdin as inputs, cleaned (lone surrogates, NUL, control and escape codes); a line with
    only // starts or ends a block sent as one message. Blank lines outside a block are not messages."""
    block: list[str] | None = None
    for raw in lines:
        line = clean_text(raw).rstrip("\r\n")
        if line.strip() == MULTILINE_SWITCH:
            if block is not None:
                yield "\n".join(block)
            block = [] if block is None else None
        elif block is not None:
            block.append(line)
        elif line.strip():
            yield line
    if block:
        yield "\n".join(block)


EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def run_scripted(agent: Agent, lines: Iterable[str], emit: Emit, home: Path | None = None) -> int:
    """Piped use: each line is a user message (or a slash command); ends at end of input or /exit.
    Returns the exit status for scripts: 0 when every line was handled, 1 when any line ended with an
    error event (the chat goes on with the next line: its message is stored all the same), 130 on Ctrl-C."""
    failed = False

    def noting_errors(event: Event) -> None:
        nonlocal failed
        failed = failed or isinstance(event, Error)
        emit(event)

    try:
        for line in scripted_messages(lines):
            try:
                handle_line(line, agent, noting_errors, ask=lambda _prompt: None, home=home)
            except ExitChat:
                break
    except KeyboardInterrupt:
        emit(Warning("Cancelled; the agent and its messages are kept."))
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


# -- interactive -------------------------------------------------------------------------------------


@contextmanager
def noting_interrupts() -> Iterator[threading.Event]:
    """Ctrl-C raises KeyboardInterrupt as usual and is also noted in the Event this yields."""
    noted = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        noted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


def raising_when_noted(emit: Emit, noted: threading.Event) -> Emit:
    def checked(event: Event) -> None:
        if noted.is_set():  # the KeyboardInterrupt was swallowed where it landed: raise it here
            raise KeyboardInterrupt
        emit(event)

    return checked


def run_interactive_line(line: str, agent: Agent, printer: LivePrinter, ask: Ask, home: Path | None) -> None:
    """One line typed in the terminal. Lines that run the model get the spinner and the streamed reply;
    Ctrl-C stops the model and returns to the prompt. Raises ExitChat on /exit."""
    try:
        if uses_model(line):
            with noting_interrupts() as noted, printer.working():
                handle_line(line, agent, raising_when_noted(printer, noted), ask, home)
        else:
            handle_line(line, agent, printer, ask, home)
    except KeyboardInterrupt:
        printer.console.print(f"[yellow]⏹ {CANCELLED_COMMAND if is_command(line) else CANCELLED}[/]")


def run_interactive(
    agent: Agent, prompt: InputPrompt, console: Console, printer: LivePrinter, home: Path, first: str | None = None
) -> None:
    """Read and run lines until /exit or Ctrl-D; ``first``, if given, is a line already read (by the first prompt,
    while the agent opened)."""
    console.print(
        f"[dim]Chatting with [bold]{safe(agent.name)}[/bold]. /help for commands, // for multiline input, "
        "Ctrl-D or /exit to leave.[/]"
    )
    mode = prompt.mode
    while True:
        if first is not None:
            line, first = first, None
        else:
            try:
                line = prompt.read()
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                return
        if line.strip() == MULTILINE_SWITCH:
            mode.multiline = not mode.multiline
            state = "on: Enter starts a new line, Alt-Enter or Esc Enter sends, // switches back"
            state = state if mode.multiline else "off"
            console.print(f"[dim]Multiline mode {state}.[/]")
            continue
        try:
            run_interactive_line(line, agent, printer, prompt.ask, home)
        except ExitChat:
            return
        prefill_in_background(agent)


def prefill_in_background(agent: Agent) -> None:
    """Ready the next turn while the user types (Agent.prefill). Only a head start: if it fails, the next turn does
    the same work itself and reports any error then."""
    try:
        work = agent.prefill()
    except Exception:  # noqa: BLE001 - see the docstring
        return

    def run() -> None:
        with suppress(Exception):
            work()

    threading.Thread(target=run, name="memagent-prefill", daemon=True).start()


def chat_in_terminal(agent: Agent, prompt: InputPrompt, first: str | None, *, color: bool, home: Path) -> int:
    """The interactive chat; ``first``: a line already read while the agent opened (cli/chat.py). The exit status."""
    console = Console(no_color=not color, highlight=False, soft_wrap=True)
    agent.stream = True  # show send_message's text as the model writes it
    run_interactive(agent, prompt, console, LivePrinter(console), home, first)
    return EXIT_OK


def chat(agent: Agent, *, json_output: bool, color: bool, home: Path, stdin: TextIO | None = None) -> int:
    """Run the chat; returns the exit status (interactive: 0 on /exit or Ctrl-D; scripted: see run_scripted)."""
    stdin = stdin or sys.stdin
    if stdin.isatty() and sys.stdout.isatty() and not json_output:
        return chat_in_terminal(agent, InputPrompt(home / "history", home, lambda: agent), None, color=color, home=home)
    console = Console(no_color=not color, highlight=False, soft_wrap=True)
    printer = EventPrinter(console, json_output=json_output, echo_user=True)
    return run_scripted(agent, tolerant(stdin), printer, home)
