"""Core-memory history as a person reads it: `/memory history [BLOCK] [N]`, `/undo`, and the recent changes
`memagent agents show` lists.

One change is one line, newest first: its number, when (local time), the block, what did it, and the change as
`"old" → "new"`, cut to the part that differs with a little context around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from memagent.memory.versions import MemoryVersion

if TYPE_CHECKING:
    from memagent.repl.commands import CommandContext

DEFAULT_SHOWN = 20
CONTEXT_CHARS = 12
"""Characters of unchanged text shown on each side of what changed."""
CHANGE_CHARS = 60
"""The longest piece of changed text shown, per side."""


def _flat(text: str) -> str:
    return text.replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎").replace("\t", " ")


def _cut(text: str, limit: int = CHANGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_text(old: str | None, new: str | None) -> str:
    """One change on one line: `created "…"`, `deleted (was "…")`, or `"…old…" → "…new…"` around what differs."""
    if old is None:
        return f'created "{_cut(_flat(new or ""))}"'
    if new is None:
        return f'deleted (was "{_cut(_flat(old))}")'
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    before = old[max(0, start - CONTEXT_CHARS) : start]
    before = ("…" if start > CONTEXT_CHARS else "") + before
    after = old[len(old) - end : len(old) - end + CONTEXT_CHARS] if end else ""
    after += "…" if end > CONTEXT_CHARS else ""

    def side(text: str) -> str:
        return f'"{_flat(before + _cut(text[start : len(text) - end]) + after)}"'

    return f"{side(old)} → {side(new)}"


def change_line(version: MemoryVersion) -> str:
    """`#12 2026-12-02 18:40:01 human, core_memory_append (call 42): "Name: Brad" → "Name: Brad⏎Likes tea"`"""
    when = version.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    what = version.cause.describe()
    return f"#{version.id} {when} {version.block}, {what}: {diff_text(version.old_text, version.new_text)}"


def history_lines(versions: Sequence[MemoryVersion]) -> list[str]:
    return [change_line(version) for version in versions]


# -- the commands ----------------------------------------------------------------------------------

HISTORY_USAGE = "Usage: /memory history [BLOCK] [N] (the N latest changes, default 20, of one block or all)."


def show_history(ctx: CommandContext, args: str) -> None:
    """/memory history [BLOCK] [N]"""
    words = args.split()
    count = DEFAULT_SHOWN
    if words and words[-1].isdigit():
        count = int(words.pop())
    if len(words) > 1 or count < 1:
        ctx.error(HISTORY_USAGE)
        return
    block = words[0] if words else None
    agent = ctx.agent
    versions = agent.memory_versions(block, limit=count + 1)
    if not versions:
        if block is not None and block not in agent.core_memory.sections:
            known = ", ".join(agent.core_memory.sections) or "(none)"
            ctx.error(f"No block named {block!r} has ever been in core memory. Blocks: {known}.")
        else:
            of = f" of block {block!r}" if block else ""
            ctx.info(f"No core-memory change{of} recorded yet.")
        return
    of = f"Block {block!r}" if block else "Core memory"
    lines = [f"{of}: {min(count, len(versions))} latest change{'s' * (len(versions) != 1)}, newest first:"]
    lines += [f"  {line}" for line in history_lines(versions[:count])]
    if len(versions) > count:
        target = f"{block} " if block else ""
        lines.append(f"  … older changes not shown: /memory history {target}{count * 5}")
    ctx.info("\n".join(lines))


UNDO_USAGE = "Usage: /undo [N] (undoes the latest core-memory change, or change #N of /memory history)."


def undo(ctx: CommandContext, args: str) -> None:
    """/undo [N]"""
    number = args.strip().removeprefix("#")
    if number and not number.isdigit():
        ctx.error(UNDO_USAGE)
        return
    undone = ctx.agent.undo(int(number) if number else None)
    if undone is None:
        if number:
            ctx.error(f"No change #{number} in this agent's core-memory history; /memory history lists them.")
        else:
            ctx.error("Nothing to undo: core memory has no recorded change.")
        return
    change, result = undone.change, undone.result
    when = change.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    what = f"Undid change #{change.id} ({change.cause.describe()}, {when})"
    if result is None:
        ctx.info(f"{what}: block {change.block!r} already was as before it; nothing changed.")
        return
    if result.kind == "deleted":
        done = f"block {change.block!r} removed"
    elif result.kind == "created":
        done = f"block {change.block!r} restored ({len(result.new_text or '')} characters)"
    else:
        done = f"block {change.block!r} changed back, {diff_text(result.old_text, result.new_text)}"
    ctx.info(f"{what}: {done}. The system message was rebuilt; /undo again re-applies it (as #{result.id}).")
