"""Slash commands, shared by the interactive REPL and scripted (piped) chat. One table, one dispatcher."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass

from memagent.agent import Agent
from memagent.errors import UserError
from memagent.events import Event

Emit = Callable[[Event], None]
Ask = Callable[[str], str | None]  # asks the user for a missing value; None when nobody can answer


class ExitChat(Exception):
    """/exit was typed."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable[[Agent, str, Emit, Ask], None]


def _help(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    width = max(len(c.usage) for c in COMMANDS.values())
    lines = [f"{c.usage.ljust(width)}  {c.help}" for c in COMMANDS.values()]
    emit(Event("info", "Commands:\n" + "\n".join(lines) + "\nAnything else is sent to the agent."))


def _exit(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    raise ExitChat


def _memory(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    lines = [f"Agent {agent.name} (preset {agent.state.preset}, wrapper {agent.wrapper.name})", "Core memory:"]
    for key, section in agent.core_memory.sections.items():
        lines.append(f"  <{key}> {len(section.content)}/{section.max_length} characters")
        lines += [f"    {line}" for line in section.content.splitlines()]
    lines.append(
        f"Recall memory: {agent.store.count_messages(agent.agent_id)} messages ({len(agent.messages)} in context)"
    )
    lines.append(f"Archival memory: {agent.store.count_passages(agent.agent_id)} passages")
    emit(Event("info", "\n".join(lines)))


def _dump(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    count = int(args) if args.strip().isdigit() else len(agent.messages)
    shown = agent.messages[-count:] if count else []
    lines = [f"[{mid}] {json.dumps(m, ensure_ascii=False)}" for mid, m in shown]
    emit(Event("info", "\n".join(lines) or "(no messages in context)"))


def _fields(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    names = agent.template.field_names()
    if not names:
        emit(Event("info", "This agent's system prompt has no template fields."))
        return
    lines = [f"{name}: {agent.template.fields.get(name, '')!r}" for name in names]
    emit(Event("info", "Template fields:\n" + "\n".join(lines)))


def _edit_template_field(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    name, _, value = args.strip().partition(" ")
    if not name:
        name = (ask("Template field name: ") or "").strip()
    if name and name not in agent.template.field_names():
        known = ", ".join(agent.template.field_names()) or "(none)"
        emit(Event("error", f"Unknown template field {name!r}. Fields: {known}. See /fields."))
        return
    if name and not value:
        value = ask(f"New value for {name}: ") or ""
    if not name or not value.strip():
        emit(Event("error", "Usage: /edit_template_field NAME VALUE (nothing was changed)."))
        return
    agent.set_template_field(name, value)
    emit(Event("info", f"Template field {name!r} updated; the system message was rebuilt."))


def _heartbeat(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    agent.heartbeat(emit)


def _summarize(agent: Agent, args: str, emit: Emit, ask: Ask) -> None:
    if not agent.summarize(emit):
        emit(Event("info", "Not enough messages in context to summarize."))


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "/help", "show this list", _help),
        Command("exit", "/exit", "leave (the agent is saved as you go)", _exit),
        Command("memory", "/memory", "core memory sections with used/limit, recall and archival counts", _memory),
        Command("dump", "/dump [N]", "print the last N messages in context (all by default)", _dump),
        Command("fields", "/fields", "list the system prompt's template fields and their values", _fields),
        Command(
            "edit_template_field",
            "/edit_template_field [NAME [VALUE]]",
            "change a template field; asks for what is missing",
            _edit_template_field,
        ),
        Command("heartbeat", "/heartbeat", "send a heartbeat: let the agent think without a user message", _heartbeat),
        Command("summarize", "/summarize", "summarize older messages now (they stay searchable)", _summarize),
    )
}


def run_command(line: str, agent: Agent, emit: Emit, ask: Ask) -> None:
    """Run one slash command line. Unknown commands say so and suggest the nearest."""
    name, _, args = line[1:].partition(" ")
    command = COMMANDS.get(name)
    if command is None:
        near = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" Did you mean /{near[0]}?" if near else " Type /help for the list."
        emit(Event("error", f"Unknown command /{name}.{hint}"))
        return
    try:
        command.run(agent, args, emit, ask)
    except UserError as exc:
        emit(Event("error", str(exc)))
