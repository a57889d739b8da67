"""A fake llama.cpp `llama-server` on 127.0.0.1: it scripts the model's replies and the server's faults.

    python -m bench.fake_server --port 0 [--script FILE] [--events] [--delay S] [--summary-delay S]

It prints one JSON line when it listens, `{"event": "ready", "url": "http://127.0.0.1:PORT", ...}`, and with
`--events` one more line per model request (`request`, then `answered`), so a driver can act while a request
is in flight. It stops on SIGTERM or SIGINT, or after `--max-seconds`.

What memagent's llamacpp backend uses, answered the way llama-server answers it: `GET /`, `GET /health`,
`GET /props` (n_ctx), `POST /tokenize` (`{"content"}` -> `{"tokens"}`, one token per 4 characters) and
`POST /completion`, non-streamed (`content`, `stop`, `stop_type`, `tokens_predicted`, `tokens_evaluated`,
`timings`) or streamed (`"stream": true`: SSE `data: {...}` lines, the last one with `"stop": true`).

The model's reply is decided by the prompt (the ChatML of memagent's default wrapper): the last user message
carries a command, and the reply is a call in the chatml JSON format.

* `say:TOKEN` -> send_message("reply TOKEN")
* `append:TOKEN` -> core_memory_append(human, TOKEN), then, once its result is in the prompt,
  send_message("noted TOKEN")
* `fault:NAME` -> the fault NAME (FAULTS below) on that request; after a call-shaped fault (surrogate,
  bigarg) the next step gets send_message("noted fault")
* anything else -> send_message("ok"); a summarizer's request (the prompt ends with "SUMMARY: ") gets a
  plain-text summary.

Replies queued by `--script FILE` (a JSON list, or an object with "replies" and the settings below) or by
`POST /_control` are used first, one per /completion request: `{"content": RAW}`, `{"call": NAME, "params":
{...}}` or `{"fault": NAME}`. `POST /_control` also sets `fault` (applied to every /completion until
cleared with null), `delay` and `summary_delay` (seconds); `GET /_stats` counts the requests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CHARS_PER_TOKEN = 4
HUGE_BYTES = 50_000_000  # the "50 MB body" fault
BIG_ARGUMENT_CHARS = 150_000  # the "150 KB call argument" fault
HOLD_MAX_S = 3600.0  # a stalled or dripping answer ends by itself after this (or when the server stops)
FAULTS = (
    "500",  # HTTP 500 with llama-server's error JSON
    "404",  # HTTP 404, as for a wrong path
    "garbage",  # HTTP 200, a body that is not JSON
    "empty",  # HTTP 200, an empty body
    "stall",  # reads the request, never answers
    "drip",  # HTTP 200 headers, then one byte a second, forever
    "reset",  # reads the request, closes with a TCP reset
    "huge",  # HTTP 200, a 50 MB JSON answer
    "surrogate",  # the model writes a lone surrogate escape (\ud800) in send_message's text
    "surrogate-raw",  # the server's own JSON carries a lone surrogate in `content`
    "bigarg",  # the model calls archival_memory_insert with a 150 KB argument
    "crash",  # the server process dies on this request (every later request: connection refused)
)
COMMAND = re.compile(r"\b(say|append|fault):([\w.\-]+)")
TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>\n?|$)", re.DOTALL)
SUMMARY_MARK = "SUMMARY: "


# -- what the model says ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    content: str = ""
    fault: str | None = None
    summary: bool = False


def call_text(function: str, thoughts: str, /, **params: Any) -> str:
    """A call as memagent's chatml wrapper asks for it (inner thoughts inside params)."""
    body = {"function": function, "params": {"inner_thoughts": thoughts, **params}}
    return json.dumps(body, ensure_ascii=False)


def send(text: str, thoughts: str = "Answering.") -> Reply:
    return Reply(call_text("send_message", thoughts, message=text))


def chatml_turns(prompt: str) -> list[tuple[str, str]]:
    """(role, text) of each closed turn; the open assistant turn at the end is left out."""
    turns = [(m.group(1), m.group(2)) for m in TURN.finditer(prompt)]
    return turns[:-1] if turns and not prompt.rstrip().endswith("<|im_end|>") else turns


def user_text(content: str) -> tuple[str | None, str]:
    """(envelope type, words) of a user turn: memagent wraps user input in a JSON envelope."""
    try:
        envelope = json.loads(content)
    except ValueError:
        return "user_message", content
    if not isinstance(envelope, dict):
        return "user_message", content
    return envelope.get("type"), str(envelope.get("message") or envelope.get("reason") or "")


def decide(prompt: str) -> Reply:
    """The scripted model: the reply to `prompt` from the command in its last user message."""
    if prompt.rstrip().endswith(SUMMARY_MARK.strip()):
        return Reply("I talked with the user; they sent test commands and I answered each.", summary=True)
    turns = chatml_turns(prompt)
    last_user = None
    for index in range(len(turns) - 1, -1, -1):
        role, text = turns[index]
        if role == "user" and user_text(text)[0] == "user_message":
            last_user = index
            break
    if last_user is None:
        return send("ok")
    words = user_text(turns[last_user][1])[1]
    match = COMMAND.search(words)
    calls_since = sum(
        1 for role, text in turns[last_user + 1 :] if role == "assistant" and not text.startswith("FUNCTION RETURN")
    )
    if match is None:
        return send("ok")
    verb, token = match.groups()
    if calls_since:  # the action was taken: its result is in the prompt, so answer the user and stop
        return send(f"noted {token}" if verb == "append" else "noted fault")
    if verb == "say":
        return send(f"reply {token}")
    if verb == "append":
        return Reply(call_text("core_memory_append", "Saving it.", name="human", content=token, request_heartbeat=True))
    return fault_reply(token)


def fault_reply(name: str) -> Reply:
    if name == "surrogate":  # the model writes the JSON escape; memagent's parser decodes it to a lone surrogate
        return Reply(call_text("send_message", "Odd.", message="broken MARK").replace("MARK", "\\ud800"))
    if name == "bigarg":
        filler = ("lorem ipsum dolor sit amet " * (BIG_ARGUMENT_CHARS // 27 + 1))[:BIG_ARGUMENT_CHARS]
        return Reply(call_text("archival_memory_insert", "Storing a lot.", content=filler, request_heartbeat=True))
    return Reply(fault=name)


def scripted_reply(entry: dict[str, Any]) -> Reply:
    if entry.get("fault"):
        return fault_reply(str(entry["fault"]))
    if entry.get("call"):
        params = dict(entry.get("params") or {})
        thoughts = str(params.pop("inner_thoughts", "Scripted."))
        return Reply(call_text(str(entry["call"]), thoughts, **params))
    return Reply(str(entry.get("content", "")))


# -- the server ---------------------------------------------------------------------------------------


@dataclass
class Settings:
    n_ctx: int = 8192
    delay: float = 0.0
    summary_delay: float = 0.0
    fault: str | None = None
    events: bool = False
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    stats: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def configure(self, data: dict[str, Any]) -> None:
        with self.lock:
            for key in ("n_ctx", "delay", "summary_delay", "fault"):
                if key in data:
                    setattr(self, key, data[key])
            if "replies" in data or "script" in data:
                self.queue = deque(data.get("replies") or data.get("script") or [])

    def next_reply(self, prompt: str) -> Reply:
        with self.lock:
            if self.queue:
                return scripted_reply(self.queue.popleft())
            if self.fault:
                return fault_reply(self.fault)
        return decide(prompt)

    def note(self, event: str, **data: Any) -> None:
        with self.lock:
            self.stats[f"{event}:{data.get('kind', '')}"] += 1
            if self.events:
                print(json.dumps({"event": event, "t": time.time(), **data}), flush=True)


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def completion_body(reply: Reply, prompt: str, **extra: Any) -> dict[str, Any]:
    predicted, evaluated = tokens(reply.content), tokens(prompt)
    return {
        "content": reply.content,
        "stop": True,
        "stop_type": "eos",
        "tokens_predicted": predicted,
        "tokens_evaluated": evaluated,
        "timings": {"prompt_n": evaluated, "prompt_ms": 1.0, "predicted_n": predicted, "predicted_ms": 1.0},
        **extra,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    # -- plumbing ------------------------------------------------------------------------------------
    def send_bytes(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, data: Any) -> None:
        self.send_bytes(status, json.dumps(data).encode())

    def read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    # -- routes --------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        settings = self.server.settings
        if self.path == "/":
            self.send_bytes(200, b"<!doctype html><title>fake llama-server</title>", "text/html")
        elif self.path == "/health":
            self.send_json(200, {"status": "ok"})
        elif self.path == "/props":
            self.send_json(200, {"default_generation_settings": {"n_ctx": settings.n_ctx}, "total_slots": 1})
        elif self.path == "/_stats":
            with settings.lock:
                self.send_json(200, dict(settings.stats))
        else:
            self.send_json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def do_POST(self) -> None:  # noqa: N802
        settings = self.server.settings
        body = self.read_json()
        if self.path == "/tokenize":
            self.send_json(200, {"tokens": list(range(tokens(str(body.get("content") or ""))))})
        elif self.path == "/completion":
            self.complete(body)
        elif self.path == "/_control":
            settings.configure(body)
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def complete(self, body: dict[str, Any]) -> None:
        settings = self.server.settings
        prompt = str(body.get("prompt") or "")
        reply = settings.next_reply(prompt)
        kind = "summary" if reply.summary else f"fault-{reply.fault}" if reply.fault else "step"
        settings.note("request", kind=kind, prompt_tokens=tokens(prompt))
        wait = settings.summary_delay if reply.summary else settings.delay
        if wait and settings.stopping.wait(wait):
            return
        if reply.fault:
            self.fault(reply.fault)
        elif body.get("stream"):
            self.stream(reply, prompt)
        else:
            self.send_bytes(200, json.dumps(completion_body(reply, prompt)).encode())
        settings.note("answered", kind=kind)

    def stream(self, reply: Reply, prompt: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        text = reply.content
        for start in range(0, len(text), 8):
            piece = {"content": text[start : start + 8], "stop": False}
            self.wfile.write(f"data: {json.dumps(piece)}\n\n".encode())
        final = completion_body(reply, prompt, content="")
        self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())

    def fault(self, name: str) -> None:  # noqa: C901 - one branch per fault, read as a table
        stopping = self.server.settings.stopping
        if name == "500":
            self.send_json(500, {"error": {"code": 500, "message": "fake failure", "type": "server_error"}})
        elif name == "404":
            self.send_json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
        elif name == "garbage":
            self.send_bytes(200, b"<html>\x00\xff\xfe garbage {{{ not json", "text/html")
        elif name == "empty":
            self.send_bytes(200, b"")
        elif name == "stall":
            self.close_connection = True
            stopping.wait(HOLD_MAX_S)
        elif name == "drip":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            deadline = time.monotonic() + HOLD_MAX_S
            while time.monotonic() < deadline and not stopping.wait(1.0):
                self.wfile.write(b" ")
                self.wfile.flush()
        elif name == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif name == "huge":
            self.send_bytes(200, huge_body())
        elif name == "surrogate-raw":
            reply = Reply(call_text("send_message", "Odd.", message="broken \ud800 text"))
            self.send_bytes(200, json.dumps(completion_body(reply, "")).encode())  # ensure_ascii: "\ud800"
        elif name == "crash":
            os._exit(3)
        else:
            self.send_json(500, {"error": {"code": 500, "message": f"unknown fault {name!r}", "type": "server_error"}})


_HUGE: list[bytes] = []


def huge_body() -> bytes:
    if not _HUGE:
        filler = "lorem ipsum dolor sit amet " * (HUGE_BYTES // 27 + 1)
        _HUGE.append(json.dumps(completion_body(Reply(filler[:HUGE_BYTES]), "")).encode())
    return _HUGE[0]


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True  # a stalled answer must not keep the process alive
    allow_reuse_address = True

    def __init__(self, port: int, settings: Settings) -> None:
        super().__init__((HOST, port), Handler)
        self.settings = settings

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client gone mid-answer (killed, timed out) is expected
            super().handle_error(request, client_address)  # a bug in this server: its traceback on stderr

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"


def load_script(path: Path | None, settings: Settings) -> None:
    if path is None:
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    settings.configure({"replies": data} if isinstance(data, list) else data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed on the ready line)")
    parser.add_argument("--script", type=Path, help="JSON: replies to use first, and settings")
    parser.add_argument("--events", action="store_true", help="print a JSON line per model request")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each model answer")
    parser.add_argument("--summary-delay", type=float, default=0.0, help="seconds before a summary answer")
    parser.add_argument("--fault", choices=FAULTS, help="answer every /completion with this fault")
    parser.add_argument("--n-ctx", type=int, default=8192, help="the context size /props reports")
    parser.add_argument("--max-seconds", type=float, default=6 * 3600, help="stop by itself after this")
    args = parser.parse_args()
    settings = Settings(args.n_ctx, args.delay, args.summary_delay, args.fault, args.events)
    load_script(args.script, settings)
    server = FakeServer(args.port, settings)

    def stop(*_args: object) -> None:
        settings.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    print(json.dumps({"event": "ready", "url": server.url, "port": server.server_address[1]}), flush=True)
    settings.stopping.wait(args.max_seconds)
    settings.stopping.set()  # ends stalled and dripping answers too
    server.shutdown()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
