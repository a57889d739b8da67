"""A read-only MEMAGENT_HOME (a backup mounted read-only, another user's folder): the commands that only read
work; the ones that write say in one line that the home is read-only.

Root ignores file permissions, so when the tests run as root the command runs without the capabilities that
let root write anywhere (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), as an ordinary owner would.
"""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelp import MEMAGENT

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _drop_root_powers() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            os._exit(97)


def run_as_owner(args: list[str], home: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE")}
    environ.update({"MEMAGENT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "300"})
    result = subprocess.run([MEMAGENT, *args], input=stdin, capture_output=True, text=True, timeout=300, env=environ,
                            cwd=home.parent, preexec_fn=_drop_root_powers if os.geteuid() == 0 else None)
    if result.returncode == 97:
        pytest.skip("can't drop root's capabilities here, so permissions can't be tested as root")
    return result


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[Path]:
    """A home with one agent 'sam' (two passages), a user preset and wrapper; then everything made read-only."""
    from fakes import ScriptedBackend

    from memagent.app import open_agent
    from memagent.memory.store import Store
    from memagent.settings import Settings

    home = tmp_path / "home"
    store = Store(home / "memagent.db")
    try:
        agent, _ = open_agent(Settings(home=home, agent="sam"), store, ScriptedBackend())
        with store.transaction() as tx:
            tx.add_passages(agent.agent_id, ["one", "two"])
    finally:
        store.close()
    (home / "presets").mkdir()
    (home / "presets" / "mine.yaml").write_text("system_prompt: memgpt_chat\nfunctions: [send_message]\n")
    (home / "wrappers").mkdir()
    (home / "wrappers" / "mine.py").write_text(
        "from memagent.llm.wrappers.chatml import ChatMLWrapper\n\nclass Mine(ChatMLWrapper):\n    name = 'mine'\n"
    )
    paths = sorted(home.rglob("*"), reverse=True) + [home]
    for path in paths:
        mode = path.stat().st_mode
        path.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield home
    for path in [home, *home.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("memagent: error: "), result.stderr
    return lines[0]


def test_presets_and_wrappers_list_work_in_a_read_only_home(read_only_home):
    presets = run_as_owner(["presets", "list"], read_only_home)
    assert presets.returncode == 0 and "mine" in presets.stdout and "broken" not in presets.stdout, presets.stderr
    wrappers = run_as_owner(["wrappers", "list"], read_only_home)
    assert wrappers.returncode == 0 and "mine" in wrappers.stdout, wrappers.stderr


def test_agents_list_and_show_work_in_a_read_only_home(read_only_home):
    listed = run_as_owner(["agents", "list"], read_only_home)
    assert listed.returncode == 0 and "sam" in listed.stdout, listed.stderr
    shown = run_as_owner(["agents", "show", "sam"], read_only_home)
    assert shown.returncode == 0 and "Archival memory: 2 passages." in shown.stdout, shown.stderr


def test_delete_and_load_in_a_read_only_home_are_one_line_and_change_nothing(read_only_home, tmp_path):
    (tmp_path / "notes.txt").write_text("Brad's boat is called Zanzibar.")
    for args in (["agents", "delete", "sam", "--yes"], ["load", str(tmp_path / "notes.txt"), "--agent", "sam"]):
        line = one_line(run_as_owner(args, read_only_home))
        assert "is read-only" in line and "memagent.db" in line and "MEMAGENT_HOME" in line
    from memagent.memory.store import Store

    for path in [read_only_home, *read_only_home.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)
    store = Store(read_only_home / "memagent.db")
    try:
        row = store.find_agent("sam")
        assert row is not None and store.count_passages(row.id) == 2
    finally:
        store.close()
