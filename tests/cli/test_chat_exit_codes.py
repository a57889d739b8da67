"""Scripted `memagent chat` tells scripts how it went: 0 when every line was handled, 1 when a line ended with
an error, 130 after Ctrl-C. The real CLI runs in a subprocess (through the crash guard's fork, whose parent
must pass the chat's status on), on a backend that plays scripted replies and faults per user message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import json_events

TESTS = Path(__file__).resolve().parent.parent
LAUNCHER = """
import os, signal, sys
# A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored: a test run in the background
# (nohup make test &) would see no Ctrl-C at all. A terminal's Ctrl-C is what this test plays, so restore it.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from fakes import reply
from memagent.errors import BackendError
from memagent.llm.backends.registry import BACKENDS
from fakes import ScriptedBackend

class FaultyBackend(ScriptedBackend):
    '''Answers "ok: <message>"; a message holding FAIL gets a server error, BUG a RuntimeError, INTERRUPT a Ctrl-C,
    one holding SURROGATE a reply with a lone surrogate in it.'''
    name = "faulty"

    def __init__(self, context_length=None, **_):
        super().__init__()

    def complete(self, prompt, **kwargs):
        last = prompt.rsplit("user", 1)[-1]
        if "BUG" in last:
            raise RuntimeError("a bug in the backend")
        if "FAIL" in last:
            raise BackendError("Server at http://127.0.0.1:9 answered 500; check the server's log.")
        if "INTERRUPT" in last:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal does to the chat
        self.outputs.append(reply("ok \\ud800 reply" if "SURROGATE" in last else "ok"))
        return super().complete(prompt, **kwargs)

BACKENDS.register("faulty", FaultyBackend)
from memagent.cli import main
sys.argv = ["memagent", *sys.argv[1:]]
main()
"""


def chat(home: Path, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    launcher = home.parent / "faulty_chat.py"
    launcher.write_text(LAUNCHER.format(tests=str(TESTS)))
    env = {**os.environ, "MEMAGENT_HOME": str(home), "NO_COLOR": "1"}
    command = [sys.executable, str(launcher), "chat", "--agent", "sam", "--backend", "faulty", "--no-verify", *extra]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, cwd=home.parent,
                          timeout=300)


def user_messages(home: Path) -> list[str]:
    from memagent.memory.store import Store
    from memagent.messages import envelope_type

    store = Store(home / "memagent.db")
    try:
        agent = store.find_agent("sam")
        page = store.search_messages(agent.id, "", page_size=100, roles=("user",))
        ordered = sorted(page.items, key=lambda m: m.id)
        return [m.text for m in ordered if envelope_type(m.payload) == "user_message"]
    finally:
        store.close()


def test_every_line_handled_exits_0(tmp_path):
    result = chat(tmp_path / "home", "hello\n\n/memory\nagain\n", "--json")
    assert result.returncode == 0, result.stderr
    assert not [e for e in json_events(result.stdout) if e["type"] == "error"]


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "plain"])
def test_a_line_that_ends_with_an_error_exits_1_after_the_other_lines_ran(tmp_path, json_output):
    home = tmp_path / "home"
    result = chat(home, "first\nplease FAIL\nlast\n", *(["--json"] if json_output else []))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if json_output:
        errors = [e for e in json_events(result.stdout) if e["type"] == "error"]
        assert len(errors) == 1 and "answered 500" in errors[0]["text"]
    else:
        assert "✗ Server at http://127.0.0.1:9 answered 500" in result.stdout
    assert user_messages(home) == ["first", "please FAIL", "last"]  # nothing lost, later lines still ran


def test_a_bug_is_one_internal_error_line_and_exit_2_and_debug_shows_its_traceback(tmp_path):
    home = tmp_path / "home"
    result = chat(home, "a BUG please\n", "--json")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[-1] == (
        "memagent: internal error: RuntimeError: a bug in the backend (run with --debug for details)"
    )
    assert "Traceback" not in result.stderr
    debugged = chat(home, "a BUG again\n", "--json", "--debug")
    assert debugged.returncode != 0 and "internal error" not in debugged.stderr
    assert "Traceback" in debugged.stderr and "RuntimeError: a bug in the backend" in debugged.stderr


def test_an_unknown_command_is_an_error_too(tmp_path):
    result = chat(tmp_path / "home", "/nonsense\n", "--json")
    assert result.returncode == 1
    assert json_events(result.stdout)[-1]["text"].startswith("Unknown command /nonsense.")


def test_ctrl_c_exits_130_and_keeps_what_came_before(tmp_path):
    home = tmp_path / "home"
    result = chat(home, "first\nplease INTERRUPT\nnever sent\n", "--json")
    assert result.returncode == 130, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert json_events(result.stdout)[-1]["type"] == "warning"
    assert user_messages(home) == ["first", "please INTERRUPT"]


def test_bytes_that_are_not_utf8_and_control_codes_in_piped_input_are_cleaned_not_fatal(tmp_path):
    home = tmp_path / "home"
    launcher = chat(home, "")  # writes the launcher; an empty chat exits 0
    assert launcher.returncode == 0, launcher.stderr
    command = [sys.executable, str(home.parent / "faulty_chat.py"), "chat", "--agent", "sam", "--backend", "faulty",
               "--no-verify", "--json"]
    env = {**os.environ, "MEMAGENT_HOME": str(home), "NO_COLOR": "1"}
    result = subprocess.run(command, input=b"caf\xe9 \xff au lait\x00\x1b[2J\nnext\n", capture_output=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert user_messages(home) == ["caf\ufffd \ufffd au lait", "next"]
    assert b"\x1b" not in result.stdout


def test_a_lone_surrogate_in_a_reply_does_not_end_the_chat(tmp_path):
    home = tmp_path / "home"
    result = chat(home, "SURROGATE please\n", "--json")
    assert result.returncode == 0, result.stderr
    replies = [e["text"] for e in json_events(result.stdout) if e["type"] == "assistant_message"]
    assert replies == ["ok \ufffd reply"]
    plain = chat(home, "SURROGATE again\n")
    assert plain.returncode == 0 and "🤖 ok \ufffd reply" in plain.stdout, plain.stderr
