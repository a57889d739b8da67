"""The terminal's input line: prompt_toolkit's session with memagent's keys, completion and history.

Light on purpose: it imports prompt_toolkit and nothing of the agent, so the first prompt can be on screen while the
agent, its database and its model are still being opened in another thread (cli/opening.py). Until then the prompt
takes what is typed, prints what the opening prints above itself, and the completion offers nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from memagent.text import clean_text

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    from memagent.agent import Agent

MULTILINE_SWITCH = "//"


@dataclass
class InputMode:
    multiline: bool = False


class Opening(Protocol):
    """What the first prompt needs of the session being opened behind it (cli/opening.py)."""

    def when_failed(self, callback: Callable[[], None] | None) -> None: ...

    def start(self) -> None: ...


class OpeningFailed(Exception):
    """The session could not be opened while the first prompt was on screen (its error is the opening's)."""


def key_bindings(mode: InputMode) -> KeyBindings:
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")  # what terminals send for Alt-Enter
    def _newline_or_send(event: KeyPressEvent) -> None:
        if mode.multiline:
            event.current_buffer.validate_and_handle()
        else:
            event.current_buffer.insert_text("\n")

    @bindings.add("enter", filter=Condition(lambda: mode.multiline))
    def _newline_or_switch(event: KeyPressEvent) -> None:
        """In multiline mode Enter starts a new line, except on a lone // (the switch back)."""
        buffer = event.current_buffer
        if buffer.text.strip() == MULTILINE_SWITCH:
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    return bindings


def completer(agent: Callable[[], Agent | None], home: Path | None) -> Completer:
    """Slash commands, then template field names or wrapper names (commands.completions); nothing until ``agent()``
    gives the agent."""
    from prompt_toolkit.completion import Completer, Completion

    class SlashCompleter(Completer):
        def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
            current = agent()
            if current is None:
                return
            from memagent.repl.commands import completions, wrapper_names

            text = document.text_before_cursor
            word = text.rsplit(" ", 1)[-1]
            for candidate in completions(text, current, wrapper_names(home)):
                yield Completion(candidate, start_position=-len(word))

    return SlashCompleter()


class InputPrompt:
    """The chat's input line, kept for the whole session (one history, one input mode)."""

    def __init__(self, history_file: Path, home: Path | None, agent: Callable[[], Agent | None]) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.filters import Condition
        from prompt_toolkit.history import FileHistory

        self.mode = InputMode()
        history_file.parent.mkdir(parents=True, exist_ok=True)
        self.session: PromptSession[str] = PromptSession(
            history=FileHistory(str(history_file)),
            completer=completer(agent, home),
            key_bindings=key_bindings(self.mode),
            multiline=Condition(lambda: self.mode.multiline),
            prompt_continuation=lambda width, line_number, wrap_count: "… ".rjust(width),
        )

    def read(self) -> str:
        """The next line (or block, in multiline mode); KeyboardInterrupt on Ctrl-C, EOFError on Ctrl-D."""
        return clean_text(self.session.prompt(lambda: "… " if self.mode.multiline else "> "))

    def ask(self, question: str) -> str | None:
        """A one-line answer (Enter sends), whatever the input mode; None if cancelled."""
        multiline, self.mode.multiline = self.mode.multiline, False
        try:
            return clean_text(self.session.prompt(question))
        except (KeyboardInterrupt, EOFError):
            return None
        finally:
            self.mode.multiline = multiline

    def read_first(self, opening: Opening) -> str | None:
        """The first line, read while the session opens in another thread (started once the prompt is drawn): what
        it prints appears above the prompt, and if it fails the prompt ends at once (OpeningFailed). None on Ctrl-D;
        Ctrl-C clears the line."""
        from prompt_toolkit.patch_stdout import patch_stdout

        app = self.session.app

        def start_opening(_app: object) -> None:  # once the prompt is on screen
            opening.start()

        app.after_render += start_opening

        def arm() -> None:  # runs inside the prompt, with its event loop
            loop = app.loop
            lock = threading.Lock()

            def end_prompt() -> None:
                with lock:
                    if app.is_running and app.future is not None and not app.future.done():
                        app.exit(exception=OpeningFailed())

            def from_any_thread() -> None:
                if loop is not None:
                    with suppress(RuntimeError):  # the prompt had already ended: its loop is closed
                        loop.call_soon_threadsafe(end_prompt)

            opening.when_failed(from_any_thread)

        try:
            with patch_stdout(raw=True):
                while True:
                    try:
                        return clean_text(
                            self.session.prompt(lambda: "… " if self.mode.multiline else "> ", pre_run=arm)
                        )
                    except KeyboardInterrupt:
                        continue
                    except EOFError:
                        return None
        finally:
            app.after_render -= start_opening
            opening.when_failed(None)
            opening.start()
