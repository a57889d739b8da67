"""memagent against real local servers on 127.0.0.1: llama.cpp's llama-server (`--backend llamacpp`) and
llama-cpp-python's OpenAI-compatible server (`--backend openai-completions`), both serving SmolLM2-135M.

The servers start once per session (servers.py). Conversations go through the real `memagent` console
script; the wire-level checks (response fields, KV-cache reuse, the GBNF) use the backend classes directly.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clihelp import MEMAGENT, json_events, run_cli
from servers import CONTEXT_SIZE, LOCAL_ONLY_ENV, RunningServer, free_port

from memagent.app import open_agent
from memagent.errors import BackendError, ContextOverflowError
from memagent.events import Event
from memagent.functions.memory import builtin_functions
from memagent.llm.backends.base import Completion, Constraint, estimate_tokens
from memagent.llm.backends.http import HTTPBackend
from memagent.llm.backends.llamacpp import LlamaCppBackend
from memagent.llm.backends.openai_completions import OpenAICompletionsBackend
from memagent.llm.constraint import build_constraint, choice_constraint
from memagent.llm.wrappers.registry import create_wrapper
from memagent.memory.store import Store
from memagent.messages import UserMessage, assistant_call, boot_messages, envelope_type, function_result, user_message
from memagent.settings import Settings

pytestmark = pytest.mark.real_server

AGENT = "srv"
CLI_TIMEOUT = 1800.0  # ten turns on a busy 2-core machine
# A first prompt of ~2,000 tokens takes a CPU server over the default 30 s of silence when the 2 cores are busy; the
# deadlines themselves are tested in test_deadlines_real.py, so these conversations give the model time.
MODEL_TIMEOUT = "600"
EVENT_TIMEOUT = 600.0
CONVERSATION = [
    "Hi! My name is Brad.",
    "I live in Lisbon and I love sailing.",
    "My favourite food is grilled sardines.",
    "I work as a marine biologist.",
    "My sister Ana lives in Porto.",
    "What is my name?",
    "Where do I live?",
    "Please remember that my cat is called Pixel.",
    "What is the name of my cat?",
    "Thanks, that is all for today. Goodbye!",
]
UNCONSTRAINED = ["Hello there, I am Carla.", "I grow tomatoes on my balcony.", "What do I grow?"]
# Which session fixture serves each server backend.
SERVER_FIXTURES = {"llamacpp": "llama_server", "openai-completions": "llama_cpp_python_server"}
BACKEND_CLASSES: dict[str, type[HTTPBackend]] = {
    "llamacpp": LlamaCppBackend,
    "openai-completions": OpenAICompletionsBackend,
}
KV_TURNS = ("Hi! My name is Brad.", "What is my name?", "I live in Lisbon.", "Where do I live?")
# Functions whose success rewrites the system message (core memory, or the memory counts and timestamp).
MEMORY_EDITS = {"core_memory_append", "core_memory_replace", "archival_memory_insert"}
# (function, earlier calls of it as (user message, arguments), the new user message)
GRAMMAR_CASES: list[tuple[str, list[tuple[str, dict[str, Any]]], str]] = [
    (
        "core_memory_append",
        [
            ("My dog is Rex.", {"name": "human", "content": "Has a dog called Rex.", "request_heartbeat": True}),
            ("I was born in Oslo.", {"name": "human", "content": "Born in Oslo.", "request_heartbeat": True}),
        ],
        "I drive a red bike.",
    ),
    (
        "conversation_search",
        [
            ("What did I say about cats?", {"query": "cats", "page": 0, "request_heartbeat": True}),
            ("What did I say about Rome?", {"query": "Rome", "page": 1, "request_heartbeat": True}),
        ],
        "What did I say about jazz?",
    ),
    (
        "archival_memory_insert",
        [
            ("Archive this: the door code is 1234.", {"content": "The door code is 1234.", "request_heartbeat": False}),
            ("Archive this: the bus leaves at 9.", {"content": "The bus leaves at 9.", "request_heartbeat": False}),
        ],
        "Archive this: the boat is blue.",
    ),
    ("pause_heartbeats", [("Be quiet for 10 minutes.", {"minutes": 10}), ("Be quiet for 30 minutes.", {"minutes": 30})],
     "Be quiet for 5 minutes."),
    (
        "conversation_search_date",
        [
            ("What did we say on 2024-01-02?", {"start_date": "2024-01-02", "end_date": "2024-01-02",
                                                "request_heartbeat": True}),
            ("What did we say on 2024-03-05?", {"start_date": "2024-03-05", "end_date": "2024-03-06",
                                                "request_heartbeat": True}),
        ],
        "What did we say on 2024-05-07?",
    ),
]


# -- helpers ---------------------------------------------------------------------------------------


@dataclass
class ChatRun:
    home: Path
    backend: str
    server: RunningServer
    result: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def events(self) -> list[dict[str, Any]]:
        return json_events(self.result.stdout)

    def explain(self) -> str:
        """Everything needed to understand a failed assertion about this run."""
        return (
            f"{self.backend} chat (exit {self.result.returncode}, {self.seconds:.0f}s)\n--- stdout ---\n"
            f"{self.result.stdout}\n--- stderr ---\n{self.result.stderr}\n--- server ---\n{self.server.describe()}"
        )


def chat_args(backend: str, server: RunningServer, *extra: str) -> list[str]:
    args = ["chat", "--agent", AGENT, "--json", "--backend", backend, "--endpoint", server.url, "--timeout",
            MODEL_TIMEOUT, *extra]
    if backend == "openai-completions":  # llama-cpp-python can't tell its context size
        args += ["--context-length", str(CONTEXT_SIZE)]
    return args


def run_chat(backend: str, server: RunningServer, home: Path, messages: Sequence[str], *extra: str) -> ChatRun:
    started = time.monotonic()
    result = run_cli(
        chat_args(backend, server, *extra), home, stdin="\n".join(messages) + "\n", timeout=CLI_TIMEOUT,
        env=LOCAL_ONLY_ENV,
    )
    run = ChatRun(home, backend, server, result, time.monotonic() - started)
    (home.parent / "chat.stdout.jsonl").write_text(result.stdout, encoding="utf-8")  # kept for a post-mortem
    return run


def of_type(events: Sequence[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] in kinds]


def turns(events: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The events of each turn: from a user_message up to the next one."""
    found: list[list[dict[str, Any]]] = []
    for event in events:
        if event["type"] == "user_message":
            found.append([])
        if found:
            found[-1].append(event)
    return found


def stored_user_texts(home: Path) -> list[str]:
    """The user's messages as stored in the agent's SQLite database, oldest first."""
    store = Store(home / "memagent.db")
    try:
        agent = store.find_agent(AGENT)
        assert agent is not None, f"agent {AGENT!r} is not in {home / 'memagent.db'}"
        page = store.search_messages(agent.id, "", page_size=1000, roles=("user",))
        rows = sorted(page.items, key=lambda m: m.id)
        return [m.text for m in rows if envelope_type(m.payload) == "user_message"]
    finally:
        store.close()


def stored_message_count(home: Path) -> int:
    store = Store(home / "memagent.db")
    try:
        agent = store.find_agent(AGENT)
        assert agent is not None
        return store.count_messages(agent.id)
    finally:
        store.close()


def all_schemas() -> list[dict[str, Any]]:
    registry = builtin_functions()
    return [f.schema for f in registry.select(registry.names())]


def server_backend(backend: str, server: RunningServer, **settings: Any) -> HTTPBackend:
    """The backend with the same generous deadlines as the CLI runs above (MODEL_TIMEOUT): a ~2,000-token prompt on a
    busy 2-core CI machine can keep a CPU server silent past the default. The deadlines are tested on their own."""
    limits = {"timeout": float(MODEL_TIMEOUT), "first_byte_timeout": float(MODEL_TIMEOUT)}
    return BACKEND_CLASSES[backend](server.url, context_length=CONTEXT_SIZE, **{**limits, **settings})


def agent_prompt(backend: HTTPBackend, home: Path, text: str) -> str:
    """The exact prompt memagent sends for a new agent's first reply to `text` (default preset, chatml)."""
    store = Store(home / "memagent.db")
    try:
        agent, _ = open_agent(Settings(home=home, agent="prompt", no_verify=True), store, backend)
        return agent.prompt([UserMessage(text)])
    finally:
        store.close()


def chatml_constraint() -> Constraint:
    wrapper = create_wrapper("chatml", constrained=True)
    return build_constraint(wrapper.output_schema(all_schemas()))


class RecordingLlamaCpp(LlamaCppBackend):
    """The real llama.cpp backend, keeping every Completion and how many events preceded each request."""

    def __init__(self, *args: Any, events: list[Event], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.completions: list[Completion] = []
        self.marks: list[int] = []
        self._events = events

    def complete(self, prompt: str, **kwargs: Any) -> Completion:
        self.marks.append(len(self._events))
        completion = super().complete(prompt, **kwargs)
        self.completions.append(completion)
        return completion

    def memory_edited_before(self, index: int) -> bool:
        """Whether a function run between request `index - 1` and request `index` rewrote the system message."""
        between = self._events[self.marks[index - 1] : self.marks[index]]
        return any(e.type == "function_call" and e.text in MEMORY_EDITS for e in between)


class CliSession:
    """`memagent chat --json` fed one line at a time, its events read as they come."""

    def __init__(self, args: list[str], home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE")}
        env.update({"MEMAGENT_HOME": str(home), "NO_COLOR": "1", **LOCAL_ONLY_ENV})
        self.process = subprocess.Popen(
            [MEMAGENT, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=home.parent,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines), daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._collect_stderr, daemon=True)
        self._stderr_reader.start()

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def _collect_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, matches: Callable[[dict[str, Any]], bool], timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        """Read events until one matches; fail with everything read so far at the deadline or at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                pytest.fail(f"no matching event within {timeout:g}s; got:\n{''.join(self.stdout)}")
            if line is None:
                pytest.fail(f"memagent ended before the expected event; got:\n{''.join(self.stdout)}{self.stderr}")
            self.stdout.append(line)
            events = json_events(line)
            if events and matches(events[0]):
                return events[0]

    def finish(self, timeout: float = EVENT_TIMEOUT) -> tuple[int, list[dict[str, Any]], str]:
        """Close stdin (end of the script) and wait for the exit: exit code, all events, stderr."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        deadline = time.monotonic() + timeout
        while (line := self.lines.get(timeout=max(deadline - time.monotonic(), 0.0))) is not None:
            self.stdout.append(line)
        code = self.process.wait(timeout=max(deadline - time.monotonic(), 1.0))
        self._stderr_reader.join(timeout=10)
        return code, json_events("".join(self.stdout)), "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def cli_session(tmp_path: Path) -> Iterator[Callable[[list[str]], CliSession]]:
    sessions: list[CliSession] = []

    def start(args: list[str]) -> CliSession:
        sessions.append(CliSession(args, tmp_path / "home"))
        return sessions[-1]

    yield start
    for session in sessions:
        session.kill()


# -- a scripted conversation under constraint, on each server ------------------------------------------


@pytest.fixture(scope="module", params=list(SERVER_FIXTURES))
def constrained_chat(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ChatRun:
    backend: str = request.param
    server: RunningServer = request.getfixturevalue(SERVER_FIXTURES[backend])
    home = tmp_path_factory.mktemp(f"chat-{backend}") / "home"
    run = run_chat(backend, server, home, CONVERSATION)
    print(f"\n{backend}: {len(CONVERSATION)} turns through the CLI in {run.seconds:.0f}s")
    return run


def test_every_step_produces_a_valid_call(constrained_chat: ChatRun) -> None:
    run, events = constrained_chat, constrained_chat.events
    assert run.result.returncode == 0, run.explain()
    assert "Traceback" not in run.result.stderr and "can't constrain" not in run.result.stderr, run.explain()
    assert events and events[0]["type"] == "info" and events[0]["created"] is True, run.explain()
    assert [e["text"] for e in of_type(events, "user_message")] == CONVERSATION, run.explain()
    # The server samples with its own random seed, so the first-reply check (a check of content: call syntax in the
    # inner thoughts) may ask again now and then; the call it turned down had parsed. Nothing else may go wrong.
    problems = of_type(events, "error", "retry", "warning")
    problems = [e for e in problems if not e["text"].startswith("First reply check")]
    assert not problems, run.explain()
    calls, returns = of_type(events, "function_call"), of_type(events, "function_return")
    assert calls and [c["text"] for c in calls] == [r["text"] for r in returns], run.explain()
    assert {c["text"] for c in calls} <= set(builtin_functions().names()), run.explain()
    # Under a grammar the parser never has anything to repair.
    assert all(not e["repairs"] for e in of_type(events, "inner_thoughts")), run.explain()


def test_a_reply_reaches_the_user_on_every_turn(constrained_chat: ChatRun) -> None:
    per_turn = turns(constrained_chat.events)
    assert len(per_turn) == len(CONVERSATION), constrained_chat.explain()
    for number, events in enumerate(per_turn, 1):
        replies = [e["text"] for e in of_type(events, "assistant_message")]
        assert replies and all(r.strip() for r in replies), f"turn {number}: no reply\n{constrained_chat.explain()}"


def test_the_conversation_is_in_the_database(constrained_chat: ChatRun) -> None:
    run, events = constrained_chat, constrained_chat.events
    assert stored_user_texts(run.home) == CONVERSATION
    # Every input (user message, heartbeat, alert) and both halves of every step were committed.
    inputs = of_type(events, "user_message", "heartbeat", "system_alert")
    expected = len(boot_messages()) + len(inputs) + 2 * len(of_type(events, "function_call"))
    assert stored_message_count(run.home) == expected, run.explain()


# -- the wire: the fields each backend reads, as the real servers send them ----------------------------


def test_llamacpp_backend_reads_the_real_response_fields(llama_server: RunningServer, tmp_path: Path) -> None:
    with LlamaCppBackend(llama_server.url) as backend:
        assert backend.context_length == CONTEXT_SIZE  # discovered from GET /props
        prompt = agent_prompt(backend, tmp_path / "home", "Are you there? Answer yes or no.")
        done = check_common_fields(backend, prompt)
        assert done.timings["predicted_n"] == done.completion_tokens, done
        assert done.prompt_tokens_evaluated is not None and 0 < done.prompt_tokens_evaluated <= done.prompt_tokens


def test_openai_completions_backend_reads_the_real_response_fields(
    llama_cpp_python_server: RunningServer, tmp_path: Path
) -> None:
    with OpenAICompletionsBackend(llama_cpp_python_server.url, context_length=CONTEXT_SIZE) as backend:
        prompt = agent_prompt(backend, tmp_path / "home", "Are you there? Answer yes or no.")
        check_common_fields(backend, prompt)


def check_common_fields(backend: HTTPBackend, prompt: str) -> Completion:
    """Stop reason, usage and streaming as the backend reads them from the real server's answers."""
    stop, options = create_wrapper("chatml", constrained=True).stop, ["yes", "no"]
    tokens = backend.count_tokens(prompt)  # the server's tokenizer, not the 4-characters estimate
    assert tokens != estimate_tokens(prompt), tokens
    # A grammar that ends after a few tokens: the model must stop (EOS), not hit the limit.
    done = backend.complete(prompt, stop=stop, max_tokens=50, constraint=choice_constraint(options))
    assert done.finish_reason == "stop" and done.text.strip('"') in options, done
    assert done.prompt_tokens is not None and abs(done.prompt_tokens - tokens) <= 1, (done, tokens)
    assert done.completion_tokens is not None and 1 <= done.completion_tokens < 50, done
    # A function call can't be finished in 5 tokens: the cut must be reported as "length" (max_tokens is sent:
    # llama-cpp-python's default of 16 would cut every call).
    cut = backend.complete(prompt, stop=stop, max_tokens=5, constraint=chatml_constraint())
    assert cut.finish_reason == "length" and cut.completion_tokens in (5, None), cut
    # Streamed: the pieces make the text, and the last events carry the stop reason.
    pieces: list[str] = []
    streamed = backend.complete(prompt, stop=stop, max_tokens=24, constraint=chatml_constraint(), on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == streamed.text, (pieces, streamed)
    assert streamed.finish_reason == "length" and streamed.text.startswith('{"function": "'), streamed
    pieces = []
    streamed = backend.complete(prompt, stop=stop, max_tokens=50, constraint=choice_constraint(options),
                                on_text=pieces.append)
    assert streamed.finish_reason == "stop" and "".join(pieces) == streamed.text, (pieces, streamed)
    return done


@pytest.mark.parametrize("backend_name", ["llamacpp", "openai-completions"])
def test_a_prompt_longer_than_the_context_is_a_context_overflow(
    backend_name: str, request: pytest.FixtureRequest
) -> None:
    """The server's "too long" answer becomes the error the agent handles by summarizing, with its numbers."""
    server: RunningServer = request.getfixturevalue(SERVER_FIXTURES[backend_name])
    prompt = "hello world " * 5000
    with server_backend(backend_name, server) as backend:
        tokens = backend.count_tokens(prompt)
        with pytest.raises(ContextOverflowError) as caught:
            backend.complete(prompt, max_tokens=10)
    assert tokens > CONTEXT_SIZE and caught.value.context_length == CONTEXT_SIZE, caught.value
    assert abs(caught.value.prompt_tokens - tokens) <= 1, (caught.value, tokens)


def test_a_second_turn_reuses_the_kv_cache(fresh_llama_server: RunningServer, tmp_path: Path) -> None:
    """The prompt prefix stays byte-stable between turns, so llama.cpp evaluates only what is new.

    A memory edit rewrites the system message (its timestamp and core memory), which legitimately costs a
    re-evaluation; so the turn compared is the first one not preceded by an edit (small models edit at will)."""
    home = tmp_path / "home"
    store = Store(home / "memagent.db")
    events: list[Event] = []
    backend = RecordingLlamaCpp(fresh_llama_server.url, events=events)
    turn_starts: list[int] = []
    try:
        agent, _ = open_agent(Settings(home=home, agent="kv"), store, backend)
        for text in KV_TURNS:
            turn_starts.append(len(backend.completions))
            agent.run_turn(text, events.append)
            if len(turn_starts) > 1 and not backend.memory_edited_before(turn_starts[-1]):
                break
    finally:
        backend.close()
        store.close()
    assert not [e for e in events if e.type == "error"], events
    assert not backend.memory_edited_before(turn_starts[-1]), f"every turn edited memory: {events}"
    cold, warm = backend.completions[0], backend.completions[turn_starts[-1]]
    for completion in (cold, warm):
        assert completion.prompt_tokens and completion.prompt_tokens_evaluated is not None, completion
    assert cold.prompt_tokens_evaluated >= 0.9 * cold.prompt_tokens, cold  # an empty cache: all of it
    assert warm.prompt_tokens > cold.prompt_tokens, (cold, warm)
    assert warm.prompt_tokens_evaluated * 4 < cold.prompt_tokens_evaluated, (cold, warm)
    # The same holds for every step (retries and heartbeats too) that no memory edit preceded.
    for index, completion in enumerate(backend.completions[1:], 1):
        if not backend.memory_edited_before(index):
            assert completion.prompt_tokens_evaluated * 4 < completion.prompt_tokens, (index, completion)


@pytest.mark.parametrize("backend_name", ["llamacpp", "openai-completions"])
def test_a_streamed_turn_shows_the_reply_as_it_comes_and_knows_the_prompt_size(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """What the interactive REPL does: stream, show send_message's text piece by piece, and still know how full
    the context is (the memory-pressure alert depends on it)."""
    server: RunningServer = request.getfixturevalue(SERVER_FIXTURES[backend_name])
    home = tmp_path / "home"
    store = Store(home / "memagent.db")
    events: list[Event] = []
    try:
        with server_backend(backend_name, server) as backend:
            agent, _ = open_agent(Settings(home=home, agent="stream"), store, backend)
            agent.stream = True
            agent.run_turn("Hello! How are you today?", events.append)
    finally:
        store.close()
    assert not [e for e in events if e.type == "error"], events
    replies = [(i, e) for i, e in enumerate(events) if e.type == "assistant_message"]
    assert replies, events
    for index, reply in replies:
        assert streamed_text_before(events, index) == reply.text, events
    assert agent.last_completion is not None and agent.last_completion.prompt_tokens, agent.last_completion


def streamed_text_before(events: Sequence[Event], reply_index: int) -> str:
    """The deltas streamed by the completion that produced the reply at `reply_index`: the run of
    assistant_message_delta events just before that step's inner_thoughts event."""
    thoughts = max(i for i in range(reply_index) if events[i].type == "inner_thoughts")
    start = thoughts
    while start > 0 and events[start - 1].type == "assistant_message_delta":
        start -= 1
    return "".join(e.text for e in events[start:thoughts])


# -- the generated GBNF, sampled hot on the real servers -------------------------------------------------


@pytest.mark.parametrize("backend_name", list(SERVER_FIXTURES))
def test_the_generated_grammar_always_yields_a_parseable_call(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The GBNF for all eight functions, sampled hot. Two earlier calls of one function in the history make the
    model reach for that branch of the grammar (integers, dates, booleans, optional parameters left out)."""
    server: RunningServer = request.getfixturevalue(SERVER_FIXTURES[backend_name])
    wrapper, schemas, constraint = create_wrapper("chatml", constrained=True), all_schemas(), chatml_constraint()
    with server_backend(backend_name, server) as backend:
        history = new_agent_history(backend, tmp_path / "home")
    sampled: list[str] = []
    for seed, (name, shots, question) in enumerate(GRAMMAR_CASES, 1):
        prompt = wrapper.chat_completion_to_prompt(history + few_shot(name, shots, question), schemas)
        with server_backend(backend_name, server, temperature=1.0, seed=seed) as backend:
            done = backend.complete(prompt, stop=wrapper.stop, max_tokens=1200, constraint=constraint)
        assert done.finish_reason == "stop", f"seed {seed}: cut at the token limit: {done.text!r}"
        call = wrapper.parse(done.text, schemas)
        assert call.repairs == (), f"seed {seed}: needed repairs {call.repairs}: {done.text!r}"
        sampled.append(f"{name} -> {call.name}({call.arguments})")
    print(f"\n{backend_name}:\n  " + "\n  ".join(sampled))


def new_agent_history(backend: HTTPBackend, home: Path) -> list[dict[str, Any]]:
    """A new agent's messages as the wrapper sees them: system message (default preset) and boot messages."""
    store = Store(home / "memagent.db")
    try:
        agent, _ = open_agent(Settings(home=home, agent="grammar", no_verify=True), store, backend)
        return [{"role": "system", "content": agent.system_message}, *(m for _, m in agent.messages)]
    finally:
        store.close()


def few_shot(name: str, shots: Sequence[tuple[str, dict[str, Any]]], question: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for text, arguments in shots:
        messages += [user_message(text), assistant_call(f"I should call {name}.", name, arguments)]
        messages.append(function_result(name, True, None))
    return [*messages, user_message(question)]


# -- without a constraint: the parser and the bounded retry are all there is ----------------------------


# chatml is SmolLM2's own format; gemma's is not, so the parser's repairs and the bounded retry get used.
@pytest.mark.parametrize("wrapper", ["chatml", "gemma"])
def test_without_a_constraint_every_step_ends_in_a_call_or_a_reported_failure(
    wrapper: str, llama_server: RunningServer, tmp_path: Path
) -> None:
    run = run_chat("llamacpp", llama_server, tmp_path / "home", UNCONSTRAINED, "--no-constraint", "--model", wrapper)
    events = run.events
    assert run.result.returncode == 0 and "Traceback" not in run.result.stderr, run.explain()
    assert [e["text"] for e in of_type(events, "user_message")] == UNCONSTRAINED, run.explain()
    assert f"({wrapper} wrapper, llamacpp backend)" in events[0]["text"], run.explain()
    calls, returns = of_type(events, "function_call"), of_type(events, "function_return")
    assert [c["text"] for c in calls] == [r["text"] for r in returns], run.explain()
    for event in of_type(events, "retry", "error"):
        assert isinstance(event.get("raw"), str) and event["raw"], f"no raw text in {event}\n{run.explain()}"
    for number, turn in enumerate(turns(events), 1):
        assert of_type(turn, "function_return", "error"), f"turn {number} ended silently\n{run.explain()}"
    assert stored_user_texts(run.home) == UNCONSTRAINED
    repairs = sum(len(e["repairs"]) for e in of_type(events, "inner_thoughts"))
    counts = f"{len(of_type(events, 'retry'))} retries, {len(of_type(events, 'error'))} errors, {repairs} repairs"
    print(f"\nunconstrained {wrapper}: {counts} in {run.seconds:.0f}s")


# -- faults against real processes ----------------------------------------------------------------------


def test_nothing_listening_is_one_line_naming_the_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    backend = LlamaCppBackend(endpoint, context_length=CONTEXT_SIZE, retries=1)
    with backend, pytest.raises(BackendError) as caught:
        backend.complete("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", max_tokens=8)
    message = str(caught.value)
    assert endpoint + "/completion" in message and "connection refused" in message, message
    assert "\n" not in message, message


def test_the_cli_with_nothing_listening_exits_1_with_one_line(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = run_cli(
        ["chat", "--agent", AGENT, "--json", "--backend", "llamacpp", "--endpoint", endpoint],
        tmp_path / "home", stdin="Hello?\n", timeout=300, env=LOCAL_ONLY_ENV,
    )
    assert "Traceback" not in result.stderr, result.stderr
    errors = of_type(json_events(result.stdout), "error")
    assert all(endpoint in e["text"] and "\n" not in e["text"] for e in errors), errors
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and endpoint in lines[0], result.stderr


def test_a_server_killed_mid_session_is_reported_and_the_message_kept(
    fresh_llama_server: RunningServer, cli_session: Callable[[list[str]], CliSession], tmp_path: Path
) -> None:
    session = cli_session(chat_args("llamacpp", fresh_llama_server))
    session.send("Hi! My name is Brad.")
    session.send("/help")  # its output comes only once the first turn is over
    session.wait_for(lambda e: e["type"] == "info" and e["text"].startswith("Commands:"))
    fresh_llama_server.kill()
    session.send("Are you still there?")
    code, events, stderr = session.finish()

    explain = f"exit {code}\n{events}\n{stderr}"
    assert code == 1 and "Traceback" not in stderr, explain  # a turn ended with an error: scripts can tell
    first, second = turns(events)
    assert of_type(first, "assistant_message") and not of_type(first, "error"), explain
    errors = of_type(second, "error")
    assert len(errors) == 1 and not of_type(second, "function_call"), explain
    assert fresh_llama_server.url in errors[0]["text"] and "\n" not in errors[0]["text"], explain
    assert "Can't reach" in errors[0]["text"] or "Lost the connection" in errors[0]["text"], explain
    assert stored_user_texts(tmp_path / "home") == ["Hi! My name is Brad.", "Are you still there?"]
