"""The base function set: how the agent talks to the user and edits and searches its memory.

Each function is plain typed Python; its docstring is what the model reads (see registry.py). The first
argument is the FunctionContext the agent passes in. A function signals failure by raising
FunctionFailed (or any exception): the agent turns it into a "Failed" result for the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any, Literal

from memagent.functions.blocks import BLOCK_FUNCTIONS
from memagent.functions.context import FunctionContext, SearchResults
from memagent.functions.registry import FunctionFailed, FunctionRegistry
from memagent.memory.agent_memory import RECALL_ROLES
from memagent.memory.core import CoreMemoryEditError
from memagent.memory.filters import SearchFilter
from memagent.memory.tags import TagError, normalise_tags
from memagent.messages import format_time

MAX_PAUSE_MINUTES = 360
HIT_CHAR_LIMIT = 1000
"""Characters of one search hit shown to the model: a page of long messages must still fit the context."""


def _format_page(results: SearchResults, lines: list[str]) -> str:
    # A store stops counting matches after a few pages; its page then says ``capped`` (not every SearchResults
    # has the attribute: read it with a default).
    more = "more than " if getattr(results, "capped", False) else ""
    if results.total == 0:
        return "No results found."
    if not lines:
        return f"No results on page {results.page} (there are {more}{results.num_pages} pages, numbered from 0)."
    page = results.page + 1
    pages = f"{page} of more than {results.num_pages}" if more else f"{page}/{results.num_pages}"
    header = f"Showing {len(lines)} of {more}{results.total} results (page {pages}):"
    return f"{header} {json.dumps(lines, ensure_ascii=False)}"


def _hit_text(text: str) -> str:
    if len(text) <= HIT_CHAR_LIMIT:
        return text
    return f"{text[:HIT_CHAR_LIMIT]}... [{len(text) - HIT_CHAR_LIMIT:,} more characters]"


def _check_page(page: int) -> int:
    if page < 0:
        raise FunctionFailed("page must be 0 or more (0 is the first page).")
    return page


def _checked_dates(filters: SearchFilter) -> SearchFilter:
    if filters.start is not None and filters.end is not None and filters.end < filters.start:
        raise FunctionFailed(f"end_date {filters.end} is before start_date {filters.start}: swap them.")
    return filters


def _checked_tags(tags: list[str] | None) -> tuple[str, ...]:
    try:
        return normalise_tags(tags)
    except TagError as exc:
        raise FunctionFailed(str(exc)) from exc


def _tags_text(passage: object) -> str:
    tags = getattr(passage, "tags", ())
    return f"tags: {', '.join(tags)}, " if tags else ""


# --------------------------------------------------------------------------------------------------
def send_message(ctx: FunctionContext, message: str) -> None:
    """Sends a message to the human user.

    Args:
        message: Message contents. All unicode (including emojis) are supported.
    """
    if not message.strip():
        raise FunctionFailed("message is empty: write the text the user should see.")
    ctx.send_message(message)


def pause_heartbeats(ctx: FunctionContext, minutes: int) -> str:
    """Temporarily ignore timed heartbeats. You may still receive messages from manual heartbeats and other events.

    Args:
        minutes: Number of minutes to ignore heartbeats for. Max value of 360 minutes (6 hours).
    """
    minutes = max(0, min(minutes, MAX_PAUSE_MINUTES))
    ctx.pause_heartbeats(minutes)
    return f"Pausing timed heartbeats for {minutes} min"


def core_memory_append(ctx: FunctionContext, name: str, content: str) -> None:
    """Append to the contents of core memory.

    Args:
        name: Section of the memory to be edited (persona or human).
        content: Content to write to the memory. All unicode (including emojis) are supported.
    """
    try:
        ctx.core_memory.append(name, content)
    except CoreMemoryEditError as exc:
        raise FunctionFailed(str(exc)) from exc
    ctx.core_memory_changed()


def core_memory_replace(ctx: FunctionContext, name: str, old_content: str, new_content: str) -> None:
    """Replace the contents of core memory. To delete memories, use an empty string for new_content.

    Args:
        name: Section of the memory to be edited (persona or human).
        old_content: String to replace. Must be an exact match.
        new_content: Content to write to the memory. All unicode (including emojis) are supported.
    """
    try:
        ctx.core_memory.replace(name, old_content, new_content)
    except CoreMemoryEditError as exc:
        raise FunctionFailed(str(exc)) from exc
    ctx.core_memory_changed()


def conversation_search(
    ctx: FunctionContext,
    query: str,
    page: int = 0,
    role: Literal["user", "assistant"] | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
) -> str:
    """Search prior conversation history using full-text search.

    Args:
        query: String to search for.
        page: Allows you to page through results. Only use on a follow-up query. Defaults to 0 (first page).
        role: Optional: only messages written by "user" or only your own ("assistant").
        start_date: Optional: only messages from this day on, in the format 'YYYY-MM-DD'.
        end_date: Optional: only messages up to and including this day, in the format 'YYYY-MM-DD'.
    """
    if role is not None and role not in RECALL_ROLES:
        raise FunctionFailed(f"role {role!r} is not one of {' or '.join(RECALL_ROLES)}: use one, or leave role out.")
    roles = None if role is None else (role,)
    filters = _checked_dates(SearchFilter(roles=roles, start=start_date, end=end_date))
    results = ctx.search_recall(query, _check_page(page), filters)
    lines = [f"timestamp: {format_time(m.created_at)}, {m.role} - {_hit_text(m.text)}" for m in results.items]
    return _format_page(results, lines)


def conversation_search_date(ctx: FunctionContext, start_date: date, end_date: date, page: int = 0) -> str:
    """Search prior conversation history using a date range.

    Args:
        start_date: The start of the date range to search, in the format 'YYYY-MM-DD'.
        end_date: The end of the date range to search, in the format 'YYYY-MM-DD'.
        page: Allows you to page through results. Only use on a follow-up query. Defaults to 0 (first page).
    """
    if end_date < start_date:
        raise FunctionFailed(f"end_date {end_date} is before start_date {start_date}.")
    results = ctx.search_recall_by_date(start_date, end_date, _check_page(page))
    lines = [f"timestamp: {format_time(m.created_at)}, {m.role} - {_hit_text(m.text)}" for m in results.items]
    return _format_page(results, lines)


def archival_memory_insert(ctx: FunctionContext, content: str, tags: list[str] | None = None) -> None:
    """Add to archival memory. Make sure to phrase the memory contents such that it can be easily queried later.

    Args:
        content: Content to write to the memory. All unicode (including emojis) are supported.
        tags: Optional short labels to find the memory by later, e.g. ["family", "travel"].
    """
    if not content.strip():
        raise FunctionFailed("content is empty: write the text to remember.")
    ctx.insert_archival(content, _checked_tags(tags))


def archival_memory_search(
    ctx: FunctionContext,
    query: str,
    page: int = 0,
    tags: list[str] | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
) -> str:
    """Search archival memory using full-text search.

    Args:
        query: String to search for.
        page: Allows you to page through results. Only use on a follow-up query. Defaults to 0 (first page).
        tags: Optional: only memories with at least one of these tags.
        start_date: Optional: only memories saved from this day on, in the format 'YYYY-MM-DD'.
        end_date: Optional: only memories saved up to and including this day, in the format 'YYYY-MM-DD'.
    """
    filters = _checked_dates(SearchFilter(tags=_checked_tags(tags), start=start_date, end=end_date))
    results = ctx.search_archival(query, _check_page(page), filters)
    lines = [
        f"timestamp: {format_time(p.created_at)}, {_tags_text(p)}memory: {_hit_text(p.text)}" for p in results.items
    ]
    return _format_page(results, lines)


WITH_FILTERS: tuple[tuple[Callable[..., Any], tuple[str, ...], str], ...] = (
    (conversation_search, ("role", "start_date", "end_date"), "conversation_search+filters"),
    (archival_memory_insert, ("tags",), "archival_memory_insert+tags"),
    (archival_memory_search, ("tags", "start_date", "end_date"), "archival_memory_search+filters"),
)
"""Functions with optional filters, each offered in two forms: without them under its name (what the default preset
lists for the tiny default model: the filters cost 164 prompt tokens, and a wrongly guessed tag or date hides what it
searched for), and whole under the key given (what a preset for stronger models lists, e.g. memgpt_blocks)."""


def builtin_functions() -> FunctionRegistry:
    registry = FunctionRegistry()
    registry.register(send_message, heartbeat=False)
    registry.register(pause_heartbeats, heartbeat=False)
    filters: dict[str, tuple[tuple[str, ...], str]] = {fn.__name__: (extra, key) for fn, extra, key in WITH_FILTERS}
    for fn in (
        core_memory_append,
        core_memory_replace,
        conversation_search,
        conversation_search_date,
        archival_memory_insert,
        archival_memory_search,
        *BLOCK_FUNCTIONS,
    ):
        extra, key = filters.get(fn.__name__, ((), fn.__name__))
        registry.register(fn, hide=extra)  # the small form, under the function's name
        if extra:
            registry.register(fn, key=key)  # the whole signature
    return registry


# Searches page their own results, so they are exempt from the result truncation limit.
SEARCH_FUNCTIONS = frozenset({"conversation_search", "conversation_search_date", "archival_memory_search"})
