"""Tests for the store: schema migrations, CRUD, transactions, full-text search, paging, errors.

The tests of behaviour run on both stores (the ``store`` fixture: an in-memory SQLite database, then a fresh
PostgreSQL database); those of SQLite's files, pragmas and FTS5 plan run on SQLite (PostgreSQL's own are in
``test_store_postgres.py``)."""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_server import BOTH_STORES
from sqlalchemy import Connection

from memagent.errors import StoreError, UserError
from memagent.memory.migrations import LATEST_VERSION, MIGRATIONS, Migration, fts_query
from memagent.memory.store import AgentRow, SearchPage, Store, unique_agent_name


@pytest.fixture(params=BOTH_STORES)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    s = Store(request.getfixturevalue("pg_url")) if request.param == "postgresql" else Store.in_memory()
    yield s
    s.close()


@pytest.fixture
def sqlite_store() -> Iterator[Store]:
    s = Store.in_memory()
    yield s
    s.close()


def make_agent(store: Store, name: str = "agent", state: dict | None = None) -> AgentRow:
    with store.transaction() as tx:
        return tx.create_agent(name, state or {})


def raw(path: Path) -> sqlite3.Connection:
    """A second, independent connection to the same file (what another process would have)."""
    return sqlite3.connect(path, isolation_level=None, timeout=0.05)


# ------------------------------------------------------------------------------------ migrations


def test_migrations_build_the_schema_in_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dirs" / "memagent.db"
    with Store(path) as s:
        assert s.schema_version == LATEST_VERSION >= 1
    conn = raw(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"agents", "messages", "passages", "messages_fts", "passages_fts"} <= names
    assert {"messages_fts_ai", "messages_fts_ad", "messages_fts_au", "passages_fts_ai"} <= names
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION


def test_reopening_runs_no_migration_and_keeps_data(tmp_path: Path) -> None:
    calls: list[int] = []

    def spy(number: int) -> Migration:
        def run(conn: Connection) -> None:
            calls.append(number)
            MIGRATIONS[number - 1](conn)

        return run

    spies = [spy(n) for n in range(1, LATEST_VERSION + 1)]
    path = tmp_path / "m.db"
    with Store(path, migrations=spies) as s:
        make_agent(s, "keeper", {"x": 1})
    assert calls == list(range(1, LATEST_VERSION + 1))
    with Store(path, migrations=spies) as s:
        assert s.find_agent("keeper").state == {"x": 1}
        assert s.schema_version == LATEST_VERSION
    assert calls == list(range(1, LATEST_VERSION + 1))  # nothing ran the second time


def test_a_failing_migration_leaves_the_file_at_its_old_version(tmp_path: Path) -> None:
    def broken(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    path = tmp_path / "m.db"
    with pytest.raises(RuntimeError, match="boom"):
        Store(path, migrations=[*MIGRATIONS, broken])
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0


def test_a_schema_newer_than_this_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    Store(path).close()
    raw(path).execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value)
    assert "newer memagent" in str(info.value)


@pytest.mark.filterwarnings("ignore:Did not recognize type 'vector'")  # pgvector's type, unknown to SQLAlchemy
def test_the_table_definitions_match_the_migrated_database(database: str) -> None:
    """schema.py (what statements are written against) and the migrations (what creates the tables) agree."""
    import sqlalchemy as sa

    from memagent.memory import schema

    Store(database).close()
    engine = sa.create_engine(database if "://" in database else f"sqlite:///{database}")
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in (schema.agents, schema.messages, schema.passages, schema.passage_tags, schema.embeddings):
            columns = {column["name"] for column in inspector.get_columns(table.name)} - {"search_vector"}
            assert columns == {column.name for column in table.columns}, table.name
    engine.dispose()


# --------------------------------------------------------------------------------------- agents


def test_agent_crud(store: Store) -> None:
    created = make_agent(store, "zed", {"persona": "p"})
    make_agent(store, "alpha")
    assert created.state == {"persona": "p"}
    assert store.find_agent("zed") == created
    assert [a.name for a in store.list_agents()] == ["alpha", "zed"]
    assert store.find_agent("nobody") is None

    with store.transaction() as tx:
        tx.save_agent_state(created.id, {"persona": "q", "ids": [1, 2]})
    saved = store.find_agent("zed")
    assert saved.state == {"persona": "q", "ids": [1, 2]}
    assert saved.updated_at >= saved.created_at == created.created_at

    with store.transaction() as tx:
        assert tx.delete_agent("zed") is True
        assert tx.delete_agent("zed") is False
    assert store.find_agent("zed") is None
    assert [a.name for a in store.list_agents()] == ["alpha"]


def test_a_taken_name_is_a_store_error(database: str) -> None:
    with Store(database) as s:
        make_agent(s, "dup")
        with pytest.raises(StoreError) as info:
            make_agent(s, "dup")
        assert "'dup'" in str(info.value) and s.where in str(info.value)
        assert len(s.list_agents()) == 1


def test_timestamps_are_aware_utc_and_round_trip(store: Store) -> None:
    agent = make_agent(store)
    assert agent.created_at.utcoffset() == timedelta(0)
    moment = datetime(2024, 5, 1, 11, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    with store.transaction() as tx:
        mid = tx.add_message(agent.id, "user", "hi", {"role": "user"}, created_at=moment)
        pid = tx.add_passage(agent.id, "fact", created_at=moment)
    stored = store.get_messages(agent.id, [mid])[0].created_at
    assert stored == moment and stored.utcoffset() == timedelta(0) and stored.hour == 9
    assert [(p.id, p.created_at) for p in store.list_passages(agent.id, 10)] == [(pid, moment)]


def test_missing_rows_and_agents_are_store_errors(store: Store) -> None:
    agent = make_agent(store)
    with pytest.raises(StoreError, match="no longer exists"), store.transaction() as tx:
        tx.add_message(agent.id + 99, "user", "x", {})
    with pytest.raises(StoreError, match="no longer exists"), store.transaction() as tx:
        tx.save_agent_state(agent.id + 99, {})
    with pytest.raises(StoreError, match="no longer exists"), store.transaction() as tx:
        tx.update_message(12345, "x", {})


# ------------------------------------------------------------------------------------- messages


def test_messages_come_back_in_the_order_asked(store: Store) -> None:
    agent = make_agent(store)
    with store.transaction() as tx:
        ids = [tx.add_message(agent.id, "user", f"m{i}", {"role": "user", "content": f"m{i}"}) for i in range(5)]
    assert ids == sorted(ids)
    wanted = [ids[3], ids[0], ids[4], ids[1]]
    got = store.get_messages(agent.id, wanted)
    assert [m.id for m in got] == wanted
    assert [m.payload["content"] for m in got] == ["m3", "m0", "m4", "m1"]
    assert store.count_messages(agent.id) == 5


def test_get_messages_refuses_to_drop_missing_ids(store: Store) -> None:
    agent = make_agent(store)
    with store.transaction() as tx:
        mid = tx.add_message(agent.id, "user", "x", {})
    with pytest.raises(StoreError, match=str(mid + 1)):
        store.get_messages(agent.id, [mid, mid + 1])


def test_update_and_delete_keep_the_search_index_in_sync(store: Store) -> None:
    agent = make_agent(store)
    with store.transaction() as tx:
        mid = tx.add_message(agent.id, "assistant", "old wording", {"v": 1})
        other = tx.add_message(agent.id, "assistant", "old again", {"v": 1})
        tx.update_message(mid, "new phrasing", {"v": 2})
    assert [m.id for m in store.search_messages(agent.id, "old").items] == [other]
    # The rewritten message is found, and so is the turn after it, whose context it is (search_text.py).
    assert [m.payload for m in store.search_messages(agent.id, "phrasing").items] == [{"v": 2}, {"v": 1}]
    with store.transaction() as tx:
        assert tx.delete_messages([mid, 999]) == 1
    assert store.search_messages(agent.id, "phrasing").total == 0  # nor is it the next turn's context any more
    assert store.count_messages(agent.id) == 1


# --------------------------------------------------------------------------------- transactions


def test_a_transaction_that_raises_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(ValueError, match="mid-step"), store.transaction() as tx:
        agent = tx.create_agent("ghost", {})
        tx.add_message(agent.id, "user", "vanishing words", {})
        tx.add_passages(agent.id, ["vanishing passage"])
        raise ValueError("mid-step failure")
    assert store.find_agent("ghost") is None
    assert store.list_agents() == []
    assert store.search_messages(agent.id, "vanishing").total == 0
    assert store.count_passages(agent.id) == 0


def test_reads_inside_a_transaction_see_its_writes(store: Store) -> None:
    with store.transaction() as tx:
        agent = tx.create_agent("fresh", {})
        tx.add_message(agent.id, "user", "uncommitted text", {})
        assert store.find_agent("fresh") is not None
        assert store.search_messages(agent.id, "uncommitted").total == 1


def test_nested_transaction_rolls_back_only_itself(store: Store) -> None:
    with store.transaction() as outer:
        agent = outer.create_agent("outer", {})
        with pytest.raises(KeyError), store.transaction() as inner:
            inner.add_message(agent.id, "user", "inner only", {})
            raise KeyError("inner")
        outer.add_message(agent.id, "user", "outer kept", {})
    assert [m.text for m in store.search_messages(agent.id, "inner outer").items] == ["outer kept"]


def test_a_finished_transaction_cannot_write(store: Store) -> None:
    with store.transaction() as tx:
        pass
    with pytest.raises(RuntimeError, match="already"):
        tx.create_agent("late", {})
    assert store.find_agent("late") is None


# --------------------------------------------------------------------------------------- search


def test_documents_matching_more_terms_rank_first(store: Store) -> None:
    agent = make_agent(store)
    with store.transaction() as tx:
        tx.add_passages(agent.id, [f"filler text number {i}" for i in range(30)])
        one = tx.add_passage(agent.id, "apple pie filler words")
        after_one = tx.add_passage(agent.id, "filler")  # each passage is the next one's context: keep them apart
        three = tx.add_passage(agent.id, "apple banana cherry words")
        tx.add_passage(agent.id, "filler")
        two = tx.add_passage(agent.id, "banana cherry filler words")
    result = store.search_passages(agent.id, "cherry apple banana")
    ids = [p.id for p in result.items]
    assert ids[:2] == [three, two]
    assert ids.index(one) < ids.index(after_one)  # one term of its own beats the same term as context
    assert result.total == 5  # the fillers match by their context


def test_totals_and_paging(store: Store) -> None:
    agent = make_agent(store)
    with store.transaction() as tx:
        for i in range(10):
            tx.add_message(agent.id, "user", f"hay {i}", {})  # first: a needle row is not their context
        matching = [tx.add_message(agent.id, "user", f"needle number {i}", {}) for i in range(37)]
        tx.add_passages(agent.id, ["hay"] * 4 + [f"needle passage {i}" for i in range(37)])

    for search in (store.search_messages, store.search_passages):
        pages = [search(agent.id, "needle", page=p, page_size=5) for p in range(9)]
        assert all(p.total == 37 and p.num_pages == 8 and p.page_size == 5 for p in pages)
        assert [len(p.items) for p in pages] == [5] * 7 + [2, 0]
        assert pages[8].page == 8
        seen = [item.id for p in pages for item in p.items]
        assert len(set(seen)) == 37
    message_ids = {m.id for p in range(8) for m in store.search_messages(agent.id, "needle", page=p).items}
    assert message_ids == set(matching)


def test_empty_results_have_one_page_and_bad_paging_is_rejected(store: Store) -> None:
    agent = make_agent(store)
    assert store.search_messages(agent.id, "absent") == SearchPage([], 0, 0, 1, 5)
    with pytest.raises(ValueError):
        store.search_passages(agent.id, "x", page=-1)
    with pytest.raises(ValueError):
        store.search_passages(agent.id, "x", page_size=0)


def test_search_is_per_agent_and_filters_roles(store: Store) -> None:
    a, b = make_agent(store, "a"), make_agent(store, "b")
    with store.transaction() as tx:
        tx.add_message(a.id, "user", "shared word from user", {})
        tx.add_message(a.id, "assistant", "shared word from assistant", {})
        tx.add_message(a.id, "function", "shared word in a function result", {})
        tx.add_message(b.id, "user", "shared word elsewhere", {})
    assert store.search_messages(a.id, "shared").total == 2  # function results are not indexed
    only = store.search_messages(a.id, "shared", roles=["user", "assistant"])
    assert sorted(m.role for m in only.items) == ["assistant", "user"] and only.total == 2
    assert store.search_messages(b.id, "shared").total == 1


@pytest.mark.parametrize("kind", ["messages", "passages"])
def test_search_reads_the_full_text_matches_first(sqlite_store: Store, kind: str) -> None:
    """Starting from the agent's rows and probing the index per row made a search take minutes at 1M rows
    (bench/memory_scale.py). Every statement a search runs must start from the FTS5 table."""
    from sqlalchemy import event

    store = sqlite_store
    agent = make_agent(store)
    with store.transaction() as tx:
        for i in range(50):
            tx.add_message(agent.id, "user", f"note {i} about cycling", {})
        tx.add_passages(agent.id, [f"passage {i} about cycling" for i in range(50)])
    statements: list[tuple[str, object]] = []
    engine = store._engine
    listener = lambda conn, cursor, sql, params, context, many: statements.append((sql, params))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        found = store.search_messages(agent.id, "cycling") if kind == "messages" else store.search_passages(
            agent.id, "cycling"
        )
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert found.total == 50
    searches = [(sql, params) for sql, params in statements if "MATCH" in sql]
    assert len(searches) >= 1
    for sql, params in searches:
        plan = store._conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        steps = [row[-1] for row in plan if not row[-1].startswith(("CO-ROUTINE", "SCAN (subquery"))]
        assert steps[0].startswith(f"SCAN {kind}_fts"), plan


def test_search_folds_case_and_diacritics(store: Store) -> None:
    agent = make_agent(store)
    with store.transaction() as tx:
        tx.add_passage(agent.id, "Meet at the Café Müller")
    assert store.search_passages(agent.id, "cafe MULLER").total == 1
    assert store.search_passages(agent.id, "café").total == 1


def test_empty_query_matches_everything_newest_first(store: Store) -> None:
    agent = make_agent(store)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with store.transaction() as tx:
        ids = [tx.add_message(agent.id, "user", f"m{i}", {}, created_at=start + timedelta(hours=i)) for i in range(3)]
    assert [m.id for m in store.search_messages(agent.id, "   ").items] == ids[::-1]


LITERAL_CORPUS = {
    "quoted": "she quoted the poem",
    "foo": "foo fighters",
    "foobar": "foobar baz",
    "and": "salt and pepper",
    "or": "this or that",
    "a": "plan a",
    "b": "plan b",
    "not": "do not panic",
    "x": "x marks the spot",
    "near": "NEAR the river",
    "unbalanced": "unbalanced load",
    "col": "col is short for column",
    "val": "val kilmer",
    "start": "start here",
    "minus": "minus sign",
    "emoji": "party 😀 time",
    "singles": "it''s doubled",
    "dquote": 'say "hi" nicely',
    "plain": "nothing to see",
}

LITERAL_CASES = [
    ('"quoted"', {"quoted"}),
    ("foo*", {"foo"}),  # no prefix search: "foobar" must not match
    ("AND", {"and"}),  # a stopword, but nothing else is left
    ("a OR b", {"b"}),  # "a" and "or" are stopwords
    ("NOT x", {"x"}),
    ("NEAR(a b)", {"near", "b"}),
    ("(unbalanced", {"unbalanced"}),
    ("col:val", {"col", "val"}),
    ("^start", {"start"}),
    ("-minus", {"minus"}),
    ("😀", {"emoji"}),
    ("''", {"singles"}),
    ('"', {"dquote"}),
]


@pytest.mark.parametrize(("query", "expected"), LITERAL_CASES, ids=[c[0] for c in LITERAL_CASES])
@pytest.mark.parametrize("kind", ["messages", "passages"])
def test_search_text_is_literal(store: Store, kind: str, query: str, expected: set[str]) -> None:
    """Each text in its own agent, so no message is another's context: the hits are the texts' own matches."""
    key_of = {text: key for key, text in LITERAL_CORPUS.items()}
    agents = {}
    with store.transaction() as tx:
        for key, text in LITERAL_CORPUS.items():
            agents[key] = tx.create_agent(f"literal-{key}", {}).id
            if kind == "messages":
                tx.add_message(agents[key], "user", text, {})
            else:
                tx.add_passage(agents[key], text)
    search = store.search_messages if kind == "messages" else store.search_passages
    results = [search(agent_id, query, page_size=50) for agent_id in agents.values()]
    assert {key_of[item.text] for result in results for item in result.items} == expected
    assert sum(result.total for result in results) == len(expected)


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('NEAR(a "b"') == '"NEAR" OR "a" OR "b"'
    assert fts_query("Cat cat CAT dog") == '"Cat" OR "dog"'
    assert fts_query("😀 -- ''") is None


@pytest.fixture(scope="module", params=BOTH_STORES)
def fuzz_store(request: pytest.FixtureRequest) -> Iterator[tuple[Store, int]]:
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        schema_name = server.create_schema()
        s = Store(server.url(schema=schema_name))
    else:
        s = Store.in_memory()
    with s.transaction() as tx:
        agent = tx.create_agent("fuzz", {})
        tx.add_message(agent.id, "user", 'some ordinary words (and) "quotes" * ^ : -', {})
        tx.add_passage(agent.id, "other ordinary words NEAR OR NOT")
    yield s, agent.id
    s.close()
    if request.param == "postgresql":
        server.drop_schema(schema_name)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.text(max_size=40))
def test_no_query_raises(fuzz_store: tuple[Store, int], query: str) -> None:
    s, agent_id = fuzz_store
    for result in (s.search_messages(agent_id, query), s.search_passages(agent_id, query)):
        assert 0 <= len(result.items) <= result.total <= 1


# ----------------------------------------------------------------------------------- date range


@pytest.fixture
def eastern_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time fixed at UTC-5 (no tzdata needed), so "local" and "UTC" days differ."""
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_date_range_is_inclusive_in_local_time(store: Store, eastern_time: None) -> None:
    agent = make_agent(store)
    local = datetime(2024, 3, 10).astimezone().tzinfo
    assert local.utcoffset(None) == timedelta(hours=-5)
    stamps = {
        "before": datetime(2024, 3, 9, 23, 59, 59, 999999, tzinfo=local),
        "late_utc": datetime(2024, 3, 10, 2, 0, tzinfo=UTC),  # still March 9th locally
        "first": datetime(2024, 3, 10, 0, 0, tzinfo=local),
        "naive_mid": datetime(2024, 3, 11, 12, 0),  # naive = local time
        "last": datetime(2024, 3, 12, 23, 59, 59, 999999, tzinfo=local),
        "after": datetime(2024, 3, 13, 0, 0, tzinfo=local),
    }
    with store.transaction() as tx:
        for name, stamp in reversed(stamps.items()):
            tx.add_message(agent.id, "user", name, {}, created_at=stamp)
    result = store.search_messages_by_date(agent.id, date(2024, 3, 10), date(2024, 3, 12))
    assert [m.text for m in result.items] == ["first", "naive_mid", "last"]  # oldest first
    assert result.total == 3
    one_day = store.search_messages_by_date(agent.id, date(2024, 3, 9), date(2024, 3, 9))
    assert [m.text for m in one_day.items] == ["late_utc", "before"]
    assert store.search_messages_by_date(agent.id, date(2024, 3, 12), date(2024, 3, 10)).total == 0
    paged = store.search_messages_by_date(agent.id, date(2024, 3, 1), date(2024, 3, 31), page=1, page_size=4)
    assert [m.text for m in paged.items] == ["last", "after"] and paged.num_pages == 2


# ---------------------------------------------------------------------------------------- errors


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    junk = b"these are my notes, not a database\n" * 200
    path.write_bytes(junk)
    with pytest.raises(StoreError) as info:
        Store(path)
    message = str(info.value)
    assert str(path) in message and "not a SQLite database" in message and "\n" not in message
    assert isinstance(info.value, UserError)
    assert path.read_bytes() == junk  # we never clobber a user's file


def test_a_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    path = blocker / "sub" / "memagent.db"
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_directory_where_no_file_can_be_created() -> None:
    """/proc/self exists but refuses new files even for root, unlike a chmod-ed directory."""
    with pytest.raises(StoreError) as info:
        Store("/proc/self/memagent.db")
    assert "/proc/self/memagent.db" in str(info.value) and "writable" in str(info.value)


def test_a_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_writes_to_a_locked_database_are_store_errors(tmp_path: Path) -> None:
    """Two memagents on one file: the second fails fast (busy timeout) with a clear error."""
    path = tmp_path / "shared.db"
    with Store(path) as first, Store(path, busy_timeout=0.05) as second:
        with first.transaction() as held:
            held.create_agent("holder", {})
            assert second.find_agent("holder") is None  # WAL: reads work and see only committed rows
            with pytest.raises(StoreError) as info, second.transaction() as tx:
                tx.create_agent("blocked", {})
            message = str(info.value)
            assert str(path) in message and "locked" in message and "\n" not in message
        make_agent(second, "unblocked")  # the same Store recovers once the lock is gone
        assert {a.name for a in second.list_agents()} == {"holder", "unblocked"}


def test_opening_a_locked_database_that_needs_migrating(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    holder = raw(path)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE other_app (x)")
    try:
        with pytest.raises(StoreError) as info:
            Store(path, busy_timeout=0.05)
        assert str(path) in str(info.value) and "locked" in str(info.value)
    finally:
        holder.close()


# ------------------------------------------------------------------------------ cascade and bulk


def test_delete_agent_cascades_to_messages_passages_and_index(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with Store(path) as s:
        gone, kept = make_agent(s, "gone"), make_agent(s, "kept")
        with s.transaction() as tx:
            tx.add_message(gone.id, "user", "zanzibar message", {})
            tx.add_passages(gone.id, ["zanzibar passage", "another zanzibar"])
            tx.add_message(kept.id, "user", "kumquat message", {})
            tx.add_passage(kept.id, "kumquat passage")
        with s.transaction() as tx:
            assert tx.delete_agent("gone")
        assert s.count_messages(gone.id) == 0 and s.count_passages(gone.id) == 0
        assert s.search_passages(kept.id, "kumquat").total == 1

    conn = raw(path)
    for fts in ("messages_fts", "passages_fts"):
        conn.execute(f"CREATE VIRTUAL TABLE temp.v_{fts} USING fts5vocab(main, {fts}, 'row')")
        terms = {row[0] for row in conn.execute(f"SELECT term FROM temp.v_{fts}")}
        assert "zanzibar" not in terms and "kumquat" in terms
        conn.execute(f"INSERT INTO {fts}({fts}) VALUES ('integrity-check')")  # raises if out of sync
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM passages").fetchone()[0] == 1


def test_bulk_passages_keep_their_order(store: Store) -> None:
    agent = make_agent(store)
    texts = [f"chunk {i} of the file" for i in range(2000)]
    with store.transaction() as tx:
        assert tx.add_passages(agent.id, []) == []
        ids = tx.add_passages(agent.id, texts)
    assert len(ids) == 2000 and ids == sorted(ids)
    assert store.count_passages(agent.id) == 2000
    window = store.list_passages(agent.id, limit=3, offset=1000)
    assert [(p.id, p.text) for p in window] == list(zip(ids[1000:1003], texts[1000:1003], strict=True))
    assert store.search_passages(agent.id, "1999").items[0].id == ids[1999]


# ----------------------------------------------------------------------------------------- names


def test_unique_agent_names(store: Store) -> None:
    first = unique_agent_name(store, random.Random(7))
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{2}", first)
    assert unique_agent_name(store, random.Random(7)) == first  # deterministic
    make_agent(store, first)
    second = unique_agent_name(store, random.Random(7))
    assert second != first and store.find_agent(second) is None


def test_a_closed_store_refuses_work() -> None:
    s = Store.in_memory()
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.list_agents()


def test_stopwords_are_dropped_from_a_query_unless_nothing_else_is_left(store: Store) -> None:
    agent = make_agent(store)
    with store.transaction() as tx:
        tx.add_passage(agent.id, "what did you do there")
        tx.add_passage(agent.id, "unrelated")  # the first one's context must not decide the test
        tx.add_passage(agent.id, "the puppy sleeps")
    # "what", "is", "the" match other passages but are stopwords: only the puppy counts
    assert [p.text for p in store.search_passages(agent.id, "What is the puppy?").items] == ["the puppy sleeps"]
    # nothing but stopwords: searched as asked (a substring match where the index leaves stopwords out)
    # (on SQLite, "unrelated" follows as the passage whose context it is)
    assert store.search_passages(agent.id, "what did you do").items[0].text == "what did you do there"


def test_a_total_past_the_counted_pages_is_capped_and_said_so(store: Store) -> None:
    from memagent.memory.search import COUNT_PAGES

    agent = make_agent(store)
    many = COUNT_PAGES * 5 + 40
    with store.transaction() as tx:
        tx.add_passages(agent.id, [f"needle {i}" for i in range(many)])
    first = store.search_passages(agent.id, "needle", page_size=5)
    assert (first.total, first.num_pages, first.capped, len(first.items)) == (COUNT_PAGES * 5, COUNT_PAGES, True, 5)
    few = store.search_passages(agent.id, "needle", page_size=many)  # all counted: exact
    assert (few.total, few.capped) == (many, False)
    late = store.search_passages(agent.id, "needle", page=COUNT_PAGES + 2, page_size=5)  # counted far enough
    assert late.capped and late.total == (COUNT_PAGES + 4) * 5 and len(late.items) == 5
