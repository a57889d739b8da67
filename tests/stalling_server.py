"""A fake LLM server on 127.0.0.1 that stalls or drips, for the deadline tests: a raw socket in a thread,
so the bytes go out exactly as scripted (one at a time, or never). Each connection plays a Behaviour;
every behaviour gives up after GIVE_UP seconds, so a broken deadline fails a test instead of hanging it."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable

GIVE_UP = 60.0  # seconds a fake server keeps stalling or dripping before it hangs up
PACE = 0.05  # seconds between dripped bytes

# (connection, stop, request line): what the server does after reading a request
Behaviour = Callable[[socket.socket, threading.Event, bytes], None]


class FakeServer:
    """Accepts connections on 127.0.0.1 and plays `behaviour` on each, in a thread of its own."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.requests: list[bytes] = []  # each request's first line, e.g. b"POST /completion HTTP/1.1"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            self.requests.append(request)
            with contextlib.suppress(OSError):  # the client hung up: that is what the deadline does
                self.behaviour(conn, self.stop, request)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)


def _read_request(conn: socket.socket) -> bytes:
    """Read the request's head and its Content-Length body, so the client's write never blocks; returns
    the request line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data.split(b"\r\n")[0]
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0]) if lengths else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head.split(b"\r\n")[0]


def drip(conn: socket.socket, stop: threading.Event, data: bytes) -> None:
    """Send `data` over and over, one byte every PACE seconds, until GIVE_UP."""
    for index in range(int(GIVE_UP / PACE)):
        if stop.wait(PACE):
            return
        conn.sendall(data[index % len(data) : index % len(data) + 1])


def silent(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
    stop.wait(GIVE_UP)


def drip_headers(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    drip(conn, stop, b"X-Slow: still coming\r\n")


def drip_sse_body(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    drip(conn, stop, b'data: {"content": "a"}\n\n')


def events_then_drip(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    conn.sendall(b'data: {"content": "a"}\n\ndata: {"content": "b"}\n\n')
    drip(conn, stop, b'data: {"content": "c"}\n\n')


def drip_json_body(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    drip(conn, stop, b'{"content": "aaaaaaaa')


def headers_then_pause(pause: float) -> Behaviour:
    """Headers at once, then silence for `pause` seconds (a long prompt being read), then a whole answer."""

    def behaviour(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        if stop.wait(pause):
            return
        event = {"content": "done", "stop": True, "stop_type": "eos", "tokens_predicted": 1, "tokens_evaluated": 3}
        conn.sendall(f"data: {json.dumps(event)}\n\n".encode())

    return behaviour


def routed(routes: dict[bytes, Behaviour], otherwise: Behaviour) -> Behaviour:
    """Play the behaviour whose key starts the request line (b"POST /completion"), else `otherwise`."""

    def behaviour(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
        chosen = next((b for prefix, b in routes.items() if request.startswith(prefix)), otherwise)
        chosen(conn, stop, request)

    return behaviour


def status(code: int, body: bytes = b"{}") -> Behaviour:
    """Answer at once with HTTP `code` and a JSON body."""

    def behaviour(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
        head = f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)

    return behaviour


def drip_unfinished_line(conn: socket.socket, stop: threading.Event, request: bytes = b"") -> None:
    """One whole event, then a line that never ends, a byte at a time."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    conn.sendall(b'data: {"content": "a"}\n\n')
    drip(conn, stop, b'data: {"content": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')
