"""A LoCoMo conversation stored the way memagent stores a chat and archival passages (see the docstring of
``bench/memory_quality.py`` for the choices: which speaker is the user, photo captions, dates).

Rows go through memagent's own code: the message shapes of ``memagent.messages``, ``Transaction.add_message``
with the text ``Agent._add`` stores, and the ``archival_memory_insert`` function itself on the FunctionContext
a step builds (``AgentMemory``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.locomo import Conversation, Skipped, moments
from memagent.functions.memory import builtin_functions
from memagent.functions.registry import FunctionFailed, clip_arguments
from memagent.memory.agent_memory import AgentMemory
from memagent.memory.core import CoreMemory
from memagent.memory.embed import Embedder
from memagent.memory.embed_worker import BATCH as EMBED_BATCH
from memagent.memory.store import Store, Transaction
from memagent.messages import Message, assistant_call, function_result, searchable_text, user_message
from memagent.text import clean_text

FUNCTIONS = builtin_functions()
"""The functions as the agent's registry builds them: what the model calls."""


@dataclass
class Stored:
    """A conversation in its database, and which turn each row is (tool -> row id -> dia_id)."""

    store: Store
    agent_id: int
    turn_of: dict[str, dict[int, str]]


def function_context(store: Store, agent_id: int, tx: Transaction) -> AgentMemory:
    """The FunctionContext ``Agent.step`` hands the functions, for an agent with empty core memory."""
    return AgentMemory(store, agent_id, CoreMemory({}), tx, on_send=lambda _text: None, on_pause=lambda _until: None)


def _add(tx: Transaction, agent_id: int, message: Message, moment: datetime, stored_text: str | None = None) -> int:
    """``Agent._add`` at ``moment``: search sees the message's searchable text unless told what to see."""
    text = searchable_text(message) if stored_text is None else stored_text
    return tx.add_message(agent_id, message["role"], text, message, moment)


def store_chat(tx: Transaction, agent_id: int, conversation: Conversation) -> dict[int, str]:
    """Every turn as a user message or an agent reply; returns message id -> dia_id of the turns that have one."""
    turn_of: dict[int, str] = {}
    for (_session, turn), moment in zip(conversation.turns, moments(conversation), strict=True):
        said = clean_text(turn.said)
        if turn.speaker == conversation.speaker_b:
            call = assistant_call(None, "send_message", clip_arguments({"message": said}))
            message_id = _add(tx, agent_id, call, moment)
            _add(tx, agent_id, function_result("send_message", True, None, moment), moment)
        else:
            message_id = _add(tx, agent_id, user_message(said, moment), moment, stored_text=said)
        if turn.dia_id:
            turn_of[message_id] = turn.dia_id
    return turn_of


def passage_text(day: str | None, speaker: str, said: str) -> str:
    """``(8 May 2023) Caroline: text``; parts the data lacks are left out."""
    return " ".join(part for part in (f"({day})" if day else "", f"{speaker}:" if speaker else "", said) if part)


def store_passages(store: Store, agent_id: int, conversation: Conversation, skipped: Skipped) -> dict[int, str]:
    """Every turn as a passage, inserted by the ``archival_memory_insert`` function; returns passage id -> dia_id.

    The function returns no id, so ids are matched by order: passages are numbered as they are inserted. A turn
    the function refuses (too long for one call) is counted and left out, as the model would have been told."""
    insert = FUNCTIONS.get("archival_memory_insert")
    assert insert is not None
    before = len(store.all_passages(agent_id))
    dia_ids = []
    with store.transaction() as tx:
        context = function_context(store, agent_id, tx)
        for session, turn in conversation.turns:
            try:
                insert(context, content=passage_text(session.day, turn.speaker, clean_text(turn.said)))
            except FunctionFailed:
                skipped.add("turns archival_memory_insert refused (not in archival)")
                continue
            dia_ids.append(turn.dia_id)
    passages = store.all_passages(agent_id)[before:]
    if len(passages) != len(dia_ids):
        raise RuntimeError(f"{len(dia_ids)} passages were inserted but {len(passages)} are stored")
    return {passage.id: dia_id for passage, dia_id in zip(passages, dia_ids, strict=True) if dia_id}


def store_conversation(
    path: Path, conversation: Conversation, skipped: Skipped, embedder: Embedder | None = None
) -> Stored:
    """A new database at ``path`` with one agent that has had this conversation; the caller closes its store.
    With an ``embedder``, every row is then given its vector as the background worker gives it (after the rows'
    transactions committed, ``Store.embed_pending``) and search is hybrid."""
    store = Store(path)
    try:
        with store.transaction() as tx:
            agent_id = tx.create_agent("locomo", {}).id
            chat = store_chat(tx, agent_id, conversation)
        passages = store_passages(store, agent_id, conversation, skipped)
        if embedder is not None:
            store.embed_pending(embedder, batch=EMBED_BATCH)
            store.use_embedder(embedder)
    except BaseException:
        store.close()
        raise
    return Stored(store, agent_id, {"conversation_search": chat, "archival_memory_search": passages})


class CachedEmbedder:
    """An embedder whose passage vectors are kept on disk by model and text (``--cache``), so a second run of the
    benchmark skips the ~10 minutes of embedding the rows; queries always go to the model (their cost is part of
    each search's latency). What it caches is exactly what the model returned for the same text."""

    def __init__(self, inner: Embedder, folder: Path) -> None:
        self.inner, self.folder = inner, folder
        self.model, self.dimension = inner.model, inner.dimension
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, text: str) -> Path:
        return self.folder / (hashlib.sha1(f"{self.model}\0passage\0{text}".encode()).hexdigest() + ".f32")

    def passages(self, texts: Sequence[str]) -> list[bytes]:
        paths = [self._path(text) for text in texts]
        missing = [i for i, path in enumerate(paths) if not path.is_file()]
        for i, vector in zip(missing, self.inner.passages([texts[i] for i in missing]), strict=True):
            paths[i].write_bytes(vector)
        return [path.read_bytes() for path in paths]

    def query(self, text: str) -> bytes:
        return self.inner.query(text)
