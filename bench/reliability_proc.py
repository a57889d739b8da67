"""The real processes the reliability benchmark drives, and what it reads back from the database.

`FakeServer` runs `python -m bench.fake_server` and waits for its ready line; `Chat` runs one
`memagent chat --backend llamacpp --json` against it with messages piped on stdin, reading its events as they
are printed (each stream drained by a thread into one queue, so nothing blocks); `check_agent` reads the SQLite
file afterwards. Every wait has a deadline; every process started here is ended here, by its id.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.common import PYTHON, ROOT

MEMAGENT = str(Path(PYTHON).parent / "memagent")
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMAGENT_", "BACKEND_TYPE", "OPENAI_"))}
    local = f"{HOST},localhost"  # a proxy must never see a request to 127.0.0.1
    return {**env, "MEMAGENT_HOME": str(home), "NO_COLOR": "1", "NO_PROXY": local, "no_proxy": local}


def closed_port() -> int:
    """A port nothing listens on (the OS picked it free; nobody is given it again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _drain(stream: IO[bytes], name: str, sink: queue.Queue[tuple[str, float, Any]]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        try:
            data: Any = json.loads(line) if name == "out" else line
        except ValueError:
            data = line
        sink.put((name, time.monotonic(), data))
    sink.put(("eof", time.monotonic(), name))


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group this module started (its own session: the chat and its forked child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT)


class FakeServer:
    """`python -m bench.fake_server` on 127.0.0.1 at a free port; `events` gets its request lines."""

    def __init__(self, *, delay: float = 0.0, summary_delay: float = 0.0, max_seconds: float = 7200.0) -> None:
        self.argv = [
            PYTHON,
            *("-m", "bench.fake_server", "--port", "0", "--events"),
            *("--delay", str(delay), "--summary-delay", str(summary_delay), "--max-seconds", str(max_seconds)),
        ]
        self.events: queue.Queue[tuple[str, float, Any]] = queue.Queue()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> FakeServer:
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        assert self.process.stdout is not None
        threading.Thread(target=_drain, args=(self.process.stdout, "out", self.events), daemon=True).start()
        try:
            _, _, ready = self.events.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"the fake server gave no ready line within {READY_TIMEOUT:g} s") from None
        self.url = ready["url"]
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _end_group(self.process)


@dataclass
class Chat:
    """One `memagent chat --json` process: the messages go in on stdin, events come out as they print."""

    home: Path
    agent: str
    url: str
    messages: list[str]
    context_length: int = 8192
    process: subprocess.Popen[bytes] | None = None
    lines: queue.Queue[tuple[str, float, Any]] = field(default_factory=queue.Queue)
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float | None = None
    exit_code: int | None = None
    open_streams: int = 2
    message_stored_at: float | None = None  # when the first user_message event was read

    def argv(self) -> list[str]:
        return [
            MEMAGENT,
            *("chat", "--backend", "llamacpp", "--endpoint", self.url),
            *("--context-length", str(self.context_length), "--agent", self.agent, "--json"),
        ]

    def start(self) -> Chat:
        self.home.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.argv(),
            env=environment(self.home),
            cwd=self.home,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdin and self.process.stdout and self.process.stderr
        for stream, name in ((self.process.stdout, "out"), (self.process.stderr, "err")):
            threading.Thread(target=_drain, args=(stream, name, self.lines), daemon=True).start()
        text = "".join(f"{m}\n" for m in self.messages).encode("utf-8", errors="surrogatepass")
        try:  # small enough for the pipe's buffer: written whole, then end of input
            self.process.stdin.write(text)
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        return self

    def next(self, timeout: float) -> tuple[str, float, Any] | None:
        """The next line printed (("out", t, event) or ("err", t, text)), None on timeout or at the end."""
        if self.open_streams == 0:
            return None
        try:
            item = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        kind, _, data = item
        if kind == "eof":
            self.open_streams -= 1
        elif kind == "out":
            self.events.append(data if isinstance(data, dict) else {"type": "raw", "text": data})
            if self.message_stored_at is None and self.events[-1].get("type") == "user_message":
                self.message_stored_at = item[1]
        else:
            self.stderr.append(data)
        return item

    def child(self) -> int | None:
        """The forked child that runs the chat (memagent/cli/crash_guard.py), if it exists yet."""
        assert self.process is not None
        try:
            text = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return None
        pids = [int(p) for p in text.split()]
        return pids[0] if pids else None

    def finish(self, cap: float) -> bool:
        """Read until the process exits, at most `cap` seconds from its start; False (and killed) if it didn't."""
        assert self.process is not None
        deadline = self.started + cap
        while self.open_streams and time.monotonic() < deadline:
            self.next(deadline - time.monotonic())
        try:
            self.exit_code = self.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _end_group(self.process)
            self.exit_code = self.process.returncode
            self.drain_rest()
            return False
        self.ended = time.monotonic()
        self.drain_rest()
        return True

    def drain_rest(self, seconds: float = 2.0) -> None:
        deadline = time.monotonic() + seconds
        while self.open_streams and time.monotonic() < deadline:
            self.next(deadline - time.monotonic())

    def kill(self, who: str) -> tuple[int | None, bool]:
        """SIGKILL the child ("child") or the parent ("parent"): (the child's pid, whether the kill landed)."""
        assert self.process is not None
        child = self.child()
        target = child if who == "child" and child else self.process.pid
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            return child, False
        return child, True

    def wait_gone(self, child: int | None) -> bool:
        """After a kill: the parent reaped and the child gone (it is told SIGTERM when its parent dies).
        False if the child outlived its parent by STOP_TIMEOUT (then it is killed)."""
        assert self.process is not None
        try:
            self.exit_code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _end_group(self.process)
            self.exit_code = self.process.returncode
        self.ended = time.monotonic()
        gone = child is None or _wait_pid_gone(child, STOP_TIMEOUT)
        if not gone:
            _end_group(self.process)  # the child is in the same session
            _wait_pid_gone(child, STOP_TIMEOUT)
        self.drain_rest()
        return gone

    # -- what it printed -----------------------------------------------------------------------------
    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def replies(self) -> list[str]:
        return [str(e.get("text")) for e in self.of_type("assistant_message")]

    def ok_edits(self) -> list[str]:
        """The content of every core_memory_append whose function_return said OK."""
        edits, pending = [], None
        for event in self.events:
            if event.get("type") == "function_call":
                pending = event if event.get("text") == "core_memory_append" else None
            elif event.get("type") == "function_return" and pending is not None:
                if event.get("status") == "OK":
                    edits.append(str(pending.get("arguments", {}).get("content")))
                pending = None
        return edits


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):  # dead, waiting for init to reap it: its files and locks are released
            return True
        time.sleep(0.02)
    return False


# -- the database ---------------------------------------------------------------------------------------


@dataclass
class AgentCheck:
    """What the database holds for one agent after a run."""

    exists: bool = False
    integrity: str = "no database"
    core_lines: set[str] = field(default_factory=set)
    sent: Counter[str] = field(default_factory=Counter)  # send_message texts stored, with their counts
    user_ids: dict[str, list[int]] = field(default_factory=dict)  # user message text -> ids
    appended: set[str] = field(default_factory=set)  # core_memory_append contents stored as calls
    half_applied: int = 0  # a call without its result right after it, or a result without its call
    error: str = ""


def check_agent(db: Path, agent: str) -> AgentCheck:
    check = AgentCheck()
    if not db.exists():
        return check
    try:
        con = sqlite3.connect(db, timeout=10)
        try:
            check.integrity = str(con.execute("PRAGMA integrity_check").fetchone()[0])
            row = con.execute("SELECT id, state FROM agents WHERE name = ?", (agent,)).fetchone()
            if row is None:
                return check
            check.exists = True
            state = json.loads(row[1])
            for section in (state.get("core_memory") or {}).values():
                content = section.get("content", "") if isinstance(section, dict) else str(section)
                check.core_lines.update(content.splitlines())
            rows = con.execute("SELECT id, role, payload FROM messages WHERE agent_id = ? ORDER BY id", (row[0],))
            _read_messages(check, rows.fetchall())
        finally:
            con.close()
    except (sqlite3.Error, ValueError) as exc:
        check.error = f"{type(exc).__name__}: {exc}"
    return check


def _read_messages(check: AgentCheck, rows: list[tuple[int, str, str]]) -> None:
    previous_call = False
    for message_id, role, payload_text in rows:
        payload = json.loads(payload_text)
        call = payload.get("function_call") if role == "assistant" else None
        if previous_call and role != "function":
            check.half_applied += 1
        if role == "function" and not previous_call:
            check.half_applied += 1
        previous_call = bool(call)
        if call:
            args = call.get("arguments") or "{}"
            args = json.loads(args) if isinstance(args, str) else args
            if call.get("name") == "send_message":
                check.sent[str(args.get("message"))] += 1
            elif call.get("name") == "core_memory_append":
                check.appended.add(str(args.get("content")))
        elif role == "user":
            try:
                envelope = json.loads(payload.get("content") or "")
            except ValueError:
                envelope = {}
            if isinstance(envelope, dict) and envelope.get("type") == "user_message":
                check.user_ids.setdefault(str(envelope.get("message")), []).append(message_id)
    if previous_call:
        check.half_applied += 1
