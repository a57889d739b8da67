"""The `memagent` sub-commands through the real console script, on a temporary MEMAGENT_HOME whose agents
are created directly in the database (no model is loaded anywhere in this file)."""

from __future__ import annotations

import json
import re

import pytest
from clihelp import run_cli
from fakes import ScriptedBackend

from memagent.app import open_agent
from memagent.memory.store import Store
from memagent.settings import Settings

COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m")  # a foreground colour code
WIDE = {"COLUMNS": "400"}  # one table row per line, however long the temp paths are


@pytest.fixture
def cli_home(tmp_path):
    return tmp_path / "home"


def make_agent(home, name, *, field=None, passages=()):
    """An agent in the CLI's database, created the way `memagent chat` creates one."""
    store = Store(home / "memagent.db")
    try:
        agent, _ = open_agent(Settings(home=home, agent=name), store, ScriptedBackend())
        if field:
            agent.set_template_field(*field)
        with store.transaction() as tx:
            tx.add_passages(agent.agent_id, list(passages))
    finally:
        store.close()


def counts(home, name):
    store = Store(home / "memagent.db")
    try:
        row = store.find_agent(name)
        return None if row is None else (store.count_messages(row.id), store.count_passages(row.id))
    finally:
        store.close()


def one_line_error(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("memagent: error: "), result.stderr
    return lines[0]


# -- agents ----------------------------------------------------------------------------------------------


def test_agents_list_on_a_fresh_home_creates_no_database(cli_home):
    result = run_cli(["agents", "list"], cli_home)
    assert result.returncode == 0 and "No agents yet" in result.stdout
    assert not (cli_home / "memagent.db").exists()


def test_agents_list_shows_each_agent_with_its_counts(cli_home):
    make_agent(cli_home, "sam", passages=["one", "two"])
    make_agent(cli_home, "pirate-pete")
    result = run_cli(["agents", "list"], cli_home)
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("│")}
    assert set(rows) == {"sam", "pirate-pete"}
    assert rows["sam"][:3] == ["memgpt_chat", "3", "2"] and rows["pirate-pete"][:3] == ["memgpt_chat", "3", "0"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["sam"][3])


def test_agents_show_prints_core_memory_counts_and_fields(cli_home):
    make_agent(cli_home, "sam", field=("memgpt_introduction", "You are Sam, a sailor."), passages=["p"])
    result = run_cli(["agents", "show", "sam"], cli_home)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Recall memory: 3 messages (3 in context). Archival memory: 1 passages." in out
    assert re.search(r"<human> 16/2000 characters\n\s+First name: Chad", out)
    assert re.search(r"<persona> \d+/2000 characters", out)
    assert "memgpt_introduction (edited): You are Sam, a sailor." in out
    assert "memgpt_control_flow: Control flow:" in out


def test_agents_show_an_unknown_agent_is_one_line(cli_home):
    make_agent(cli_home, "sam")
    line = one_line_error(run_cli(["agents", "show", "bob"], cli_home))
    assert "'bob'" in line and "sam" in line


def test_agents_delete_answering_no_keeps_the_agent(cli_home):
    make_agent(cli_home, "sam", passages=["kept"])
    result = run_cli(["agents", "delete", "sam"], cli_home, stdin="n\n")
    assert result.returncode == 0 and "Delete agent 'sam' (3 messages, 1 passages)?" in result.stdout
    assert "Kept agent 'sam'" in result.stdout
    assert counts(cli_home, "sam") == (3, 1)


def test_agents_delete_with_no_answer_keeps_the_agent(cli_home):
    make_agent(cli_home, "sam")
    result = run_cli(["agents", "delete", "sam"], cli_home, stdin="")
    assert result.returncode == 0 and counts(cli_home, "sam") == (3, 0)


def test_agents_delete_answering_yes_or_with_yes_flag_deletes_everything(cli_home):
    make_agent(cli_home, "sam", passages=["gone"])
    make_agent(cli_home, "max")
    assert run_cli(["agents", "delete", "sam"], cli_home, stdin="y\n").returncode == 0
    result = run_cli(["agents", "delete", "max", "--yes"], cli_home)
    assert result.returncode == 0 and "Deleted agent 'max'" in result.stdout
    assert counts(cli_home, "sam") is None and counts(cli_home, "max") is None
    store = Store(cli_home / "memagent.db")
    try:
        assert store.search_passages(1, "gone").total == 0
    finally:
        store.close()


def test_agents_delete_an_unknown_agent_is_one_line(cli_home):
    line = one_line_error(run_cli(["agents", "delete", "ghost", "--yes"], cli_home))
    assert "'ghost'" in line


# -- presets and wrappers --------------------------------------------------------------------------------


def test_presets_list_shows_bundled_and_user_presets_user_first(cli_home):
    presets = cli_home / "presets"
    presets.mkdir(parents=True)
    (presets / "memgpt_chat.yaml").write_text('system_prompt: "memgpt_chat"\nfunctions: ["send_message"]\n')
    (presets / "my_core.yaml").write_text("persona: {content: hi, max_length: 100}\n")  # a core-memory file
    result = run_cli(["presets", "list"], cli_home, env=WIDE)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    by_name = {row.split("│")[1].strip(): row for row in rows}
    assert set(by_name) == {"memgpt_blocks", "memgpt_chat", "memgpt_pirate_preset"}
    assert str(presets / "memgpt_chat.yaml") in by_name["memgpt_chat"]
    assert "memgpt_chat_pirate_templated" in by_name["memgpt_pirate_preset"]


def test_wrappers_list_shows_builtin_and_user_wrappers(cli_home):
    folder = cli_home / "wrappers"
    folder.mkdir(parents=True)
    (folder / "mine.py").write_text(
        "from memagent.llm.wrappers.chatml import ChatMLWrapper\n\n"
        "class Mine(ChatMLWrapper):\n    name = 'mine'\n    description = 'my own format'\n"
    )
    result = run_cli(["wrappers", "list"], cli_home, env=WIDE)
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "chatml (default)" in rows and "smollm2" in rows and "built-in" in rows["smollm2"]
    assert "my own format" in rows["mine"] and str(folder / "mine.py") in rows["mine"]


def test_wrappers_render_prints_the_sample_prompt(cli_home):
    result = run_cli(["wrappers", "render", "chatml"], cli_home)
    assert result.returncode == 0, result.stderr
    prompt = result.stdout
    assert prompt.startswith("<|im_start|>system\n") and "archival_memory_search:" in prompt
    assert "Hi! I'm Brad and I love sailing." in prompt and '"function": "core_memory_append"' in prompt
    assert prompt.endswith('<|im_start|>assistant\n{"function": "\n')
    constrained = run_cli(["wrappers", "render", "chatml", "--constrained"], cli_home).stdout
    assert constrained.endswith("<|im_start|>assistant\n\n")
    smol = run_cli(["wrappers", "render", "SmolLM2-135M-Instruct"], cli_home).stdout
    assert "<tools>[" in smol and smol.endswith('<tool_call>[{"name": "\n')


def test_wrappers_render_grammar_prints_the_gbnf(cli_home):
    result = run_cli(["wrappers", "render", "chatml", "--grammar"], cli_home)
    assert result.returncode == 0 and result.stdout.startswith("root ::= ")
    assert "send-message" in result.stdout


def test_wrappers_parse_prints_the_call_as_json(cli_home):
    raw = '{"function": "send_message", "params": {"inner_thoughts": "hi", "message": "Hello",}}'
    result = run_cli(["wrappers", "parse", "chatml"], cli_home, stdin=raw)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "send_message", "arguments": {"message": "Hello"}, "inner_thoughts": "hi",
        "repairs": ["trailing_comma"],
    }


def test_wrappers_parse_accepts_output_that_continues_the_forced_prefix(cli_home):
    raw = 'send_message", "params": {"inner_thoughts": "x", "message": "yo"}}'
    result = run_cli(["wrappers", "parse", "chatml"], cli_home, stdin=raw)
    assert result.returncode == 0 and json.loads(result.stdout)["arguments"] == {"message": "yo"}


@pytest.mark.parametrize(
    "raw",
    [
        '{"function": "send_message", "params": {"inner_thoughts": "Greet him.", "message": "Hi Brad!" <|>',
        '{"function": "send_message", "params": {"inner_thought": "Greet him.", "message": "Hi Brad!"}\n'
        'FUNCTION RETURN {"status": "OK", "message": null, "time": "2026-12-02 10:00:00 AM UTC+0000"}',
    ],
    ids=["open-call-then-special-token", "open-call-then-made-up-function-return"],
)
def test_wrappers_parse_recovers_a_call_left_open(cli_home, raw):
    result = run_cli(["wrappers", "parse", "chatml"], cli_home, stdin=raw)
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert (parsed["name"], parsed["arguments"], parsed["inner_thoughts"]) == (
        "send_message", {"message": "Hi Brad!"}, "Greet him.",
    )


def test_wrappers_parse_failure_goes_to_stderr_with_exit_code_1(cli_home):
    result = run_cli(["wrappers", "parse", "chatml"], cli_home, stdin='{"function": "launch_rockets", "params": {}}')
    line = one_line_error(result)
    assert "Could not parse" in line and "launch_rockets" in line and result.stdout == ""


def test_wrappers_parse_an_unknown_wrapper(cli_home):
    line = one_line_error(run_cli(["wrappers", "parse", "nope"], cli_home, stdin="{}"))
    assert "Unknown wrapper 'nope'" in line and "chatml" in line


# -- load ------------------------------------------------------------------------------------------------


def test_load_inserts_chunks_and_skips_binary_files(cli_home, tmp_path):
    make_agent(cli_home, "sam")
    docs = tmp_path / "docs"
    (docs / ".git").mkdir(parents=True)
    (docs / "log.txt").write_text("\n\n".join(f"Day {i}: we sailed past Zanzibar. " * 8 for i in range(10)))
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    (docs / ".git" / "HEAD").write_text("ref: refs/heads/main hidden-marker")
    result = run_cli(["load", str(docs), "--agent", "sam"], cli_home)
    assert result.returncode == 0, result.stderr
    messages, passages = counts(cli_home, "sam")
    assert passages >= 3 and f"Loaded {passages} passages from 1 file into sam's archival memory." in result.stdout
    assert f"Skipped {docs / 'photo.jpg'}: binary file." in result.stdout
    store = Store(cli_home / "memagent.db")
    try:
        agent_id = store.find_agent("sam").id
        assert store.search_passages(agent_id, "Zanzibar").total == passages
        assert store.search_passages(agent_id, "hidden-marker").total == 0
        assert all(len(p.text) <= 1000 for p in store.list_passages(agent_id, limit=100))
    finally:
        store.close()


def test_load_into_an_unknown_agent_or_from_a_missing_path(cli_home, tmp_path):
    make_agent(cli_home, "sam")
    (tmp_path / "a.txt").write_text("text")
    assert "'bob'" in one_line_error(run_cli(["load", str(tmp_path / "a.txt"), "--agent", "bob"], cli_home))
    line = one_line_error(run_cli(["load", str(tmp_path / "missing"), "--agent", "sam"], cli_home))
    assert "No such file or folder" in line
    assert counts(cli_home, "sam") == (3, 0)


# -- help, version, usage errors, colour, start-up -------------------------------------------------------

COMMANDS = [
    [], ["chat"], ["version"], ["load"], ["agents"], ["agents", "list"], ["agents", "show"], ["agents", "delete"],
    ["presets"], ["presets", "list"], ["wrappers"], ["wrappers", "list"], ["wrappers", "render"],
    ["wrappers", "parse"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "memagent")
def test_help_works_for_every_command(cli_home, command):
    result = run_cli([*command, "--help"], cli_home)
    assert result.returncode == 0, result.stderr
    assert "Usage: memagent" in result.stdout and "--help" in result.stdout


def test_version(cli_home):
    from memagent import __version__

    assert run_cli(["version"], cli_home).stdout == f"memagent {__version__}\n"


def test_a_usage_error_is_typers_message_not_an_internal_error(cli_home):
    result = run_cli(["chat", "--bogus"], cli_home)
    assert result.returncode == 2 and "No such option: --bogus" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_shell_completion_is_offered(cli_home):
    result = run_cli(["--show-completion", "bash"], cli_home)
    assert result.returncode == 0 and "_MEMAGENT_COMPLETE" in result.stdout


def test_colour_follows_no_color_and_the_flag(cli_home):
    make_agent(cli_home, "sam", field=("memgpt_introduction", "x"))
    forced = {"FORCE_COLOR": "1", "NO_COLOR": ""}
    assert COLOUR.search(run_cli(["agents", "show", "sam"], cli_home, env=forced).stdout)
    assert not COLOUR.search(run_cli(["agents", "show", "sam", "--no-color"], cli_home, env=forced).stdout)
    assert not COLOUR.search(run_cli(["--no-color", "agents", "show", "sam"], cli_home, env=forced).stdout)
    no_color = {"FORCE_COLOR": "1", "NO_COLOR": "1"}
    assert not COLOUR.search(run_cli(["agents", "show", "sam"], cli_home, env=no_color).stdout)


def imported_modules(result) -> set[str]:
    """Top-level module names from `-X importtime` output (PYTHONPROFILEIMPORTTIME)."""
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("command", [["--help"], ["agents", "list"], ["version"]], ids=" ".join)
def test_start_up_does_not_import_the_model_or_http(cli_home, command):
    make_agent(cli_home, "sam")
    result = run_cli(command, cli_home, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0
    modules = imported_modules(result)
    assert "typer" in modules  # the profile really was captured
    assert not {"llama_cpp", "httpx", "prompt_toolkit"} & modules
    if command != ["agents", "list"]:
        assert "sqlalchemy" not in modules


def test_agents_reindex_rebuilds_the_search_index_of_every_row(cli_home):
    make_agent(cli_home, "sam", passages=["Brad sails a red boat"])
    store = Store(cli_home / "memagent.db")
    try:  # an index gone stale: rows whose search columns were emptied behind the store's back
        store._conn.exec_driver_sql("UPDATE passages SET search_text = '', search_context = ''")
        row = store.find_agent("sam")
        assert store.search_passages(row.id, "boat").total == 0
    finally:
        store.close()
    result = run_cli(["agents", "reindex"], cli_home)
    assert result.returncode == 0, result.stderr
    # 3 messages, 1 passage; with the embeddings extra (make test installs it) the indexed rows (1 message: the others
    # are not searchable, and the passage) also get their vector
    embedded = r"(Embedded 2 rows for search by meaning\.\n)?"
    assert re.fullmatch(r"Reindexed 4 rows for full-text search\.\n" + embedded, result.stdout)
    store = Store(cli_home / "memagent.db")
    try:
        assert [p.text for p in store.search_passages(row.id, "boats").items] == ["Brad sails a red boat"]
    finally:
        store.close()
