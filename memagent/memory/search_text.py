"""What the full-text index holds for a row: two columns of its own beside the stored ``text`` (which stays exactly
what the caller gave, and what search hits show): ``search_text``, the row itself with its role and date, and
``search_context``, the row before it, which counts half as much in the ranking.

- A recall message of a role search returns (``INDEXED_ROLES``) is indexed as ``(8 May 2023) user: text``, with
  the turn before it in the conversation as context (``assistant: ...``): questions name who said something and
  when, and many answers ("Yes, last week!") only make sense with the turn they answer. The row found is still
  the turn itself.
- Other rows (function results, rows without text) get ``""`` in both and stay out of the index: they never
  come back from recall search, and as index rows they skewed bm25's average row length.
- An archival passage is indexed as ``(8 May 2023) text``, with the agent's passage before it as context: a
  document loaded in chunks continues from one to the next, and memories inserted one after another are mostly
  about the same conversation.

Measured on LoCoMo's dev conversations (docs/BENCHMARKS.md, memory_quality): the context took recall@5 from
about .61 to .69 for both searches, and weighting it half (bm25 column weights; ts_rank's 'B' weight) to .70
and recall@1 from .26 to .39 (an answer no longer outranks the question it answers on the question's words).

The date is the local calendar day of ``created_at``, month in English whatever the locale. Written by
``Transaction`` with every row (in the step's transaction) and by the full-text migration for rows written before it.
"""

from __future__ import annotations

from datetime import datetime

SearchText = tuple[str, str]
"""(``search_context``, ``search_text``) of a row; ("", "") for a row that is not indexed."""

NOT_INDEXED: SearchText = ("", "")

CONTEXT_WEIGHT = 0.5
"""How much a word of the context counts against one of the row itself (bm25 column weight)."""

INDEXED_ROLES = ("user", "assistant")
"""Roles whose messages recall search returns: the only ones indexed."""

CONTEXT_CHARS = 1_000
"""Characters of the previous turn indexed with a message: enough for its topic words, not a second copy of a
long paste."""

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)


def day_text(moment: datetime) -> str:
    """``8 May 2023``: the local date of ``moment``."""
    local = moment.astimezone()
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


def is_indexed(role: str, text: str) -> bool:
    return role in INDEXED_ROLES and bool(text.strip())


def context_text(role: str, text: str) -> str:
    """What a message contributes as context to the one after it."""
    return f"{role}: {text[:CONTEXT_CHARS]}"


def message_search_text(role: str, text: str, created_at: datetime, previous: str | None) -> SearchText:
    """What a message is indexed as; ``previous`` is ``context_text`` of the indexed turn before it (None if it
    is the first)."""
    if not is_indexed(role, text):
        return NOT_INDEXED
    return previous or "", f"({day_text(created_at)}) {role}: {text}"


def passage_search_text(text: str, created_at: datetime, previous: str | None) -> SearchText:
    """What a passage is indexed as; ``previous`` is ``passage_context`` of the agent's passage before it."""
    if not text.strip():
        return NOT_INDEXED
    return previous or "", f"({day_text(created_at)}) {text}"


def columns(indexed: SearchText) -> dict[str, str]:
    """The values of the two columns."""
    return {"search_context": indexed[0], "search_text": indexed[1]}


def passage_context(text: str) -> str | None:
    """What a passage contributes as context to the next one (None: nothing, it is empty)."""
    return text[:CONTEXT_CHARS] if text.strip() else None
