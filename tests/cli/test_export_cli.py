"""`memagent agents export` / `agents import` through the real console script (no model is loaded)."""

from __future__ import annotations

import json

import pytest
from clihelp import run_cli
from fakes import ScriptedBackend

from memagent.app import open_agent
from memagent.memory.export import VERSION
from memagent.memory.store import Store
from memagent.settings import Settings


@pytest.fixture
def source(tmp_path):
    """A home with agent 'sam': a template field, a non-ASCII message and two passages."""
    home = tmp_path / "source"
    store = Store(home / "memagent.db")
    try:
        agent, _ = open_agent(Settings(home=home, agent="sam"), store, ScriptedBackend())
        agent.set_template_field(agent.template.field_names()[0], "Grüße ✓")
        with store.transaction() as tx:
            tx.add_message(agent.agent_id, "user", "héllo 你好", {"role": "user", "content": "héllo 你好"})
            tx.add_passages(agent.agent_id, ["one passage", "zwei"])
    finally:
        store.close()
    return home


def agents(home):
    with Store(home / "memagent.db", read_only=True) as store:
        return {row.name: (store.count_messages(row.id), store.count_passages(row.id), row.state)
                for row in store.list_agents()}


def test_export_to_stdout_then_import_elsewhere(source, tmp_path):
    exported = run_cli(["agents", "export", "sam"], source)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["format"] == "memagent-agent" and data["version"] == VERSION
    assert "héllo 你好" in exported.stdout  # UTF-8, not \u escapes
    file = tmp_path / "sam.json"
    file.write_text(exported.stdout, encoding="utf-8")
    target = tmp_path / "target"
    imported = run_cli(["agents", "import", str(file)], target)
    assert imported.returncode == 0, imported.stderr
    assert "Imported agent 'sam' (4 messages, 2 passages)." in imported.stdout
    assert agents(target)["sam"][:2] == agents(source)["sam"][:2] == (4, 2)
    assert "Grüße ✓" in agents(target)["sam"][2]["template_fields"].values()
    again = run_cli(["agents", "import", str(file), "--name", "sam-2"], target)
    assert again.returncode == 0, again.stderr
    assert set(agents(target)) == {"sam", "sam-2"}
    shown = run_cli(["agents", "show", "sam-2"], target)
    assert shown.returncode == 0 and "4 messages (3 in context)" in shown.stdout


def test_export_to_a_file_and_import_from_stdin(source, tmp_path):
    file = tmp_path / "out.json"
    result = run_cli(["agents", "export", "sam", "--output", str(file)], source)
    assert result.returncode == 0, result.stderr
    assert f"Exported agent 'sam' (4 messages, 2 passages) to {file}." in result.stdout
    target = tmp_path / "target"
    imported = run_cli(["agents", "import", "-", "--name", "piped"], target, stdin=file.read_text(encoding="utf-8"))
    assert imported.returncode == 0, imported.stderr
    assert set(agents(target)) == {"piped"}


def test_export_works_in_a_read_only_home(source, tmp_path):
    (source / "memagent.db").chmod(0o444)
    source.chmod(0o555)
    try:
        result = run_cli(["agents", "export", "sam"], source)
    finally:
        source.chmod(0o755)
        (source / "memagent.db").chmod(0o644)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["agent"]["name"] == "sam"


def one_error(result):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_importing_over_an_existing_name_is_refused(source, tmp_path):
    file = tmp_path / "sam.json"
    assert run_cli(["agents", "export", "sam", "-o", str(file)], source).returncode == 0
    line = one_error(run_cli(["agents", "import", str(file)], source))
    assert "An agent named 'sam' already exists" in line and "--name" in line
    assert agents(source)["sam"][:2] == (4, 2)


@pytest.mark.parametrize(("content", "expected"), [
    ('{"messages": [', "is not valid JSON (line 1, column 15"),
    ('{"hello": "world"}', "is not a memagent agent export"),
    ('{"format": "memagent-agent", "version": 99}',
     f"format version 99, but this memagent reads only up to version {VERSION}"),
    ('{"format": "memagent-agent", "version": 1, "agent": {}}', "damaged: agent.name is missing"),
    (b"\xff\xfe\x00bad", "is not UTF-8 text"),
])
def test_a_bad_file_is_one_line(tmp_path, content, expected):
    file = tmp_path / "bad.json"
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        file.write_text(content, encoding="utf-8")
    home = tmp_path / "home"
    line = one_error(run_cli(["agents", "import", str(file)], home))
    assert expected in line and str(file) in line
    assert not (home / "memagent.db").exists() or agents(home) == {}


def test_missing_files_and_agents_are_one_line(source, tmp_path):
    assert "Can't read" in one_error(run_cli(["agents", "import", str(tmp_path / "nope.json")], source))
    assert "No agent named 'ghost'" in one_error(run_cli(["agents", "export", "ghost"], source))
    line = one_error(run_cli(["agents", "export", "sam", "-o", str(tmp_path / "no" / "dir" / "x.json")], source))
    assert "Can't write" in line and "--output" in line
    file = tmp_path / "sam.json"
    assert run_cli(["agents", "export", "sam", "-o", str(file)], source).returncode == 0
    assert "Invalid agent name" in one_error(run_cli(["agents", "import", str(file), "--name", "../x"], source))


@pytest.mark.postgres
def test_an_agent_moves_from_the_home_to_postgresql_with_db_and_memagent_db(source, tmp_path, pg_url):
    file = tmp_path / "sam.json"
    assert run_cli(["agents", "export", "sam", "-o", str(file)], source).returncode == 0
    imported = run_cli(["agents", "import", str(file), "--db", pg_url], tmp_path / "elsewhere")
    assert imported.returncode == 0, imported.stderr
    assert "Imported agent 'sam' (4 messages, 2 passages)." in imported.stdout
    listed = run_cli(["agents", "list"], tmp_path / "elsewhere", env={"MEMAGENT_DB": pg_url})
    assert listed.returncode == 0 and "sam" in listed.stdout, listed.stderr
    shown = run_cli(["agents", "show", "sam", "--db", pg_url], tmp_path / "elsewhere")
    assert shown.returncode == 0 and "4 messages (3 in context)" in shown.stdout
    assert not (tmp_path / "elsewhere" / "memagent.db").exists()  # nothing went to the home's SQLite file
    with Store(pg_url) as store:
        row = store.find_agent("sam")
        assert (store.count_messages(row.id), store.count_passages(row.id)) == (4, 2)


@pytest.mark.postgres
def test_a_database_url_that_fails_is_one_line_without_its_password(tmp_path, postgres_server):
    from pg_server import PASSWORD

    url = postgres_server.url("no_such_database")
    for args in (["agents", "list", "--db", url], ["chat", "--db", url, "--backend", "human"]):
        line = one_error(run_cli(args, tmp_path / "home"))
        assert "does not exist" in line and "postgres:***@127.0.0.1" in line and PASSWORD not in line


@pytest.mark.postgres
def test_listing_an_empty_postgresql_database_creates_nothing(tmp_path, pg_url):
    listed = run_cli(["agents", "list", "--db", pg_url], tmp_path / "home")
    assert listed.returncode == 0 and "No agents yet" in listed.stdout, listed.stderr
    with Store(pg_url, read_only=True) as store:
        assert store.schema_version == 0  # not migrated: listing never writes
