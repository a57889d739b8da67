"""Auto recall: memory that reaches the model even when it doesn't search.

A small local model seldom calls ``conversation_search`` or ``archival_memory_search`` when it should, so facts
that left the context window are as good as lost to it. With auto recall on (a preset's ``auto_recall`` key, or
``--auto-recall``), the user's message is searched for in recall memory (user and assistant turns, not those
still in the context window) and in archival memory before the agent sees it, and the best few hits travel with
that message as retrieved memory: one line each, ``(2026-11-02) user: I live in Lisbon``, at most
``AutoRecall.hits`` lines and ``AutoRecall.max_tokens`` tokens.

``search_memory`` is the one place the searches are made (full text today; a fused dense + full-text search can
replace it there alone). The two lists are interleaved, best first, and a line whose words were already taken is
dropped. Tokens are counted by ``counter``: the model's own tokenizer for in-process backends (a local call of a
few microseconds a line), else the 4-characters estimate (a server's tokenizer is a round trip per line, not worth
it for a bound).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from itertools import zip_longest

from memagent.llm.backends.base import Backend, estimate_tokens
from memagent.memory.rows import Passage, StoredMessage
from memagent.memory.search_text import INDEXED_ROLES
from memagent.memory.store import Store
from memagent.messages import AssistantCall, message_from_dict

LINE_CHARS = 400
"""A hit longer than this (a pasted document) is cut to it before it is counted: one paste must not take the
whole budget."""

FETCH_LIMIT = 100
"""At most this many recall rows are read for one turn (the hits wanted plus the messages in context)."""

HITS_LIMIT = 20
MAX_TOKENS_LIMIT = 4000


@dataclass(frozen=True)
class AutoRecall:
    """How much retrieved memory a user message may carry: at most ``hits`` lines and ``max_tokens`` tokens."""

    hits: int = 3
    max_tokens: int = 200


TokenCounter = Callable[[str], int]


def token_counter(backend: Backend) -> TokenCounter:
    """The backend's tokenizer when it runs in this process (cheap), else the character estimate."""
    return backend.count_tokens if backend.capabilities.in_process else estimate_tokens


def search_memory(store: Store, agent_id: int, query: str, count: int) -> tuple[list[StoredMessage], list[Passage]]:
    """The searches auto recall makes: up to ``count`` recall rows (user and assistant turns) and archival
    passages for ``query``, best first: the store's own searches, hybrid (full text fused with vectors) when the
    store has an embedder (``Store.use_embedder``), full text otherwise."""
    messages = store.search_messages(agent_id, query, page_size=count, roles=INDEXED_ROLES).items
    passages = store.search_passages(agent_id, query, page_size=count).items
    return list(messages), list(passages)


def retrieve(
    store: Store, agent_id: int, text: str, *, exclude: Collection[int], settings: AutoRecall, counter: TokenCounter
) -> tuple[str, ...]:
    """The retrieved-memory lines for a user message ``text``: recall hits not in ``exclude`` (the messages in the
    context window) and archival hits, interleaved, without repeats, within ``settings``' bounds."""
    query = text.strip()
    if not query:
        return ()
    count = min(settings.hits + len(exclude), FETCH_LIMIT)
    messages, passages = search_memory(store, agent_id, query, count)
    recall = [line for m in messages if m.id not in exclude and (line := message_line(m)) is not None]
    archival = [line for p in passages if (line := passage_line(p)) is not None]
    return bound(_unique(_interleave(recall, archival), query), settings, counter)


def message_line(message: StoredMessage) -> tuple[str, str] | None:
    """(the line, the words it is about) for a recall row a person would call memory: what the user said, what
    the agent said with send_message; None for heartbeats, alerts, login notices and other calls."""
    typed = message_from_dict(message.payload)
    if message.role == "user" and typed.kind == "user_message":
        words = message.text
    elif isinstance(typed, AssistantCall):
        words = typed.said
    else:
        return None
    return _line(message, message.role, words)


def passage_line(passage: Passage) -> tuple[str, str] | None:
    return _line(passage, "archival memory", passage.text)


def _line(row: StoredMessage | Passage, label: str, words: str) -> tuple[str, str] | None:
    words = " ".join(words.split())
    if not words:
        return None
    if len(words) > LINE_CHARS:
        words = words[:LINE_CHARS] + "..."
    return f"({row.created_at.astimezone().date().isoformat()}) {label}: {words}", words


def _interleave(first: list[tuple[str, str]], second: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for pair in zip_longest(first, second):
        yield from (item for item in pair if item is not None)


def _unique(lines: Iterator[tuple[str, str]], query: str) -> Iterator[str]:
    """Each line once by its words, and never the user's message itself said again."""
    seen = {query.casefold()}
    for line, words in lines:
        key = words.casefold()
        if key not in seen:
            seen.add(key)
            yield line


def bound(lines: Iterator[str], settings: AutoRecall, counter: TokenCounter) -> tuple[str, ...]:
    """The best lines that fit: at most ``settings.hits``, their tokens summing to ``settings.max_tokens`` or less
    (a line that doesn't fit is skipped for a shorter one after it)."""
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = counter(line)
        if used + cost <= settings.max_tokens:
            kept.append(line)
            used += cost
            if len(kept) == settings.hits:
                break
    return tuple(kept)
