"""The store on a real PostgreSQL server (tests/pg_server.py): its schema and migrations, its locks, and every
failure a user can meet there (server down, wrong password, missing database, lost connection, missing driver)
as one readable line that never shows the password. Behaviour shared with SQLite is tested on both stores in
test_store.py and test_concurrency.py."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa
from fakes import ScriptedBackend
from pg_server import PASSWORD, PostgresServer, free_port
from sqlalchemy import Connection

from memagent.app import open_agent
from memagent.errors import AgentExistsError, StoreError
from memagent.memory.migrations import LATEST_VERSION, MIGRATIONS, Migration
from memagent.memory.store import Store
from memagent.memory.transaction import Transaction
from memagent.settings import Settings

pytestmark = pytest.mark.postgres


def admin(pg_url: str) -> sa.Engine:
    """A second connection to the test's database (what another process would have)."""
    return sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")


def one_line_without_password(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and PASSWORD not in message
    return message


# ------------------------------------------------------------------------------------ migrations


def test_migrations_build_the_schema_in_an_empty_database(pg_url: str) -> None:
    with Store(pg_url) as store:
        assert store.schema_version == LATEST_VERSION
    with admin(pg_url).connect() as conn:
        inspector = sa.inspect(conn)
        assert {"agents", "messages", "passages", "memagent_schema"} <= set(inspector.get_table_names())
        indexes = {index["name"] for table in ("messages", "passages") for index in inspector.get_indexes(table)}
        assert {"messages_search", "passages_search", "messages_agent_created", "passages_agent_id"} <= indexes
        using = conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_search' AND schemaname = current_schema()"
        )
        assert "USING gin (search_vector)" in using.scalar_one()
        assert conn.exec_driver_sql("SELECT version FROM memagent_schema").all() == [(LATEST_VERSION,)]


def test_reopening_runs_no_migration_and_a_failing_one_changes_nothing(pg_url: str) -> None:
    calls: list[int] = []

    def spy(number: int) -> Migration:
        def run(conn: Connection) -> None:
            calls.append(number)
            MIGRATIONS[number - 1](conn)

        return run

    spies = [spy(n) for n in range(1, LATEST_VERSION + 1)]
    with Store(pg_url, migrations=spies) as store, store.transaction() as tx:
        tx.create_agent("keeper", {"x": 1})
    with Store(pg_url, migrations=spies) as store:
        assert store.find_agent("keeper").state == {"x": 1}
    assert calls == list(range(1, LATEST_VERSION + 1))  # nothing ran the second time

    def broken(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half_done (x integer)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Store(pg_url, migrations=[*MIGRATIONS, broken])
    with admin(pg_url).connect() as conn:  # DDL is transactional: neither the table nor a new version
        assert conn.exec_driver_sql("SELECT to_regclass('half_done')").scalar_one() is None
        assert conn.exec_driver_sql("SELECT version FROM memagent_schema").scalar_one() == LATEST_VERSION


def test_a_newer_schema_and_a_foreign_database_are_refused(pg_url: str, postgres_server: PostgresServer) -> None:
    Store(pg_url).close()
    with admin(pg_url).connect() as conn:
        conn.exec_driver_sql(f"UPDATE memagent_schema SET version = {LATEST_VERSION + 3}")
    with pytest.raises(StoreError, match="newer memagent") as newer:
        Store(pg_url)
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in one_line_without_password(newer.value)

    other = postgres_server.url(schema=postgres_server.create_schema())
    with admin(other).connect() as conn:
        conn.exec_driver_sql("CREATE TABLE agents (id serial PRIMARY KEY, codename text)")
    with pytest.raises(StoreError, match="not a memagent database") as foreign:
        Store(other)
    assert "agents" in one_line_without_password(foreign.value)


# ---------------------------------------------------------------------------------- stored values


def test_times_and_json_come_back_as_written(pg_url: str) -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 12, 2, 17, 10, 7, 123456, tzinfo=UTC)
    payload = {"z": 1, "a": [1, 2.5, None, True], "nested": {"b": "ü"}, "emoji": "😀"}
    with Store(pg_url) as store:
        with store.transaction() as tx:
            agent = tx.create_agent("t", {"b": 1, "a": 2}, created_at=moment)
            mid = tx.add_message(agent.id, "user", "text", payload, created_at=moment)
        stored = store.get_messages(agent.id, [mid])[0]
        assert stored.payload == payload and list(stored.payload) == ["z", "a", "nested", "emoji"]  # key order kept
        assert stored.created_at == moment and stored.created_at.tzinfo == UTC
        assert list(store.find_agent("t").state) == ["b", "a"]


def test_deleting_an_agent_removes_its_rows_and_their_search_entries(pg_url: str) -> None:
    with Store(pg_url) as store:
        with store.transaction() as tx:
            gone, kept = tx.create_agent("gone", {}), tx.create_agent("kept", {})
            tx.add_message(gone.id, "user", "zanzibar message", {})
            tx.add_passages(gone.id, ["zanzibar passage"])
            tx.add_passage(kept.id, "zanzibar kept")
        with store.transaction() as tx:
            assert tx.delete_agent("gone")
        assert store.count_messages(gone.id) == store.count_passages(gone.id) == 0
        assert [p.text for p in store.search_passages(kept.id, "zanzibar").items] == ["zanzibar kept"]
    with admin(pg_url).connect() as conn:
        matches = "SELECT count(*) FROM passages WHERE search_vector @@ to_tsquery('simple', 'zanzibar')"
        assert conn.exec_driver_sql(matches).scalar_one() == 1


# ------------------------------------------------------------------------------ locks and races


def test_a_locked_agent_makes_the_other_writer_wait_then_fail_in_one_line(pg_url: str) -> None:
    with Store(pg_url) as first, Store(pg_url, busy_timeout=0.2) as second:
        with first.transaction() as tx:
            agent = tx.create_agent("shared", {})
        with first.transaction() as held:
            held.lock_agent(agent.id)  # SELECT ... FOR UPDATE
            assert second.find_agent("shared") is not None  # reads don't wait
            with pytest.raises(StoreError) as info, second.transaction() as tx:
                tx.lock_agent(agent.id)
            assert "locked" in one_line_without_password(info.value)
        with second.transaction() as tx:  # the same Store works once the lock is gone
            assert tx.save_agent_state(tx.lock_agent(agent.id).id, {"after": 1}, 0) == 1


def test_two_processes_creating_one_agent_at_the_same_moment(pg_url: str, tmp_path, monkeypatch) -> None:
    """PostgreSQL has no database-wide write lock: both may see no agent, and the unique name decides. The loser
    gets AgentExistsError, and open_agent then resumes the winner's agent."""
    first, second = Store(pg_url), Store(pg_url)
    home = tmp_path / "home"
    real_find = Transaction._find
    raced: list[str] = []

    def find_then_lose_the_race(self, where, lock=False):
        found = real_find(self, where, lock)
        if not raced:  # between the second's check and its insert, the first creates the agent
            raced.append("now")
            open_agent(Settings(home=home, agent="same", no_verify=True), first, ScriptedBackend())
        return found

    monkeypatch.setattr(Transaction, "_find", find_then_lose_the_race)
    with pytest.raises(AgentExistsError), second.transaction() as tx:
        tx.create_agent("same", {})
    assert raced == ["now"]
    monkeypatch.setattr(Transaction, "_find", real_find)
    created_first = first.find_agent("same")
    agent, created = open_agent(Settings(home=home, agent="same", no_verify=True), second, ScriptedBackend())
    assert not created and agent.agent_id == created_first.id
    first.close()
    second.close()


def test_read_only_lists_and_refuses_writes(pg_url: str) -> None:
    with Store(pg_url) as store, store.transaction() as tx:
        tx.create_agent("kept", {})
    with Store(pg_url, read_only=True) as store:
        assert [a.name for a in store.list_agents()] == ["kept"]
        with pytest.raises(StoreError, match="read-only"), store.transaction():
            pass


# ---------------------------------------------------------------------------- failures, one line


def test_a_server_that_is_not_running(postgres_server: PostgresServer) -> None:
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(StoreError) as info:
        Store(url, busy_timeout=2)
    message = one_line_without_password(info.value)
    assert "can't be reached" in message and "127.0.0.1" in message and "***" in message


def test_a_wrong_password(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError) as info:
        Store(postgres_server.url(password="not-the-password"))
    message = one_line_without_password(info.value)
    assert "refused the user name or password" in message and "not-the-password" not in message


def test_a_missing_database(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError) as info:
        Store(postgres_server.url("no_such_database"))
    assert "does not exist" in one_line_without_password(info.value)


def test_a_lost_connection_is_one_line_and_the_next_use_reconnects(pg_url: str) -> None:
    with Store(pg_url) as store:
        with store.transaction() as tx:
            tx.create_agent("a", {})
        with admin(pg_url).connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreError) as info, store.transaction() as tx:
            tx.create_agent("b", {})
        assert "connection to the server was lost" in one_line_without_password(info.value)
        assert [a.name for a in store.list_agents()] == ["a"]  # a new connection; b was never written


def test_a_missing_driver_says_what_to_install(pg_url: str, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(StoreError) as info:
        Store(pg_url)
    assert "pip install 'memagent[postgres]'" in one_line_without_password(info.value)


def test_a_url_of_another_database_kind_or_driver() -> None:
    with pytest.raises(StoreError) as info:
        Store(f"mysql://root:{PASSWORD}@127.0.0.1/memagent")
    assert "SQLite or PostgreSQL" in one_line_without_password(info.value)
    with pytest.raises(StoreError) as info:
        Store(f"postgresql+psycopg2://root:{PASSWORD}@127.0.0.1/memagent")
    assert "postgresql+psycopg://" in one_line_without_password(info.value)
