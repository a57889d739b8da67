"""Slash commands, shared by the interactive REPL and scripted (piped) chat. One table, one dispatcher.

Every edit goes through an Agent method, which writes it through to SQLite at once (MemGPT 0.2 edited only
the in-memory list, so /pop or /rewrite could be lost or disagree with recall search). Commands report
through the same events as the agent, so --json scripts see them too.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memagent.agent import Agent
from memagent.errors import ConfigError, UserError
from memagent.events import Error, Event, Info
from memagent.messages import envelope_type, searchable_text
from memagent.repl.memory_history import HISTORY_USAGE, show_history, undo
from memagent.text import clean_text

Emit = Callable[[Event], None]
Ask = Callable[[str], str | None]  # asks the user for a missing value; None when nobody can answer

DEFAULT_POP = 3
INPUT_HELP = (
    "Input: Enter sends. Alt-Enter (or Esc then Enter) starts a new line. A line with only // switches "
    "multiline mode on or off; in it Enter starts a new line and Alt-Enter / Esc Enter sends.\n"
    "Tab completes commands, template field names and wrapper names. Ctrl-C stops the agent while it "
    "works (your message stays saved); Ctrl-D or /exit leaves."
)


class ExitChat(Exception):
    """/exit was typed."""


@dataclass
class CommandContext:
    """What a command may use: the agent, where output goes, a way to ask, and the user's folder."""

    agent: Agent
    emit: Emit
    ask: Ask
    home: Path | None = None  # $MEMAGENT_HOME: user wrappers live in home/wrappers

    def info(self, text: str) -> None:
        self.emit(Info(text))

    def error(self, text: str) -> None:
        self.emit(Error(text))


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable[[CommandContext, str], None]
    uses_model: bool = False  # the REPL shows its spinner and streams the reply only for these


def _text_arg(ctx: CommandContext, args: str, question: str) -> str:
    """The command's argument, or the user's answer when it was left out ('' if nobody answers)."""
    return args.strip() or (ctx.ask(question) or "").strip()


# -- information -----------------------------------------------------------------------------------


def _help(ctx: CommandContext, args: str) -> None:
    width = max(len(c.usage) for c in COMMANDS.values())
    lines = [f"{c.usage.ljust(width)}  {c.help}" for c in COMMANDS.values()]
    ctx.info("Commands:\n" + "\n".join(lines) + "\nAnything else is sent to the agent.\n" + INPUT_HELP)


def _exit(ctx: CommandContext, args: str) -> None:
    raise ExitChat


def _memory(ctx: CommandContext, args: str) -> None:
    word, _, rest = args.strip().partition(" ")
    if word == "history":
        show_history(ctx, rest)
        return
    if word:
        ctx.error(f"Unknown /memory argument {word!r}. {HISTORY_USAGE} /memory alone shows core memory and counts.")
        return
    agent = ctx.agent
    lines = [f"Agent {agent.name} (preset {agent.state.preset}, wrapper {agent.wrapper.name})", "Core memory:"]
    for key, section in agent.core_memory.sections.items():
        lines.append(f"  <{key}> {len(section.content)}/{section.max_length} characters")
        lines += [f"    {line}" for line in section.content.splitlines()]
    lines.append(
        f"Recall memory: {agent.recall_count()} messages ({len(agent.messages)} in context)"
    )
    passages = agent.archival_count()
    lines.append(f"Archival memory: {passages} passages")
    for passage in agent.first_passages(3):
        preview = " ".join(passage.text.split())
        lines.append(f"  [{passage.id}] {preview[:100]}{'…' if len(preview) > 100 else ''}")
    if passages > 3:
        lines.append(f"  … and {passages - 3} more")
    ctx.info("\n".join(lines))


def _count(args: str, default: int) -> int | None:
    """A non-negative count argument, the default when empty, None when it is not a number."""
    text = args.strip()
    if not text:
        return default
    return int(text) if text.isdigit() else None


def _describe(message: dict[str, Any]) -> str:
    """One message as a person reads it: who, then the words (and the call, for the agent)."""
    role = message.get("role", "?")
    label = envelope_type(message) or role
    text = searchable_text(message).replace("\n", " ")
    call = message.get("function_call") or {}
    if call.get("name") and call["name"] != "send_message":
        text = f"{text} ⚡ {call['name']}({call.get('arguments', '')})"
    elif role == "function":
        text = f"{message.get('name', '')} -> {text}"
    return f"{label}: {text}"


def _dump(ctx: CommandContext, args: str, *, raw: bool = False) -> None:
    messages = ctx.agent.messages
    count = _count(args, len(messages))
    if count is None:
        ctx.error("Usage: /dump [N] (N = how many of the latest messages).")
        return
    shown = messages[-count:] if count else []
    render = (lambda m: json.dumps(m, ensure_ascii=False)) if raw else _describe
    ctx.info("\n".join(f"[{mid}] {render(m)}" for mid, m in shown) or "(no messages in context)")


def _fields(ctx: CommandContext, args: str) -> None:
    template = ctx.agent.template
    names = template.field_names()
    if not names:
        ctx.info("This agent's system prompt has no template fields.")
        return
    ctx.info("Template fields:\n" + "\n".join(f"{name}: {template.fields.get(name, '')!r}" for name in names))


# -- edits -----------------------------------------------------------------------------------------


def _edit_template_field(ctx: CommandContext, args: str) -> None:
    agent = ctx.agent
    name, _, value = args.strip().partition(" ")
    if not name:
        name = (ctx.ask("Template field name: ") or "").strip()
    if name and name not in agent.template.field_names():
        known = ", ".join(agent.template.field_names()) or "(none)"
        ctx.error(f"Unknown template field {name!r}. Fields: {known}. See /fields.")
        return
    if name and not value:
        value = ctx.ask(f"New value for {name}: ") or ""
    if not name or not value.strip():
        ctx.error("Usage: /edit_template_field NAME VALUE (nothing was changed).")
        return
    agent.set_template_field(name, value)
    ctx.info(f"Template field {name!r} updated; the system message was rebuilt.")


def _pop(ctx: CommandContext, args: str) -> None:
    count = _count(args, DEFAULT_POP)
    if count is None:
        ctx.error(f"Usage: /pop [N] (removes the last N messages, {DEFAULT_POP} by default).")
        return
    removed = ctx.agent.pop(count)
    if removed:
        ctx.info(f"Removed the last {removed} message{'s' * (removed != 1)} from context and recall memory.")
    else:
        ctx.info("Nothing to remove (the first message always stays).")


def _retry(ctx: CommandContext, args: str) -> None:
    if not ctx.agent.retry(ctx.emit):
        ctx.error("There is no user message in context to retry.")


def _last_message_edit(
    ask: str, usage: str, edit: Callable[[Agent, str], bool], done: str, missing: str
) -> Callable[[CommandContext, str], None]:
    """A command that replaces a part of the agent's last message with the text given (or asked for)."""

    def run(ctx: CommandContext, args: str) -> None:
        text = _text_arg(ctx, args, ask)
        if not text:
            ctx.error(f"Usage: {usage} (nothing was changed).")
        elif edit(ctx.agent, text):
            ctx.info(done)
        else:
            ctx.error(missing)

    return run


_rethink = _last_message_edit(
    "New inner thoughts: ", "/rethink TEXT", lambda agent, text: agent.rethink(text),
    "Replaced the inner thoughts of the agent's last message.", "The agent has no message in context to rethink.",
)
_rewrite = _last_message_edit(
    "New reply text: ", "/rewrite TEXT", lambda agent, text: agent.rewrite(text), "Rewrote the agent's last reply.",
    "The agent's last message is not a send_message reply; nothing to rewrite.",
)


def _heartbeat(ctx: CommandContext, args: str) -> None:
    ctx.agent.heartbeat(ctx.emit)


def _summarize(ctx: CommandContext, args: str) -> None:
    if not ctx.agent.summarize(ctx.emit):
        ctx.info("Not enough messages in context to summarize.")


def _attach(ctx: CommandContext, args: str) -> None:
    from memagent.loader import load_path

    target = _text_arg(ctx, args, "File or folder to load: ")
    if len(target) >= 2 and target[0] == target[-1] and target[0] in "'\"":
        target = target[1:-1]  # a quoted path with spaces
    if not target:
        ctx.error("Usage: /attach PATH (a text file or a folder of text files).")
        return
    agent = ctx.agent
    report = load_path(agent.add_passages, Path(target))
    ctx.info(report.summary(agent.name))


# -- wrappers --------------------------------------------------------------------------------------


def wrapper_names(home: Path | None) -> list[str]:
    from memagent.llm.wrappers.registry import available_wrappers

    return sorted(available_wrappers(home / "wrappers" if home else None))


def _wrapper(ctx: CommandContext, args: str) -> None:
    from memagent.llm.wrappers.registry import create_wrapper

    agent, name = ctx.agent, args.strip()
    if not name:
        current = agent.wrapper
        state = "constrained by a grammar" if current.constrained else "unconstrained"
        names = ", ".join(wrapper_names(ctx.home))
        ctx.info(f"Wrapper: {current.name} ({state}): {current.description}\nAvailable: {names}")
        return
    folder = ctx.home / "wrappers" if ctx.home else None
    try:
        wrapper = create_wrapper(name, constrained=agent.wrapper.constrained, user_folder=folder)
    except ConfigError:
        near = difflib.get_close_matches(name, wrapper_names(ctx.home), n=1)
        hint = f" Did you mean {near[0]}?" if near else " /wrapper lists them."
        ctx.error(f"Unknown wrapper {name!r}; still using {agent.wrapper.name}.{hint}")
        return
    agent.set_wrapper(wrapper)
    ctx.info(f"Wrapper switched to {wrapper.name} for the rest of this session.")


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "/help", "show this list", _help),
        Command("exit", "/exit", "leave (the agent is saved as you go)", _exit),
        Command("memory", "/memory [history [BLOCK] [N]]",
                "core memory sections with used/limit, recall and archival counts; with history: the latest "
                "core-memory changes (of one block), newest first", _memory),
        Command("undo", "/undo [N]", "undo the latest core-memory change, or change #N (/undo again re-applies it)",
                undo),
        Command("dump", "/dump [N]", "show the last N messages in context (all by default)", _dump),
        Command("dumpraw", "/dumpraw [N]", "the same, as the stored JSON", lambda c, a: _dump(c, a, raw=True)),
        Command("pop", "/pop [N]", f"delete the last N messages (default {DEFAULT_POP}) from context and recall", _pop),
        Command("retry", "/retry", "drop the agent's answer to your last message and ask again", _retry, True),
        Command("rethink", "/rethink TEXT", "replace the inner thoughts of the agent's last message", _rethink),
        Command("rewrite", "/rewrite TEXT", "replace the text of the agent's last reply", _rewrite),
        Command("summarize", "/summarize", "summarize older messages now (they stay searchable)", _summarize, True),
        Command("heartbeat", "/heartbeat", "send a heartbeat: let the agent think without a user message",
                _heartbeat, True),
        Command("fields", "/fields", "list the system prompt's template fields and their values", _fields),
        Command("edit_template_field", "/edit_template_field [NAME [VALUE]]",
                "change a template field; asks for what is missing", _edit_template_field),
        Command("attach", "/attach PATH", "load a text file or a folder of text files into archival memory", _attach),
        Command("wrapper", "/wrapper [NAME]", "show the wrapper, or switch to another for this session", _wrapper),
    )
}


def is_command(line: str) -> bool:
    """Slash commands start with one '/'; '//' is the multiline switch (or text that starts with it)."""
    return line.startswith("/") and not line.startswith("//")


def uses_model(line: str) -> bool:
    """Whether this line makes the model generate (a message, or a command such as /retry)."""
    if not line.strip():
        return False
    if not is_command(line):
        return True
    command = COMMANDS.get(line[1:].partition(" ")[0])
    return command is not None and command.uses_model


def _cleaned(ask: Ask) -> Ask:
    def cleaned_answer(prompt: str) -> str | None:
        answer = ask(prompt)
        return None if answer is None else clean_text(answer)

    return cleaned_answer


def run_command(line: str, agent: Agent, emit: Emit, ask: Ask, home: Path | None = None) -> None:
    """Run one slash command line. Unknown commands say so and suggest the nearest. The line and the
    user's answers are cleaned here (lone surrogates, NUL, escape codes), whoever calls."""
    name, _, args = clean_text(line)[1:].partition(" ")
    command = COMMANDS.get(name or "help")
    if command is None:
        near = [c for c in COMMANDS if c.startswith(name)] or difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" Did you mean /{' or /'.join(near)}?" if near else " Type /help for the list."
        emit(Error(f"Unknown command /{name}.{hint}"))
        return
    try:
        command.run(CommandContext(agent, emit, _cleaned(ask), home), args)
    except UserError as exc:
        emit(Error(str(exc)))


def completions(text: str, agent: Agent, wrappers: Sequence[str] = ()) -> list[str]:
    """Candidates for the word at the end of `text`: a command after '/', a template field name after
    '/edit_template_field ', a wrapper name after '/wrapper ', history after '/memory '. Only the first argument is
    completed."""
    if not is_command(text):
        return []
    words = text.split(" ")
    if len(words) == 1:
        return [f"/{name}" for name in COMMANDS if f"/{name}".startswith(text)]
    if len(words) != 2:
        return []
    by_command = {"edit_template_field": agent.template.field_names(), "wrapper": list(wrappers), "memory": ["history"]}
    choices = by_command.get(words[0][1:], [])
    return [choice for choice in choices if choice.startswith(words[1])]
