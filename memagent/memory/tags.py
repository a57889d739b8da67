"""Tags on archival passages: what a tag may be, and the reads and writes of the ``passage_tags`` table.

A tag is a short label the model (or an import) puts on a passage, to narrow a later search to it. Stored tags are
normalised: trimmed, inner whitespace runs made one space, lower-case, cleaned like all text; a passage holds each
tag once. A passage has at most ``MAX_TAGS`` tags of at most ``MAX_TAG_CHARS`` characters each; anything else is a
``TagError`` whose message the model can act on (the functions return it as a "Failed" result).

The table (``schema.passage_tags``) holds (passage, agent, tag); its rows go with their passage or agent (ON DELETE
CASCADE). A database older than the table (opened read-only) has no tags: the store then reads none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from memagent.memory import schema
from memagent.text import clean_text

MAX_TAGS = 8
MAX_TAG_CHARS = 40
_SPACES = re.compile(r"\s+")


class TagError(ValueError):
    """Tags that can't be stored or searched; the message says what to change."""


def normalise_tags(tags: Iterable[Any] | None, what: str = "tags") -> tuple[str, ...]:
    """``tags`` as stored: each trimmed and lower-case, repeats dropped, sorted; TagError if one is not text, is
    empty or too long, or there are too many."""
    if tags is None:
        return ()
    if isinstance(tags, str):  # one tag written without the list around it
        tags = [tags]
    kept: dict[str, None] = {}
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise TagError(f"{what}[{i}] is not text: write each tag as a short string, e.g. [\"family\", \"travel\"].")
        cleaned = _SPACES.sub(" ", clean_text(tag)).strip().lower()
        if not cleaned:
            raise TagError(f"{what}[{i}] is empty: leave it out or write a word.")
        if len(cleaned) > MAX_TAG_CHARS:
            raise TagError(
                f"{what}[{i}] is {len(cleaned)} characters long; a tag is at most {MAX_TAG_CHARS}: use a word or two."
            )
        kept[cleaned] = None
    if len(kept) > MAX_TAGS:
        raise TagError(f"{what} has {len(kept)} tags; at most {MAX_TAGS} are allowed: keep the most useful ones.")
    return tuple(sorted(kept))


def tag_rows(passage_id: int, agent_id: int, tags: Sequence[str]) -> list[dict[str, Any]]:
    """The ``passage_tags`` rows of one passage (``tags`` already normalised)."""
    return [{"passage_id": passage_id, "agent_id": agent_id, "tag": tag} for tag in tags]


def select_tags(passage_ids: Sequence[int]) -> sa.Select[Any]:
    """(passage_id, tag) of the passages ``passage_ids``, each passage's tags in order."""
    t = schema.passage_tags
    return sa.select(t.c.passage_id, t.c.tag).where(t.c.passage_id.in_(list(passage_ids))).order_by(t.c.tag)


def select_agent_tags(agent_id: int) -> sa.Select[Any]:
    """(passage_id, tag) of every tagged passage of the agent (what an export holds)."""
    t = schema.passage_tags
    return sa.select(t.c.passage_id, t.c.tag).where(t.c.agent_id == agent_id).order_by(t.c.passage_id, t.c.tag)


def group_tags(rows: Iterable[sa.Row[Any]]) -> dict[int, tuple[str, ...]]:
    """passage id -> its tags, from rows of ``select_tags``."""
    grouped: dict[int, list[str]] = {}
    for row in rows:
        grouped.setdefault(int(row.passage_id), []).append(row.tag)
    return {passage_id: tuple(tags) for passage_id, tags in grouped.items()}
