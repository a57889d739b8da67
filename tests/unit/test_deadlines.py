"""Deadlines on model calls (issue 16): a server that stalls or drips is cut off with one line naming the
server, the limit and `--timeout`, however the bytes come.

The stalls and drips are real: a raw-socket server in a thread on 127.0.0.1. No test waits for anything
but the call under test, which must return by itself; each fake server gives up after a minute, so a
broken deadline fails the test instead of hanging it."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fakes import ByteLlama
from stalling_server import (
    Behaviour,
    FakeServer,
    drip_headers,
    drip_json_body,
    drip_sse_body,
    drip_unfinished_line,
    events_then_drip,
    headers_then_pause,
    silent,
)

from memagent.errors import BackendError
from memagent.llm.backends.deadline import DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_TIMEOUT, call_limits
from memagent.llm.backends.registry import create_backend


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], FakeServer]]:
    servers: list[FakeServer] = []

    def start(behaviour: Behaviour) -> FakeServer:
        servers.append(FakeServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def assert_one_line(error: BaseException, *parts: str) -> None:
    message = str(error)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


# -- the limits ------------------------------------------------------------------------------------
def test_default_limits_give_control_back_within_the_first_byte_limit_but_let_a_generation_run() -> None:
    limits = call_limits(None)
    assert (limits.first_byte, limits.overall) == (DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_TIMEOUT)
    assert limits.first_byte < 60 < limits.overall


def test_a_given_timeout_is_the_deadline_and_bounds_the_first_byte_too() -> None:
    assert call_limits(90) == call_limits(90, 90)
    assert (call_limits(90).first_byte, call_limits(90).overall) == (90, 90)
    assert call_limits(5, first_byte_timeout=50).first_byte == 5  # never longer than the whole call
    assert call_limits(None, first_byte_timeout=2).overall == DEFAULT_TIMEOUT


@pytest.mark.parametrize("bad", [0, -1, "30", True])
def test_a_bad_timeout_is_one_config_line(bad: Any) -> None:
    with pytest.raises(Exception, match="positive number of seconds") as caught:
        create_backend("llamacpp", context_length=4096, timeout=bad)
    assert type(caught.value).__name__ == "ConfigError"


# -- stalls and drips against a real socket --------------------------------------------------------
def test_a_server_that_never_answers_is_cut_off_at_the_first_byte_limit(serve: Callable[..., FakeServer]) -> None:
    server = serve(silent)
    backend = create_backend("llamacpp", endpoint=server.url, context_length=4096, first_byte_timeout=0.5)
    with backend, pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert_one_line(caught.value, f"the llama.cpp server at {server.url}/completion", "not a byte within 0.5 s",
                    "--timeout SECONDS", "MEMAGENT_TIMEOUT")


def test_a_given_timeout_bounds_a_silent_server(serve: Callable[..., FakeServer]) -> None:
    server = serve(silent)
    backend = create_backend("ollama", endpoint=server.url, model="m", timeout=0.5)
    with backend, pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert_one_line(caught.value, f"the Ollama server at {server.url}/api/generate", "within the 0.5 s deadline",
                    "--timeout SECONDS")


@pytest.mark.parametrize(
    ("behaviour", "name", "options"),
    [
        pytest.param(drip_headers, "llamacpp", {"context_length": 4096}, id="headers"),
        pytest.param(drip_sse_body, "llamacpp", {"context_length": 4096}, id="streamed-body"),
        pytest.param(drip_json_body, "openai-completions", {}, id="whole-body"),
    ],
)
def test_a_server_that_drips_forever_is_cut_off_at_the_deadline(
    serve: Callable[..., FakeServer], behaviour: Behaviour, name: str, options: dict[str, Any]
) -> None:
    """A byte every 50 ms resets any per-read timeout forever; the overall deadline still ends the call."""
    server = serve(behaviour)
    backend = create_backend(name, endpoint=server.url, timeout=0.8, **options)
    with backend, pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert_one_line(caught.value, server.url, "within the 0.8 s deadline", "--timeout SECONDS")


def test_a_streamed_call_shows_what_came_before_the_deadline(serve: Callable[..., FakeServer]) -> None:
    server = serve(events_then_drip)
    pieces: list[str] = []
    backend = create_backend("llamacpp", endpoint=server.url, context_length=4096, timeout=1.0)
    with backend, pytest.raises(BackendError, match="within the 1 s deadline"):
        backend.complete("p", on_text=pieces.append)
    assert pieces[:2] == ["a", "b"] and set(pieces) <= {"a", "b", "c"}


def test_after_the_first_byte_only_the_deadline_bounds_the_wait(serve: Callable[..., FakeServer]) -> None:
    """A server that answered at once and then reads a long prompt in silence is slow, not stalled."""
    server = serve(headers_then_pause(1.0))
    backend = create_backend("llamacpp", endpoint=server.url, context_length=4096, first_byte_timeout=0.3, timeout=60)
    with backend:
        result = backend.complete("p")
    assert (result.text, result.prompt_tokens) == ("done", 3)


def test_the_start_check_gives_up_on_a_silent_server_at_the_first_byte_limit(
    serve: Callable[..., FakeServer],
) -> None:
    server = serve(silent)
    backend = create_backend("koboldcpp", endpoint=server.url, first_byte_timeout=0.5)
    with backend, pytest.raises(BackendError) as caught:
        backend.check_reachable()
    assert_one_line(caught.value, f"the KoboldCpp server at {server.url}", "not a byte within 0.5 s", "--timeout")


def test_the_backend_works_again_after_a_deadline(serve: Callable[..., FakeServer]) -> None:
    """The deadline ends one call, not the backend: the next call gets its own."""
    server = serve(silent)
    answer = {"content": "fine", "stop": True}
    stalled = create_backend("llamacpp", endpoint=server.url, context_length=4096, timeout=0.5)
    with stalled, pytest.raises(BackendError, match="deadline"):
        stalled.complete("p")
    calls = iter([httpx.ReadTimeout("stalled"), httpx.Response(200, json=answer)])

    def play(request: httpx.Request) -> httpx.Response:
        step = next(calls)
        if isinstance(step, Exception):
            raise step
        return step

    backend = create_backend("llamacpp", context_length=4096, timeout=5, transport=httpx.MockTransport(play))
    with pytest.raises(BackendError, match="not a byte within 5 s"):
        backend.complete("p")
    assert backend.complete("p").text == "fine"


# -- Ctrl-C works as before: the read stays in the main thread -------------------------------------
def interrupt_once_asked(conn: Any, stop: Any, request: bytes = b"") -> None:
    """Ctrl-C while the client waits: the request has been read, so the client is in (or entering) its read."""
    os.kill(os.getpid(), signal.SIGINT)
    silent(conn, stop, request)


def test_ctrl_c_while_waiting_for_a_server_interrupts_at_once(serve: Callable[..., FakeServer]) -> None:
    def on_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # as the REPL's handler does

    server = serve(interrupt_once_asked)
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        backend = create_backend("llamacpp", endpoint=server.url, context_length=4096, timeout=60)
        with backend, pytest.raises(KeyboardInterrupt):  # not the deadline's BackendError a minute later
            backend.complete("p")
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_a_streaming_callback_is_not_turned_into_a_backend_error(serve: Callable[..., FakeServer]) -> None:
    server = serve(events_then_drip)

    def show(piece: str) -> None:
        raise KeyboardInterrupt

    backend = create_backend("llamacpp", endpoint=server.url, context_length=4096, timeout=60)
    with backend, pytest.raises(KeyboardInterrupt):
        backend.complete("p", on_text=show)


# -- the deadline covers retries and whatever the transport ----------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_retries_and_their_backoff_count_against_the_deadline() -> None:
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    busy = httpx.Response(503, json={"error": {"message": "Loading model"}})
    backend = create_backend(
        "llamacpp", context_length=4096, timeout=2, retries=10, transport=httpx.MockTransport(lambda _: busy),
        sleep=sleep, clock=clock,
    )
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert sleeps == [0.5, 1.0]  # the next wait (2 s) would end past the deadline: no third try
    assert_one_line(caught.value, "HTTP 503", "Loading model", "3 attempts within the 2 s deadline", "--timeout")


def test_a_stream_that_never_ends_is_cut_at_the_deadline_whatever_the_transport() -> None:
    clock = FakeClock()

    def endless() -> Iterator[bytes]:
        while True:
            clock.advance(1.0)
            yield b'data: {"content": "x"}\n\n'

    answer = httpx.Response(200, content=endless(), headers={"content-type": "text/event-stream"})
    backend = create_backend(
        "llamacpp", context_length=4096, timeout=5, transport=httpx.MockTransport(lambda _: answer), clock=clock
    )
    pieces: list[str] = []
    with pytest.raises(BackendError) as caught:
        backend.complete("p", on_text=pieces.append)
    assert pieces == ["x"] * 4  # the fifth came at the deadline
    assert_one_line(caught.value, "http://127.0.0.1:8080/completion", "within the 5 s deadline", "--timeout")


# -- in process: the deadline is checked after every token ----------------------------------------
def embedded_backend(timeout: float | None) -> Any:
    from pathlib import Path

    from memagent.llm.backends.deadline import DEFAULT_EMBEDDED_TIMEOUT
    from memagent.llm.backends.embedded import EmbeddedBackend
    from memagent.llm.backends.thread_choice import ThreadChoice

    clock = FakeClock()
    backend = EmbeddedBackend.__new__(EmbeddedBackend)  # no model file: the fake stands in for llama.cpp
    backend.limits = call_limits(timeout, default=DEFAULT_EMBEDDED_TIMEOUT)
    backend._clock = clock
    backend.model_path = Path("model.gguf")
    backend.temperature, backend.repeat_penalty, backend._grammars = 0.3, 1.1, {}
    backend._llm = ByteLlama(b"t" * 100, on_step=lambda: clock.advance(1.0))
    backend._busy, backend._threads = threading.RLock(), ThreadChoice((1,))
    return backend


@pytest.mark.parametrize("streamed", [False, True])
def test_an_embedded_generation_past_its_deadline_is_one_line(streamed: bool) -> None:
    backend = embedded_backend(timeout=5)
    pieces: list[str] = []
    with pytest.raises(BackendError) as caught:
        backend.complete("p", max_tokens=100, on_text=pieces.append if streamed else None)
    assert_one_line(caught.value, "embedded model model.gguf", "within the 5 s deadline", "--timeout SECONDS")
    assert backend._clock.now == 1005.0  # stopped at the deadline, not after 100 tokens
    assert pieces == (["t"] * 5 if streamed else [])


def test_an_embedded_generation_within_its_deadline_is_untouched() -> None:
    backend = embedded_backend(timeout=None)  # the generous default
    result = backend.complete("p", max_tokens=100)
    assert result.text == "t" * 100 and result.finish_reason == "length"


def test_a_huggingface_generation_past_its_deadline_is_one_line() -> None:
    from pathlib import Path
    from types import SimpleNamespace

    from memagent.llm.backends.huggingface import HuggingFaceBackend

    clock = FakeClock()
    backend = HuggingFaceBackend.__new__(HuggingFaceBackend)  # no torch: the model's steps are faked
    backend.limits, backend._clock, backend.model_path = call_limits(3), clock, Path("m.gguf")
    backend._eos = frozenset()
    backend._tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens=False: "t" * len(ids))
    backend._prefill = lambda ids: (None, len(ids))  # type: ignore[method-assign]
    backend._pick = lambda logits, history: 7  # type: ignore[method-assign]
    backend._forward = lambda tokens: clock.advance(1.0)  # type: ignore[method-assign]
    with pytest.raises(BackendError) as caught:
        backend._generate([1, 2], [], 100, None)
    assert_one_line(caught.value, "huggingface model m.gguf", "within the 3 s deadline", "--timeout SECONDS")
    assert clock.now == 1003.0


@pytest.mark.parametrize(
    ("behaviour", "name", "options"),
    [
        (drip_json_body, "openai-completions", {}),
        (drip_unfinished_line, "llamacpp", {"context_length": 4096}),
    ],
)
def test_an_answer_begun_and_left_unfinished_is_cut_off_at_the_silence_limit(
    serve: Callable[..., FakeServer], behaviour: Behaviour, name: str, options: dict[str, Any]
) -> None:
    """A dripped body or line never ends, yet a byte now and then keeps a socket's timeout from firing: the
    silence limit, not the 30-minute deadline, ends it (a real server writes each line or body at once)."""
    server = serve(behaviour)
    backend = create_backend(name, endpoint=server.url, timeout=50, first_byte_timeout=0.5, **options)
    with backend, pytest.raises(BackendError) as caught:
        backend.complete("p", on_text=lambda piece: None)
    assert_one_line(caught.value, server.url, "left it unfinished for 0.5 s", "--timeout SECONDS")
