"""SQLite's vectors in memory (``vectors.DenseIndex``) follow the table without counting it: new rows by their ids,
deleted ones by the count a trigger keeps (``embedding_deletions``), whoever deleted them and however (a delete, a
rewrite, a cascade); and a file from before that table still gives the right rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fakes import FakeEmbedder

from memagent.memory import schema
from memagent.memory.migrations import MIGRATIONS
from memagent.memory.store import Store

pytest.importorskip("numpy")

WORDS = ["apple pie", "banana bread", "cherry tart", "damson jam", "elder wine"]


def chat(store: Store, name: str, texts: list[str]) -> tuple[int, list[int]]:
    with store.transaction() as tx:
        agent_id = tx.create_agent(name, {}).id
        ids = [tx.add_message(agent_id, "user", text, {}) for text in texts]
    return agent_id, ids


def nearest(store: Store, agent_id: int, query: str, limit: int = 10) -> list[int]:
    embedder = FakeEmbedder()
    return store.dialect.dense_search(store._rows, "message", agent_id, embedder.model, embedder.query(query), limit)


def deletions(store: Store, agent_id: int) -> int:
    d = schema.embedding_deletions
    found = store._rows(sa.select(d.c.deleted).where(d.c.agent_id == agent_id))
    return int(found[0][0]) if found else 0


def test_a_trigger_counts_each_agents_deleted_vectors_whatever_deleted_them(tmp_path: Path) -> None:
    with Store(tmp_path / "m.db") as store:
        agent_id, ids = chat(store, "a", WORDS)
        other_id, _ = chat(store, "b", WORDS)
        store.embed_pending(FakeEmbedder())
        assert deletions(store, agent_id) == 0
        with store.transaction() as tx:
            tx.delete_messages([ids[4]])  # its vector goes by ON DELETE CASCADE
        assert deletions(store, agent_id) == 1
        with store.transaction() as tx:
            tx.update_message(ids[1], "blueberry muffin", {})  # its vector and the next turn's (its context changed)
        assert deletions(store, agent_id) == 3
        assert deletions(store, other_id) == 0


def test_rows_added_deleted_and_rewritten_by_another_process_show_in_the_next_search(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    path = tmp_path / "shared.db"
    with Store(path) as store, Store(path) as other:
        agent_id, ids = chat(store, "a", WORDS)
        store.embed_pending(embedder)
        assert ids[2] in nearest(store, agent_id, "cherry", 2)  # with the turn after it (cherry is its context)
        with other.transaction() as tx:
            tx.update_message(ids[2], "fig roll", {})
            added = tx.add_message(agent_id, "user", "cherry cola", {})
        assert ids[2] not in nearest(store, agent_id, "cherry")  # its vector is gone: not found until embedded again
        other.embed_pending(embedder)
        assert nearest(store, agent_id, "cherry", 1) == [added]
        assert ids[2] in nearest(store, agent_id, "fig", 2)  # embedded again with its new text
        assert sorted(nearest(store, agent_id, "x", 10)) == sorted([*ids, added])


def test_a_file_from_before_the_deletions_table_is_read_whole_for_each_search(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store(path, migrations=MIGRATIONS[:-1]) as store:
        agent_id, ids = chat(store, "a", WORDS)
        store.embed_pending(FakeEmbedder())
        assert ids[1] in nearest(store, agent_id, "banana", 2)
        with store.transaction() as tx:
            tx.delete_messages([ids[1]])
        assert ids[1] not in nearest(store, agent_id, "banana")
    with Store(path) as store:  # migrated: the table starts counting from here
        assert deletions(store, agent_id) == 0
        assert ids[0] in nearest(store, agent_id, "apple", 2)
