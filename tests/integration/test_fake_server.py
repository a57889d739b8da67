"""The reliability benchmark's fake llama.cpp server (bench/fake_server.py), as a real process on 127.0.0.1:
one scripted `memagent chat --backend llamacpp --json` turn against it, and its streamed answer's shape.

Synchronisation is by what the processes print (the server's ready line, the chat's exit), never by sleeping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import LOCAL_ONLY_ENV

pytestmark = pytest.mark.real_server

ROOT = Path(__file__).resolve().parents[2]
MEMAGENT = str(Path(sys.executable).parent / "memagent")
TIMEOUT = 120.0


@pytest.fixture
def fake_server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_server", "--port", "0", "--max-seconds", "600"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline() or "{}")  # blocks until the server listens (or dies)
        assert ready.get("event") == "ready", process.stderr.read() if process.poll() is not None else ready
        yield ready["url"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def chat(url: str, home: Path, text: str) -> tuple[int, list[dict[str, object]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMAGENT_", "BACKEND_TYPE"))}
    env.update(LOCAL_ONLY_ENV, MEMAGENT_HOME=str(home), NO_COLOR="1")
    argv = [MEMAGENT, "chat", "--backend", "llamacpp", "--endpoint", url, "--context-length", "8192"]
    result = subprocess.run(
        [*argv, "--agent", "smoke", "--json"],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=TIMEOUT,
    )
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines() if line.strip()], result.stderr


def test_a_scripted_turn_gets_the_scripted_reply(fake_server: str, tmp_path: Path) -> None:
    code, events, stderr = chat(fake_server, tmp_path, "say:hello\nappend:marker-1\n")
    assert code == 0, stderr
    replies = [e["text"] for e in events if e["type"] == "assistant_message"]
    assert replies == ["reply hello", "noted marker-1"], events
    edits = [e for e in events if e["type"] == "function_call" and e["text"] == "core_memory_append"]
    assert edits and edits[0]["arguments"] == {"name": "human", "content": "marker-1"}


def test_it_streams_like_llama_server(fake_server: str) -> None:
    import httpx

    body = {"prompt": '<|im_start|>user\n{"type": "user_message", "message": "say:x"}<|im_end|>\n', "stream": True}
    with httpx.Client(base_url=fake_server, timeout=30, trust_env=False) as client:
        assert client.post("/tokenize", json={"content": "abcdefgh"}).json() == {"tokens": [0, 1]}
        with client.stream("POST", "/completion", json=body) as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    text = "".join(e["content"] for e in events)
    assert json.loads(text)["params"]["message"] == "reply x"
    assert events[-1]["stop"] is True and events[-1]["stop_type"] == "eos"
