"""Issue 16 through the real console script: hostile names, files and text at the CLI's edges give one clear
line and a non-zero exit, never a traceback, and nothing escapes MEMAGENT_HOME or reaches the terminal raw."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from clihelp import MEMAGENT, run_cli

WIDE = {"COLUMNS": "400"}


def run_bytes(args: list[str], home: Path, stdin: bytes, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command with raw bytes on stdin (invalid UTF-8 included); output stays bytes."""
    environ = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE")}
    environ.update({"MEMAGENT_HOME": str(home), "NO_COLOR": "1", **(env or {})})
    return subprocess.run([MEMAGENT, *args], input=stdin, capture_output=True, env=environ, cwd=home.parent,
                          timeout=300)


def clean_output(result) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert "\x1b" not in result.stdout + result.stderr


# -- presets and wrappers from the user's folder -------------------------------------------------------------


def test_presets_list_marks_binary_and_badly_named_presets_broken(tmp_path):
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (home / "presets" / "latin.yaml").write_bytes("system_prompt: memgpt_chat # café\n".encode("latin-1"))
    (home / "presets" / "-evil\x1b[2J.yaml").write_text("system_prompt: memgpt_chat\nfunctions: [send_message]\n")
    result = run_cli(["presets", "list"], home, env=WIDE)
    assert result.returncode == 0, result.stderr
    clean_output(result)
    lines = result.stdout.splitlines()
    assert any("binary" in line and "broken" in line and "NUL bytes" in line for line in lines), result.stdout
    assert any("latin" in line and "broken" in line and "not UTF-8 text" in line for line in lines), result.stdout
    assert any("-evil" in line and "Invalid preset name" in line for line in lines), result.stdout
    assert any("memgpt_chat" in line for line in lines)


def test_chat_with_a_binary_preset_is_one_line(tmp_path):
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01garbage")
    result = run_cli(["chat", "--preset", "binary", "--backend", "human"], home, stdin="hi\n")
    assert result.returncode == 1, result.stderr
    clean_output(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "binary.yaml is not a text file" in lines[0], result.stderr


def one_line(result) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    clean_output(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("memagent: error: "), result.stderr
    return lines[0]


WRAPPER = "from memagent.llm.wrappers.chatml import ChatMLWrapper\n\nclass Mine(ChatMLWrapper):\n    name = {name!r}\n"


def test_a_user_wrapper_with_a_bad_name_is_one_line_naming_the_file(tmp_path):
    home = tmp_path / "home"
    (home / "wrappers").mkdir(parents=True)
    for bad in ("../../escape", "\x1b[31mred", "two\nlines", "-rf"):
        path = home / "wrappers" / "mine.py"
        path.write_text(WRAPPER.format(name=bad))
        line = one_line(run_cli(["wrappers", "list"], home))
        assert f"Wrapper file {path}: Invalid wrapper name" in line and "Rename the wrapper" in line


def test_a_binary_user_wrapper_file_is_one_line(tmp_path):
    home = tmp_path / "home"
    (home / "wrappers").mkdir(parents=True)
    (home / "wrappers" / "junk.py").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe\n\x1b[2J")
    line = one_line(run_cli(["wrappers", "list"], home))
    assert "junk.py failed to load" in line and "Fix or remove the file" in line


def test_wrappers_parse_takes_bytes_that_are_not_utf8(tmp_path):
    raw = b'{"function": "send_message", "params": {"inner_thoughts": "t\xff", "message": "caf\xe9\x1b[2J"}}'
    result = run_bytes(["wrappers", "parse", "chatml"], tmp_path / "home", raw)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr.decode(errors="replace") and b"\x1b" not in result.stdout
    assert json.loads(result.stdout)["arguments"]["message"] == "caf\ufffd"


# -- agent names -----------------------------------------------------------------------------------------


def make_agents(home: Path, *names: str, legacy: dict[str, str] | None = None) -> None:
    """Agents made as `memagent chat` makes them; `legacy` renames some afterwards, straight in SQLite, to names
    an older memagent let through."""
    from fakes import ScriptedBackend

    from memagent.app import open_agent
    from memagent.memory.store import Store
    from memagent.settings import Settings

    store = Store(home / "memagent.db")
    try:
        for name in names:
            agent, _ = open_agent(Settings(home=home, agent=name), store, ScriptedBackend())
            with store.transaction() as tx:
                tx.add_passages(agent.agent_id, [f"passage of {name}"])
    finally:
        store.close()
    db = sqlite3.connect(home / "memagent.db")
    with db:
        for old, new in (legacy or {}).items():
            db.execute("UPDATE agents SET name = ? WHERE name = ?", (new, old))
    db.close()


def test_show_delete_and_load_refuse_a_hostile_name_in_one_line(tmp_path):
    """More hostile names in tests/unit/test_agent_names.py: here each command once, through the real CLI."""
    home = tmp_path / "home"
    make_agents(home, "sam")
    (tmp_path / "a.txt").write_text("text")
    for args in (["agents", "show", "two\nlines"], ["agents", "delete", "\x1b[31mred\x1b[0m", "--yes"],
                 ["load", str(tmp_path / "a.txt"), "--agent", "../../x"]):
        line = one_line(run_cli(args, home))
        assert "Invalid agent name" in line and "letters, digits" in line, (args, line)
    assert {p.name for p in home.iterdir()} <= {"memagent.db", "memagent.db-shm", "memagent.db-wal"}
    assert not (tmp_path / "x").exists()


def test_an_undecodable_name_on_the_command_line_is_one_line(tmp_path):
    home = tmp_path / "home"
    make_agents(home, "sam")
    result = subprocess.run([MEMAGENT, "agents", "show", b"caf\xe9"], capture_output=True, timeout=300,
                            env={**os.environ, "MEMAGENT_HOME": str(home), "NO_COLOR": "1"})
    assert result.returncode == 1
    assert b"Invalid agent name" in result.stderr and b"Traceback" not in result.stderr


LEGACY = {"old": "old\x1b[31m red", "older": "../older", "oldest": "two\nlines"}


def test_agents_made_with_names_that_break_the_rule_are_listed_safely(tmp_path):
    home = tmp_path / "home"
    make_agents(home, "sam", *LEGACY, legacy=LEGACY)
    result = run_cli(["agents", "list"], home, env=WIDE)
    assert result.returncode == 0, result.stderr
    clean_output(result)
    assert "'old\\x1b[31m red'" in result.stdout and "'../older'" in result.stdout
    assert "'two\\nlines'" in result.stdout and "│ sam " in result.stdout


def test_agents_with_legacy_names_can_still_be_shown_loaded_into_and_deleted(tmp_path):
    home = tmp_path / "home"
    make_agents(home, "sam", *LEGACY, legacy=LEGACY)
    (tmp_path / "notes.txt").write_text("Brad's boat is called Zanzibar.")
    name = LEGACY["old"]
    shown = run_cli(["agents", "show", name], home)
    assert shown.returncode == 0 and "Agent 'old\\x1b[31m red'" in shown.stdout, shown.stderr
    loaded = run_cli(["load", str(tmp_path / "notes.txt"), "--agent", name], home)
    assert loaded.returncode == 0 and "Loaded 1 passages from 1 file" in loaded.stdout, loaded.stderr
    for gone in (name, LEGACY["older"]):
        deleted = run_cli(["agents", "delete", gone, "--yes"], home)
        assert deleted.returncode == 0 and f"Deleted agent {gone!r}" in deleted.stdout, deleted.stderr
    for result in (shown, loaded, deleted):
        clean_output(result)
    listed = run_cli(["agents", "list"], home, env=WIDE)
    assert "│ sam " in listed.stdout and "older" not in listed.stdout and "old\\x1b" not in listed.stdout


def test_an_unknown_agent_error_lists_legacy_names_safely(tmp_path):
    home = tmp_path / "home"
    make_agents(home, "sam", "old", legacy={"old": "old\x1b[2J"})
    line = one_line(run_cli(["agents", "show", "bob"], home))
    assert "No agent named 'bob'" in line and "'old\\x1b[2J'" in line and "sam" in line
