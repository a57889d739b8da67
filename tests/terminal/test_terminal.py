"""`memagent chat` in a pseudo-terminal on the real embedded SmolLM2: what a person at the keyboard sees.

Every wait is an `expect` on the screen, never a sleep. The model may take a minute per reply on two busy
cores, so the timeouts are generous. The input prompt is recognised by prompt_toolkit switching on
bracketed paste (ESC[?2004h) and drawing ">" (or "…"): that only happens when memagent waits for a line.
"""

from __future__ import annotations

import io
import json
import os
import re

import pexpect
import pytest
from clihelp import MEMAGENT

from memagent.memory.store import Store

pytestmark = [pytest.mark.terminal, pytest.mark.real_model]

AGENT = "tty-sam"
PROMPT = re.compile(r"\x1b\[\?2004h[^\n]*?[>…]")  # "> ", or "… " in multiline mode
REPLY = "🤖"
TURN_TIMEOUT = 420  # seconds for one model turn (first-message verification may retry)
FIELD, VALUE = "memgpt_introduction", "You are Sam, a cheerful sailor from Zanzibar."
CANCELLED_MESSAGE = "Tell me a very long story about the sea"


def spawn(home) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE", "COLUMNS")}
    env.update({"MEMAGENT_HOME": str(home), "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"})
    child = pexpect.spawn(MEMAGENT, ["chat", "--agent", AGENT], env=env, encoding="utf-8",
                          dimensions=(50, 200), timeout=60, cwd=str(home.parent))
    child.logfile_read = io.StringIO()  # the whole screen, shown if an expect times out
    return child


def until_prompt(child: pexpect.spawn, timeout: float = 60) -> str:
    """Everything printed until memagent waits for input again."""
    child.expect(PROMPT, timeout=timeout)
    return child.before


def turn(child: pexpect.spawn, text: str) -> str:
    child.send(text + "\r")
    return until_prompt(child, TURN_TIMEOUT)


def command(child: pexpect.spawn, text: str) -> str:
    child.send(text + "\r")
    return until_prompt(child)


@pytest.fixture(scope="module")
def first_session(tmp_path_factory):
    """Two messages, /memory, a template field edited by answering questions, multiline input, Ctrl-C
    during a generation, one more message, /exit. Returns what the screen showed at each step."""
    home = tmp_path_factory.mktemp("tty") / "home"
    child = spawn(home)
    seen: dict[str, str] = {}
    try:
        child.expect(f"Created agent {AGENT}")
        until_prompt(child, TURN_TIMEOUT)  # a first start evaluates the shared prompt prefix: a turn's worth of work
        seen["reply1"] = turn(child, "My name is Brad")
        seen["reply2"] = turn(child, "I live in Lisbon and I like sailing")
        seen["memory"] = command(child, "/memory")
        child.send("/re\t")  # the completion menu offers the matching commands
        child.expect("/rethink")
        child.send("\x15/edit_template_field\r")  # Ctrl-U clears the line
        child.expect("Template field name:")
        child.send(FIELD + "\r")
        child.expect(f"New value for {FIELD}:")
        seen["edit"] = command(child, VALUE)
        seen["fields"] = command(child, "/fields")
        child.send("//\r")
        child.expect("Multiline mode on")
        until_prompt(child)
        child.send("/rethink first line\rsecond line\x1b\r")  # Enter adds a line; Esc Enter sends
        seen["rethink"] = until_prompt(child)
        assert "Multiline mode off" in command(child, "//")  # a lone // goes back, even in multiline mode
        child.send(CANCELLED_MESSAGE + "\r")
        child.expect("thinking")  # the spinner: the model is working
        child.sendintr()
        seen["cancel"] = until_prompt(child, TURN_TIMEOUT)
        seen["after_cancel"] = turn(child, "Are you still there?")
        child.send("/exit\r")
        child.expect(pexpect.EOF, timeout=60)
        child.close()
        seen["exit_status"] = str(child.exitstatus)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        child.close(force=True)
        screen = child.logfile_read.getvalue()[-6000:]
        raise AssertionError(f"{exc.__class__.__name__}; screen so far:\n{screen}") from None
    return home, seen


def test_replies_appear_on_screen(first_session):
    _, seen = first_session
    for key in ("reply1", "reply2", "after_cancel"):
        assert REPLY in seen[key], seen[key]
        assert "Traceback" not in seen[key]


def test_memory_shows_core_memory_and_counts(first_session):
    _, seen = first_session
    assert "Core memory:" in seen["memory"] and re.search(r"<human> \d+/2000 characters", seen["memory"])
    assert re.search(r"Recall memory: \d+ messages", seen["memory"])


def test_a_template_field_edited_interactively_shows_in_fields(first_session):
    _, seen = first_session
    assert f"Template field '{FIELD}' updated" in seen["edit"]
    assert f"{FIELD}: {VALUE!r}" in seen["fields"]


def test_multiline_input_reaches_the_command_as_one_text(first_session):
    home, seen = first_session
    assert "Replaced the inner thoughts" in seen["rethink"]
    store = Store(home / "memagent.db")
    try:
        row = store.find_agent(AGENT)
        thoughts = [m.payload["content"] for m in store.search_messages(row.id, "second line").items]
    finally:
        store.close()
    assert "first line\nsecond line" in thoughts


def test_ctrl_c_cancels_the_generation_and_the_session_goes_on(first_session):
    _, seen = first_session
    assert "Cancelled. Your message is saved" in seen["cancel"]
    assert REPLY not in seen["cancel"] and "Traceback" not in seen["cancel"]
    assert seen["exit_status"] == "0"


def test_the_agent_resumes_with_its_field_and_messages(first_session):
    home, _ = first_session
    child = spawn(home)
    try:
        child.expect(f"Resumed agent {AGENT}")
        until_prompt(child, TURN_TIMEOUT)  # loading the model and the agent's KV state
        fields = command(child, "/fields")
        dump = command(child, "/dump")
        child.send("/exit\r")
        child.expect(pexpect.EOF)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        child.close(force=True)
        raise AssertionError(f"{exc.__class__.__name__}; screen:\n{child.logfile_read.getvalue()[-6000:]}") from None
    assert f"{FIELD}: {VALUE!r}" in fields
    assert "user_message: My name is Brad" in dump and f"user_message: {CANCELLED_MESSAGE}" in dump
    assert "user_message: Are you still there?" in dump


def test_the_database_has_the_field_and_every_message(first_session):
    home, _ = first_session
    store = Store(home / "memagent.db")
    try:
        row = store.find_agent(AGENT)
        assert row.state["template_fields"] == {FIELD: VALUE}
        for words in ("Brad", "Lisbon sailing", "story sea", "still there"):
            assert store.search_messages(row.id, words, roles=("user",)).total >= 1, words
        users = [m for m in store.get_messages(row.id, row.state["in_context"]) if m.role == "user"]
        said = [json.loads(m.payload["content"]).get("message") for m in users]
        assert said.index(CANCELLED_MESSAGE) < said.index("Are you still there?")
    finally:
        store.close()


def test_the_prompt_is_up_before_the_agent_opens_and_a_bad_model_ends_it_in_one_line(tmp_path):
    """The session opens behind the first prompt; a model file that can't load ends the prompt with its one line."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + bytes(64))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE", "COLUMNS")}
    env.update({"MEMAGENT_HOME": str(home), "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"})
    child = pexpect.spawn(MEMAGENT, ["chat", "--agent", "broken", "--model-path", str(bad)], env=env,
                          encoding="utf-8", dimensions=(50, 200), timeout=120, cwd=str(tmp_path))
    child.logfile_read = io.StringIO()
    try:
        child.expect(PROMPT)  # drawn while the model is still to be loaded
        child.expect("memagent: error: llama.cpp could not load")
        child.expect(pexpect.EOF)
    except (pexpect.TIMEOUT, pexpect.EOF) as exc:
        child.close(force=True)
        raise AssertionError(f"{exc.__class__.__name__}; screen:\n{child.logfile_read.getvalue()[-4000:]}") from None
    child.close()
    assert child.exitstatus == 1
    assert "Traceback" not in child.logfile_read.getvalue()
