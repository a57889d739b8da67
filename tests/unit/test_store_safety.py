"""The store refuses what isn't its own in one line, reads where it can't write, and stores any text (on both
stores; PostgreSQL's own refusals are in test_store_postgres.py)."""

from __future__ import annotations

import sqlite3

import pytest

from memagent.errors import StoreError
from memagent.memory.migrations import LATEST_VERSION
from memagent.memory.store import Store


def test_a_database_of_another_program_is_refused_in_one_line(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE agents (id INTEGER PRIMARY KEY, codename TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as caught:
        Store(path)
    message = str(caught.value)
    assert "not a memagent database" in message and "agents" in message and str(path) in message
    assert "\n" not in message


def test_read_only_opens_list_agents_and_refuse_writes_in_one_line(tmp_path):
    path = tmp_path / "memagent.db"
    with Store(path) as store, store.transaction() as tx:
        tx.create_agent("kept", {"preset": "memgpt_chat"})
    before = path.read_bytes()
    with Store(path, read_only=True) as store:
        assert [a.name for a in store.list_agents()] == ["kept"]
        with pytest.raises(StoreError, match="read-only"), store.transaction():
            pass
    assert path.read_bytes() == before


def test_read_only_reads_an_older_schema_without_upgrading_it(tmp_path):
    path = tmp_path / "memagent.db"
    with Store(path, migrations=[]):  # an empty file at version 0 would have nothing to read
        pass
    from memagent.memory.migrations import MIGRATIONS

    with Store(path, migrations=MIGRATIONS[:1]) as store, store.transaction() as tx:
        tx.create_agent("old", {"preset": "memgpt_chat"})
    with Store(path, read_only=True) as store:
        assert store.schema_version == 1 < LATEST_VERSION
        assert store.find_agent("old").version == 0
    with Store(path) as store:  # the first writer upgrades it
        assert store.schema_version == LATEST_VERSION


def test_read_only_on_a_missing_file_says_so(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "nope.db", read_only=True)


def test_lone_surrogates_and_nul_are_stored_and_searched_without_error(database):
    with Store(database) as store:
        _store_and_search_broken_text(store)


def _store_and_search_broken_text(store):
    with store.transaction() as tx:
        agent = tx.create_agent("s", {"note": "bad \ud800 state"})
        tx.add_message(agent.id, "user", "hello \ud800 world\x00", {"content": "x \udfff"})
        tx.add_passage(agent.id, "passage \ud800")
    assert store.search_messages(agent.id, "world \ud800").items[0].text == "hello \ufffd world"
    assert store.search_passages(agent.id, "passage").items[0].text == "passage \ufffd"
    assert store.find_agent("s").state == {"note": "bad \ufffd state"}
