"""`memagent chat --timeout` against a llama.cpp server that takes the request and never answers: the turn
ends with one line naming the server, the deadline and the flag, and the user's message is kept."""

from __future__ import annotations

from pathlib import Path

from clihelp import json_events, run_cli
from stalling_server import FakeServer, routed, silent, status

from memagent.memory.store import Store
from memagent.messages import envelope_type

LOCAL_ONLY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def stored_user_texts(home: Path, agent: str) -> list[str]:
    store = Store(home / "memagent.db")
    try:
        found = store.find_agent(agent)
        assert found is not None
        page = store.search_messages(found.id, "", page_size=100, roles=("user",))
        return [m.text for m in sorted(page.items, key=lambda m: m.id) if envelope_type(m.payload) == "user_message"]
    finally:
        store.close()


def test_a_stalled_server_ends_the_turn_at_the_timeout_with_one_line(tmp_path: Path) -> None:
    # The server answers the start check and has no tokenizer (404: counts are estimated); generation stalls.
    server = FakeServer(routed({b"POST /completion": silent, b"POST /tokenize": status(404)}, status(200)))
    home = tmp_path / "home"
    try:
        result = run_cli(
            ["chat", "--agent", "slow", "--json", "--backend", "llamacpp", "--endpoint", server.url,
             "--context-length", "8192", "--timeout", "2"],
            home, stdin="Hello?\n", timeout=300, env=LOCAL_ONLY,
        )
    finally:
        server.close()
    explain = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, explain
    errors = [e for e in json_events(result.stdout) if e["type"] == "error"]
    assert len(errors) == 1, explain
    text = errors[0]["text"]
    assert "\n" not in text and f"the llama.cpp server at {server.url}/completion" in text, explain
    assert "within the 2 s deadline" in text and "--timeout SECONDS" in text, explain
    assert stored_user_texts(home, "slow") == ["Hello?"]
