"""Richer core-memory tools (Letta's block tools are the anchor), for presets that list them.

The default preset keeps MemGPT's two edits (append, replace), which small models call reliably under the grammar;
a preset can add: insert at a line, replace one exact occurrence, rewrite a whole block, and create or delete blocks.
Each failure (a read-only block, a limit overrun, text that isn't there or is there twice) is a FunctionFailed with a
message the model can act on.
"""

from __future__ import annotations

from collections.abc import Callable

from memagent.functions.context import FunctionContext
from memagent.functions.registry import FunctionFailed
from memagent.memory.core import DEFAULT_SECTION_LIMIT, CoreMemoryEditError


def _edit(ctx: FunctionContext, change: Callable[[], object]) -> None:
    try:
        change()
    except CoreMemoryEditError as exc:
        raise FunctionFailed(str(exc)) from exc
    ctx.core_memory_changed()


def memory_insert(ctx: FunctionContext, label: str, content: str, line: int = -1) -> None:
    """Insert text into a core memory block as new lines, at a given line.

    Args:
        label: The block (section) of core memory to edit, e.g. human or persona.
        content: The lines to insert. All unicode (including emojis) are supported.
        line: Line number to insert before: 0 is the top of the block; -1 (the default) is after the last line.
    """
    _edit(ctx, lambda: ctx.core_memory.insert(label, content, line))


def memory_replace(ctx: FunctionContext, label: str, old_content: str, new_content: str) -> None:
    """Replace one exact piece of text in a core memory block. To delete it, use an empty string for new_content.

    Args:
        label: The block (section) of core memory to edit, e.g. human or persona.
        old_content: The text to replace, exactly as it appears in the block, once.
        new_content: The text to put in its place.
    """
    _edit(ctx, lambda: ctx.core_memory.replace_exactly(label, old_content, new_content))


def memory_rethink(ctx: FunctionContext, label: str, new_content: str) -> None:
    """Rewrite a whole core memory block: to reorganize it, condense it or fix many things at once.

    Args:
        label: The block (section) of core memory to rewrite, e.g. human or persona.
        new_content: The block's complete new text; everything left out is removed from the block.
    """
    _edit(ctx, lambda: ctx.core_memory.rewrite(label, new_content))


def memory_create_block(ctx: FunctionContext, label: str, description: str, content: str = "") -> None:
    """Create a new core memory block, always visible to you, for a new topic worth keeping in view.

    Args:
        label: A short name for the block: letters, digits, '-', '_' or '.' (e.g. projects).
        description: What belongs in this block, in one sentence.
        content: The block's first text (may be empty).
    """
    _edit(ctx, lambda: ctx.core_memory.create(label, content, description, DEFAULT_SECTION_LIMIT))


def memory_delete_block(ctx: FunctionContext, label: str) -> None:
    """Delete a core memory block and its text (keep anything still useful in archival memory first).

    Args:
        label: The block (section) of core memory to delete.
    """
    _edit(ctx, lambda: ctx.core_memory.delete(label))


BLOCK_FUNCTIONS = (memory_insert, memory_replace, memory_rethink, memory_create_block, memory_delete_block)
