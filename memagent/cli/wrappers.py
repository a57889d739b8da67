"""`memagent wrappers list|render|parse`: see what a prompt format sends and what its parser makes of
raw model output, without loading a model. This is how a user checks a new wrapper file before chatting."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memagent.cli.common import NoColor, console, current_settings
from memagent.errors import UserError

if TYPE_CHECKING:
    from memagent.llm.wrappers.base import LLMChatCompletionWrapper

wrappers_app = typer.Typer(help="Wrappers: the prompt format and output parser for a model family.",
                           no_args_is_help=True, rich_markup_mode=None)

WrapperName = Annotated[str, typer.Argument(help="A wrapper name (see `memagent wrappers list`) or a model name.")]
SAMPLE_PROMPT = "You are Sam, a companion with a memory. Reply to the user with send_message."


def _wrapper(name: str, *, constrained: bool) -> LLMChatCompletionWrapper:
    from memagent.errors import ConfigError
    from memagent.llm.wrappers.registry import available_wrappers, create_wrapper

    folder = current_settings().home / "wrappers"
    try:
        return create_wrapper(name, constrained=constrained, user_folder=folder)
    except ConfigError:
        known = ", ".join(sorted(available_wrappers(folder)))
        raise UserError(f"Unknown wrapper {name!r}. Known wrappers: {known}.") from None


def _schemas() -> list[dict[str, Any]]:
    from memagent.functions.memory import builtin_functions

    registry = builtin_functions()
    return [f.schema for f in registry.select(registry.names())]


def _sample_system(when: str) -> str:
    """A short system message in the real layout: prompt, memory statistics, core memory sections."""
    from memagent.memory.core import CoreMemory, Section
    from memagent.prompts.template import MemoryStats, SystemPromptTemplate

    core = CoreMemory({"persona": Section("I am Sam. I like sailing and poetry."), "human": Section("")})
    return SystemPromptTemplate(SAMPLE_PROMPT, {}).render(core, MemoryStats(when, 6, 0))


def sample_conversation(moment: datetime | None = None) -> list[dict[str, Any]]:
    """A short conversation that uses every role: boot, a memory edit with a heartbeat, replies."""
    from memagent import messages as m

    when = moment or datetime(2024, 1, 2, 9, 30).astimezone()
    return [
        {"role": "system", "content": _sample_system(m.now_text(when))},
        m.assistant_call(m.BOOT_THOUGHTS, "send_message", {"message": m.BOOT_MESSAGE}),
        m.function_result("send_message", True, None, when),
        m.login_message(when),
        m.user_message("Hi! I'm Brad and I love sailing.", when),
        m.assistant_call("The user told me his name. I should remember it.", "core_memory_append",
                         {"name": "human", "content": "Name: Brad. Loves sailing.", "request_heartbeat": True}),
        m.function_result("core_memory_append", True, None, when),
        m.heartbeat_message(m.HEARTBEAT_REQUESTED, when),
        m.assistant_call("Now I greet Brad.", "send_message",
                         {"message": "Nice to meet you, Brad! Where do you sail?"}),
        m.function_result("send_message", True, None, when),
        m.user_message("Mostly around Lisbon.", when),
    ]


@wrappers_app.command("list")
def list_wrappers(no_color: NoColor = False) -> None:
    """List wrappers: name, description and origin (built-in, a file in your folder, or a package)."""
    from rich.table import Table

    from memagent.llm.wrappers.registry import DEFAULT_WRAPPER, available_wrappers
    from memagent.repl.render import safe

    table = Table("name", "description", title="Wrappers")
    table.add_column("origin", overflow="fold")  # a path is never cut short
    for name, entry in sorted(available_wrappers(current_settings().home / "wrappers").items()):
        label = f"{name} (default)" if name == DEFAULT_WRAPPER else name
        table.add_row(safe(label), safe(entry.cls.description), safe(entry.origin))
    console().print(table)


@wrappers_app.command("render")
def render_wrapper(
    name: WrapperName,
    constrained: Annotated[
        bool, typer.Option("--constrained", help="As sent with a grammar (no forced JSON prefix).")
    ] = False,
    grammar: Annotated[bool, typer.Option("--grammar", help="Print the GBNF grammar instead of the prompt.")] = False,
    no_color: NoColor = False,
) -> None:
    """Print the prompt this wrapper builds for a small sample conversation with the base functions."""
    wrapper = _wrapper(name, constrained=constrained or grammar)
    if grammar:
        from memagent.llm.constraint import build_constraint

        schema = wrapper.output_schema(_schemas())
        if schema is None:
            raise UserError(f"Wrapper {wrapper.name!r} has no output schema, so it can't be constrained.")
        sys.stdout.write(build_constraint(schema).gbnf.rstrip("\n") + "\n")
        return
    sys.stdout.write(wrapper.chat_completion_to_prompt(sample_conversation(), _schemas()) + "\n")


@wrappers_app.command("parse")
def parse_output(name: WrapperName, no_color: NoColor = False) -> None:
    """Parse raw model output from stdin; print the call as JSON, or the parse error (exit code 1)."""
    from memagent.errors import LLMOutputError
    from memagent.text import clean_text

    wrapper = _wrapper(name, constrained=False)
    raw = clean_text(sys.stdin.read())  # as the agent cleans what a model sends
    try:
        call = wrapper.parse(raw, _schemas())
    except LLMOutputError as exc:
        raise UserError(f"Could not parse the output: {' '.join(str(exc).split())}") from None
    result = {
        "name": call.name,
        "arguments": call.arguments,
        "inner_thoughts": call.inner_thoughts,
        "repairs": list(call.repairs),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
