"""A golden transcript: a scripted chat's exact `--json` lines, the exact prompts the model was sent and the exact
rows stored. It guards refactors that must change none of them (typed events and messages, the split agent,
storage on SQLAlchemy Core). Timestamps are the only thing normalised.

When a change is meant to alter the transcript, regenerate it with
`MEMAGENT_UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py` and review the diff of the golden file.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

from fakes import ScriptedBackend, call, reply
from rich.console import Console

from memagent.app import open_agent
from memagent.repl.loop import run_scripted
from memagent.repl.render import EventPrinter
from memagent.settings import Settings

GOLDEN = Path(__file__).parent.parent / "data" / "golden" / "scripted_chat.json"
# MemGPT's timestamps ("2024-05-01 09:53:02 PM UTC+0000") and the store's ISO times.
_TIMES = re.compile(
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M [A-Za-z]*[+-]\d{4}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00"
)

SCRIPT = [
    "My name is Brad and I sail.",
    "/memory",
    "What is my name?",
    "Search what I said about sailing.",
]
OUTPUTS = [
    call("core_memory_append", "I should remember this.", name="human", content="Name: Brad. Likes sailing.",
         request_heartbeat=True),
    reply("Nice to meet you, Brad!"),
    reply("Your name is Brad."),
    call("conversation_search", "Let me look.", query="sailing", request_heartbeat=True),
    "not a call at all",
    reply("You told me you sail."),
]


def normalise(text: str) -> str:
    return _TIMES.sub("<TIME>", text)


def transcript(home: Path) -> dict[str, object]:
    from memagent.memory.store import Store

    backend = ScriptedBackend(OUTPUTS)
    with Store(home / "memagent.db") as store:
        agent, _ = open_agent(Settings(home=home, agent="golden", no_verify=True), store, backend)
        out = io.StringIO()
        printer = EventPrinter(Console(file=out, no_color=True, width=120), json_output=True, echo_user=True)
        status = run_scripted(agent, SCRIPT, printer, home=home)
        row = store.find_agent("golden")
        assert row is not None
        stored = [
            {"role": m.role, "text": m.text, "payload": m.payload}
            for m in store.get_messages(row.id, row.state["in_context"])
        ]
        state = {key: value for key, value in row.state.items() if key != "memory_stats"}
    return {
        "exit_status": status,
        "json_lines": [normalise(line) for line in out.getvalue().splitlines()],
        "prompts": [normalise(prompt) for prompt in backend.prompts],
        "stored": json.loads(normalise(json.dumps(stored, ensure_ascii=False))),
        "state": json.loads(normalise(json.dumps(state, ensure_ascii=False))),
    }


def test_a_scripted_chat_matches_its_golden_transcript(home):
    got = transcript(home)
    if os.environ.get("MEMAGENT_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got["json_lines"] == want["json_lines"]
    assert got["prompts"] == want["prompts"]
    assert got["stored"] == want["stored"]
    assert got == want
