"""--db / MEMAGENT_DB: which database the app opens, and an agent chatting on PostgreSQL through the app's wiring."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import Recorder, ScriptedBackend, reply
from pg_server import PASSWORD

from memagent.app import open_agent, open_store
from memagent.settings import build_settings


def test_the_default_is_the_sqlite_file_in_the_home(tmp_path: Path) -> None:
    settings = build_settings({}, environ={"MEMAGENT_HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.db is None and settings.database == str(tmp_path / "memagent.db")


def test_the_flag_beats_the_environment_which_beats_the_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MEMAGENT_DB=from-dotenv.db\n")
    base = {"MEMAGENT_HOME": str(tmp_path / "home")}
    assert build_settings({}, environ=base, cwd=tmp_path).database == "from-dotenv.db"
    env = {**base, "MEMAGENT_DB": "~/agents.db"}
    assert build_settings({}, environ=env, cwd=tmp_path).database == str(Path("~/agents.db").expanduser())
    url = f"postgresql+psycopg://me:{PASSWORD}@127.0.0.1/memagent"
    settings = build_settings({"db": url}, environ=env, cwd=tmp_path)
    assert settings.database == url and PASSWORD not in repr(settings)


@pytest.mark.postgres
def test_an_agent_chats_and_resumes_on_postgresql_through_the_app(tmp_path: Path, pg_url: str) -> None:
    settings = build_settings({"agent": "sam", "db": pg_url, "no_verify": True},
                              environ={"MEMAGENT_HOME": str(tmp_path)}, cwd=tmp_path)
    store = open_store(settings)
    try:
        assert store.dialect.name == "postgresql"
        agent, created = open_agent(settings, store, ScriptedBackend([reply("Hello Brad.")]))
        assert created
        agent.run_turn("My name is Brad", Recorder())
    finally:
        store.close()
    assert not (tmp_path / "memagent.db").exists()
    store = open_store(settings)
    try:
        resumed, created = open_agent(settings, store, ScriptedBackend())
        assert not created and any("Hello Brad." in str(message) for _, message in resumed.messages)
        assert store.search_messages(resumed.agent_id, "brad").total >= 2
    finally:
        store.close()
