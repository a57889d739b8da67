"""The HTTP backends against scripted servers (httpx.MockTransport): the exact request each server gets,
where each answer's text / stop reason / usage is read from, streaming, and every fault on the wire."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from memagent.errors import BackendError, ConfigError, ContextOverflowError
from memagent.llm.backends.base import Backend, Constraint, estimate_tokens
from memagent.llm.backends.http import BackendHTTPError
from memagent.llm.backends.human import HumanBackend
from memagent.llm.backends.registry import BACKENDS, DEFAULT_ENDPOINTS, create_backend

SCHEMA = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}
GBNF = 'root ::= "{\\"answer\\": \\"" ("yes" | "no") "\\"}"'
CONSTRAINT = Constraint(json_schema=SCHEMA, gbnf=GBNF)
STOP = ["<|im_end|>"]

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Server:
    """A scripted server: records every request and plays its answers in order (the last one repeats)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)

    @property
    def request(self) -> httpx.Request:
        return self.requests[-1]


def make(name: str, *answers: Answer, **options: Any) -> tuple[Any, Server, list[float]]:
    server = Server(*answers)
    sleeps: list[float] = []
    backend = create_backend(name, transport=httpx.MockTransport(server), sleep=sleeps.append, **options)
    return backend, server, sleeps


def ok(payload: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=payload)


def stream(*lines: str, log: list[str] | None = None) -> httpx.Response:
    """A streamed answer; each line is a chunk, and `log` records when the server sends it."""

    def chunks() -> Iterator[bytes]:
        for index, line in enumerate(lines):
            if log is not None:
                log.append(f"sent {index}")
            yield (line + "\n").encode()

    return httpx.Response(200, content=chunks(), headers={"content-type": "text/event-stream"})


def sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n"


def openai_answer(text: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "choices": [{"text": text, "finish_reason": finish}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 7},
    }


def refuse_everything(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request to {request.url}")


# -- llama.cpp -------------------------------------------------------------------------------------
def test_llamacpp_sends_native_completion_with_gbnf_and_reads_stats() -> None:
    answer = {
        "content": '{"answer": "ye',
        "stop_type": "limit",
        "tokens_evaluated": 120,
        "tokens_predicted": 300,
        "timings": {"prompt_n": 20, "prompt_ms": 12.5, "predicted_ms": 900.0},
    }
    backend, server, _ = make("llamacpp", ok(answer), context_length=4096, temperature=0.2)

    result = backend.complete("PROMPT", stop=STOP, max_tokens=300, constraint=CONSTRAINT)

    assert server.request.method == "POST"
    assert str(server.request.url) == "http://127.0.0.1:8080/completion"
    assert server.body == {
        "prompt": "PROMPT",
        "n_predict": 300,
        "stop": STOP,
        "cache_prompt": True,
        "temperature": 0.2,
        "stream": True,  # always: the first byte then comes with the first token (deadline.py)
        "grammar": GBNF,
    }
    assert result.text == '{"answer": "ye'
    assert result.finish_reason == "length"
    assert (result.prompt_tokens, result.prompt_tokens_evaluated, result.completion_tokens) == (120, 20, 300)
    assert result.timings == {"prompt_n": 20.0, "prompt_ms": 12.5, "predicted_ms": 900.0}


@pytest.mark.parametrize(
    ("fields", "finish"),
    [({"stop_type": "eos"}, "stop"), ({"stop_type": "word"}, "stop"), ({"truncated": True}, "length")],
)
def test_llamacpp_finish_reason(fields: dict[str, Any], finish: str) -> None:
    backend, _, _ = make("llamacpp", ok({"content": "hi", **fields}), context_length=4096)
    assert backend.complete("p").finish_reason == finish


def test_llamacpp_unconstrained_sends_no_grammar_and_falls_back_to_tokens_evaluated() -> None:
    backend, server, _ = make("llamacpp", ok({"content": "hi", "tokens_evaluated": 9}), context_length=4096)
    result = backend.complete("p")
    assert "grammar" not in server.body and "json_schema" not in server.body
    assert server.body["n_predict"] == 512
    assert result.prompt_tokens_evaluated == 9


def test_llamacpp_counts_tokens_with_its_tokenizer() -> None:
    backend, server, _ = make("llamacpp", ok({"tokens": [1, 2, 3]}), context_length=4096)
    assert backend.count_tokens("hello world") == 3
    assert server.request.url.path == "/tokenize"
    assert server.body == {"content": "hello world"}


@pytest.mark.parametrize("props", [{"default_generation_settings": {"n_ctx": 16384}}, {"n_ctx": 16384}])
def test_llamacpp_context_length_from_props_once(props: dict[str, Any]) -> None:
    backend, server, _ = make("llamacpp", ok(props))
    assert backend.context_length == 16384
    assert backend.context_length == 16384
    assert [(r.method, r.url.path) for r in server.requests] == [("GET", "/props")]


def test_llamacpp_given_context_length_asks_nothing() -> None:
    backend, server, _ = make("llamacpp", refuse_everything, context_length=2048)
    assert backend.context_length == 2048
    assert server.requests == []


def test_llamacpp_streams_sse_pieces_as_they_arrive() -> None:
    log: list[str] = []
    answer = stream(
        sse({"content": "Hel", "stop": False}),
        sse({"content": "lo", "stop": False}),
        sse({"content": "", "stop": True, "stop_type": "limit", "tokens_predicted": 2, "tokens_evaluated": 5}),
        log=log,
    )
    backend, server, _ = make("llamacpp", answer, context_length=4096)

    result = backend.complete("p", on_text=lambda piece: log.append(piece))

    assert server.body["stream"] is True
    assert log == ["sent 0", "Hel", "sent 1", "lo", "sent 2"]  # each piece before the next is sent
    assert result.text == "Hello"
    assert (result.finish_reason, result.completion_tokens, result.prompt_tokens) == ("length", 2, 5)


@pytest.mark.parametrize(
    ("name", "answer", "options"),
    [
        (
            "llamacpp",
            stream(sse({"content": "Hel"}), sse({"content": "lo", "stop": True, "stop_type": "eos",
                                                 "tokens_predicted": 2, "tokens_evaluated": 5})),
            {"context_length": 4096},
        ),
        (
            "ollama",
            stream('{"response": "Hel"}', '{"response": "lo", "done": true, "done_reason": "stop", '
                   '"prompt_eval_count": 5, "eval_count": 2}'),
            {"model": "m"},
        ),
    ],
)
def test_a_call_nobody_watches_still_streams_and_keeps_the_whole_answers_stats(
    name: str, answer: httpx.Response, options: dict[str, Any]
) -> None:
    """Streamed so a stalled server is told from a slow one by its first byte, yet the Completion is the same."""
    backend, server, _ = make(name, answer, **options)
    result = backend.complete("p")
    assert server.body["stream"] is True
    assert (result.text, result.finish_reason) == ("Hello", "stop")
    assert (result.prompt_tokens, result.completion_tokens) == (5, 2)


# -- OpenAI-compatible /v1/completions -------------------------------------------------------------
def test_openai_completions_sends_max_tokens_grammar_and_model() -> None:
    backend, server, _ = make("openai-completions", ok(openai_answer("yes", "length")), model="qwen", temperature=0.1)

    result = backend.complete("PROMPT", stop=STOP, max_tokens=200, constraint=CONSTRAINT)

    assert str(server.request.url) == "http://127.0.0.1:8000/v1/completions"
    assert server.body == {
        "model": "qwen",
        "prompt": "PROMPT",
        "max_tokens": 200,
        "stop": STOP,
        "stream": False,
        "temperature": 0.1,
        "grammar": GBNF,
    }
    assert (result.text, result.finish_reason) == ("yes", "length")
    assert (result.prompt_tokens, result.completion_tokens) == (40, 7)


def test_openai_completions_always_sends_max_tokens_and_no_model_unless_given() -> None:
    backend, server, _ = make("openai-completions", ok(openai_answer("ok")))
    assert backend.complete("p").finish_reason == "stop"
    assert server.body == {"prompt": "p", "max_tokens": 512, "stop": [], "stream": False}


def test_openai_completions_streams_sse_until_done() -> None:
    answer = stream(
        sse({"choices": [{"text": "A", "finish_reason": None}]}),
        sse({"choices": [{"text": "B", "finish_reason": None}]}),
        sse({"choices": [{"text": "C", "finish_reason": "length"}]}),
        sse({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}),
        "data: [DONE]\n",
        sse({"choices": [{"text": "after done", "finish_reason": None}]}),
    )
    backend, server, _ = make("openai-completions", answer)
    pieces: list[str] = []

    result = backend.complete("p", max_tokens=3, on_text=pieces.append)

    assert server.body["stream"] is True
    assert pieces == ["A", "B", "C"]
    assert (result.text, result.finish_reason) == ("ABC", "length")
    assert (result.prompt_tokens, result.completion_tokens) == (11, 3)


def test_openai_completions_counts_with_extras_tokenize() -> None:
    backend, server, _ = make("openai-completions", ok({"tokens": [5, 6, 7, 8]}))
    assert backend.count_tokens("some text") == 4
    assert server.request.url.path == "/extras/tokenize"
    assert server.body == {"input": "some text"}


def test_openai_completions_without_tokenize_endpoint_estimates_and_stops_asking() -> None:
    backend, server, _ = make("openai-completions", httpx.Response(404, json={"detail": "Not Found"}))
    text = "x" * 40
    assert backend.count_tokens(text) == estimate_tokens(text) == 10
    assert backend.count_tokens(text) == 10
    assert len(server.requests) == 1


def test_openai_completions_needs_a_context_length() -> None:
    backend, _, _ = make("openai-completions", refuse_everything)
    with pytest.raises(ConfigError, match="--context-length"):
        _ = backend.context_length


# -- Ollama ----------------------------------------------------------------------------------------
def test_ollama_sends_raw_generate_with_num_ctx_and_schema_format() -> None:
    answer = {
        "response": '{"answer": "no"}',
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 33,
        "eval_count": 12,
        "prompt_eval_duration": 2_000_000,
        "eval_duration": 5_000_000,
    }
    backend, server, _ = make("ollama", ok(answer), model="qwen2.5:7b", temperature=0.2)

    result = backend.complete("PROMPT", stop=STOP, max_tokens=100, constraint=CONSTRAINT)

    assert str(server.request.url) == "http://127.0.0.1:11434/api/generate"
    assert server.body == {
        "model": "qwen2.5:7b",
        "prompt": "PROMPT",
        "raw": True,
        "stream": True,
        "format": SCHEMA,
        "options": {"num_ctx": 8192, "num_predict": 100, "stop": STOP, "temperature": 0.2},
    }
    assert (result.text, result.finish_reason) == ('{"answer": "no"}', "length")
    assert (result.prompt_tokens, result.completion_tokens) == (33, 12)
    assert result.timings == {"prompt_ms": 2.0, "predicted_ms": 5.0}


def test_ollama_sends_the_given_context_length_as_num_ctx() -> None:
    backend, server, _ = make("ollama", ok({"response": "hi", "done_reason": "stop"}), model="m", context_length=32768)
    assert backend.complete("p").finish_reason == "stop"
    assert server.body["options"]["num_ctx"] == 32768
    assert "format" not in server.body


def test_ollama_streams_ndjson() -> None:
    answer = stream(
        json.dumps({"response": "one ", "done": False}),
        json.dumps({"response": "two", "done": False}),
        json.dumps({"response": "", "done": True, "done_reason": "stop", "eval_count": 2}),
    )
    backend, server, _ = make("ollama", answer, model="m")
    pieces: list[str] = []

    result = backend.complete("p", on_text=pieces.append)

    assert server.body["stream"] is True
    assert pieces == ["one ", "two"]
    assert (result.text, result.finish_reason, result.completion_tokens) == ("one two", "stop", 2)


def test_ollama_needs_a_model() -> None:
    with pytest.raises(ConfigError, match="--backend-model"):
        make("ollama", refuse_everything)


def test_ollama_missing_model_says_to_pull_it() -> None:
    backend, server, _ = make("ollama", httpx.Response(404, json={"error": "model 'nope' not found"}), model="nope")
    with pytest.raises(BackendError, match="ollama pull nope") as caught:
        backend.complete("p")
    assert "model 'nope' not found" in str(caught.value)
    assert len(server.requests) == 1


# -- text-generation-webui, LM Studio, KoboldCpp, vLLM ---------------------------------------------
def test_webui_sends_grammar_string_and_truncation_length() -> None:
    backend, server, _ = make("webui", ok(openai_answer("yes")), context_length=6144)

    result = backend.complete("PROMPT", stop=STOP, max_tokens=256, constraint=CONSTRAINT)

    assert str(server.request.url) == "http://127.0.0.1:5000/v1/completions"
    assert server.body == {
        "prompt": "PROMPT",
        "max_tokens": 256,
        "stop": STOP,
        "stream": False,
        "grammar_string": GBNF,
        "truncation_length": 6144,
        "skip_special_tokens": False,
    }
    assert result.text == "yes"


def test_webui_counts_with_internal_token_count() -> None:
    backend, server, _ = make("webui", ok({"length": 17}), context_length=6144)
    assert backend.count_tokens("abc") == 17
    assert (server.request.url.path, server.body) == ("/v1/internal/token-count", {"text": "abc"})


def test_lmstudio_cannot_constrain_and_sends_no_grammar() -> None:
    backend, server, _ = make("lmstudio", ok(openai_answer("yes")), model="qwen2.5-7b-instruct")
    assert backend.constraint_kinds == frozenset() and not backend.can_constrain

    backend.complete("PROMPT", stop=STOP, max_tokens=64, constraint=CONSTRAINT)

    assert str(server.request.url) == "http://127.0.0.1:1234/v1/completions"
    assert server.body == {
        "model": "qwen2.5-7b-instruct",
        "prompt": "PROMPT",
        "max_tokens": 64,
        "stop": STOP,
        "stream": False,
    }


def test_koboldcpp_sends_max_length_and_discovered_context() -> None:
    answers = [ok({"value": 8192}), ok({"results": [{"text": "yes", "finish_reason": "length"}]})]
    backend, server, _ = make("koboldcpp", *answers, temperature=0.7)

    result = backend.complete("PROMPT", stop=STOP, max_tokens=400, constraint=CONSTRAINT)

    first, second = server.requests
    assert (first.method, first.url.path) == ("GET", "/api/extra/true_max_context_length")
    assert str(second.url) == "http://127.0.0.1:5001/api/extra/generate/stream"
    assert json.loads(second.content) == {
        "prompt": "PROMPT",
        "max_length": 400,
        "max_context_length": 8192,
        "stop_sequence": STOP,
        "trim_stop": True,
        "temperature": 0.7,
        "grammar": GBNF,
    }
    assert (result.text, result.finish_reason) == ("yes", "length")


def test_koboldcpp_counts_tokens_and_streams() -> None:
    answer = stream(
        "event: message",
        sse({"token": "Hi", "finish_reason": None}),
        "event: message",
        sse({"token": " there", "finish_reason": "stop"}),
    )
    backend, server, _ = make("koboldcpp", ok({"value": 42}), answer, context_length=4096)
    assert backend.count_tokens("text") == 42
    assert (server.request.url.path, server.body) == ("/api/extra/tokencount", {"prompt": "text"})
    pieces: list[str] = []

    result = backend.complete("p", on_text=pieces.append)

    assert server.request.url.path == "/api/extra/generate/stream"
    assert pieces == ["Hi", " there"]
    assert result.text == "Hi there"


def test_vllm_sends_structured_outputs_not_guided_json() -> None:
    backend, server, _ = make(
        "vllm", ok(openai_answer('{"answer": "yes"}')), model="Qwen/Qwen2.5-7B", context_length=8192
    )

    backend.complete("PROMPT", stop=STOP, max_tokens=128, constraint=CONSTRAINT)

    assert str(server.request.url) == "http://127.0.0.1:8000/v1/completions"
    assert server.body == {
        "model": "Qwen/Qwen2.5-7B",
        "prompt": "PROMPT",
        "max_tokens": 128,
        "stop": STOP,
        "stream": False,
        "skip_special_tokens": False,
        "structured_outputs": {"json": SCHEMA},
    }
    assert not any(key.startswith("guided_") for key in server.body)


def test_vllm_needs_a_model_and_learns_its_context_and_token_counts() -> None:
    with pytest.raises(ConfigError, match="--backend-model"):
        make("vllm", refuse_everything)
    models = {"data": [{"id": "other", "max_model_len": 1}, {"id": "m", "max_model_len": 32768}]}
    backend, server, _ = make("vllm", ok(models), ok({"count": 6, "tokens": [1] * 6}), model="m")
    assert backend.context_length == 32768
    assert backend.count_tokens("abc") == 6
    assert (server.request.url.path, server.body) == ("/tokenize", {"model": "m", "prompt": "abc"})


# -- OpenAI chat with native function calling ------------------------------------------------------
FUNCTIONS = [{"name": "send_message", "description": "Say it.", "parameters": {"type": "object"}}]


def test_openai_chat_converts_messages_and_reads_tool_calls() -> None:
    messages = [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "thinking",
            "function_call": {"name": "send_message", "arguments": '{"message": "yo"}'},
        },
        {"role": "function", "name": "send_message", "content": '{"status": "OK"}'},
    ]
    answer = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "x",
                            "type": "function",
                            "function": {"name": "send_message", "arguments": '{"message": "hey"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
    }
    backend, server, _ = make("openai", ok(answer), model="gpt-4o-mini", api_key="sk-test-123")

    reply, completion = backend.chat_completion(messages, FUNCTIONS)

    assert str(server.request.url) == "https://api.openai.com/v1/chat/completions"
    assert server.request.headers["authorization"] == "Bearer sk-test-123"
    assert server.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are Sam."},
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "thinking",
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "send_message", "arguments": '{"message": "yo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_2", "content": '{"status": "OK"}'},
        ],
        "tools": [{"type": "function", "function": FUNCTIONS[0]}],
        "tool_choice": "auto",
    }
    assert reply == {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "send_message", "arguments": '{"message": "hey"}'},
    }
    assert (completion.finish_reason, completion.prompt_tokens, completion.completion_tokens) == (
        "stop",
        100,
        20,
    )


def test_openai_chat_legacy_function_call_and_orphan_results() -> None:
    answer = {
        "choices": [
            {
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": "ok",
                    "function_call": {"name": "f", "arguments": {"a": 1}},
                },
            }
        ]
    }
    backend, server, _ = make("openai", ok(answer), model="m", endpoint="http://127.0.0.1:4000/v1")

    reply, completion = backend.chat_completion([{"role": "function", "name": "f", "content": "42"}], [])

    assert str(server.request.url) == "http://127.0.0.1:4000/v1/chat/completions"
    assert server.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "[result of function f] 42"}],
    }
    assert "authorization" not in server.request.headers
    assert reply["function_call"] == {"name": "f", "arguments": '{"a": 1}'}
    assert completion.text == "ok" and completion.finish_reason == "length"


def test_openai_backend_refuses_raw_prompts() -> None:
    backend, server, _ = make("openai", refuse_everything, model="m")
    with pytest.raises(ConfigError, match="only does chat"):
        backend.complete("raw prompt")
    assert server.requests == []


# -- faults ----------------------------------------------------------------------------------------
def assert_one_line(error: Exception, *parts: str) -> None:
    message = str(error)
    assert "\n" not in message
    for part in parts:
        assert part in message


def test_connection_refused_is_retried_then_one_line() -> None:
    backend, server, sleeps = make(
        "llamacpp", httpx.ConnectError("[Errno 111] Connection refused"), context_length=4096, retries=2
    )
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]
    assert_one_line(
        caught.value,
        "Can't reach the llama.cpp server at http://127.0.0.1:8080/completion",
        "connection refused",
        "3 attempts",
        "Is it running? Start it or pass --endpoint.",
    )


def test_a_server_that_answered_and_then_went_away_is_said_to_have_stopped_or_crashed() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    backend, _, _ = make("llamacpp", ok({"content": "hi"}), refused, context_length=4096, retries=0)
    assert backend.complete("p").text == "hi"
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert_one_line(
        caught.value, "Can't reach the llama.cpp server", "It answered before, so it has stopped or crashed",
        "'Illegal instruction' there means", "-DGGML_NATIVE=OFF",
    )


def test_a_connection_lost_mid_request_names_a_crash_and_its_usual_cause() -> None:
    dropped = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    backend, _, _ = make("llamacpp", dropped, context_length=4096, retries=0)
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert_one_line(caught.value, "Lost the connection to the llama.cpp server", "may have crashed",
                    "'Illegal instruction' there means")


def test_the_start_check_asks_once_and_names_the_server_it_could_not_reach() -> None:
    backend, server, sleeps = make("llamacpp", httpx.ConnectError("[Errno 111] Connection refused"), retries=2)
    with pytest.raises(BackendError) as caught:
        backend.check_reachable()
    assert len(server.requests) == 1 and sleeps == []
    assert_one_line(caught.value, "Can't reach the llama.cpp server at http://127.0.0.1:8080", "connection refused")


@pytest.mark.parametrize("status", [200, 404, 500])
def test_any_http_answer_passes_the_start_check(status: int) -> None:
    backend, server, _ = make("koboldcpp", httpx.Response(status, text="whatever"))
    backend.check_reachable()
    assert [r.url.path for r in server.requests] == ["/"]


def test_read_timeout_is_not_retried_and_names_the_first_byte_limit_and_the_flag() -> None:
    backend, server, sleeps = make("llamacpp", httpx.ReadTimeout("timed out"), context_length=4096, timeout=30)
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert len(server.requests) == 1 and sleeps == []
    assert caught.value.transient
    assert_one_line(caught.value, "http://127.0.0.1:8080/completion", "not a byte within 30 s", "--timeout SECONDS",
                    "MEMAGENT_TIMEOUT")


def test_503_is_retried_with_growing_delays_then_succeeds() -> None:
    busy = httpx.Response(503, json={"error": {"message": "Loading model"}})
    backend, server, sleeps = make("llamacpp", busy, busy, ok({"content": "done"}), context_length=4096)
    assert backend.complete("p").text == "done"
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_429_honours_retry_after() -> None:
    limited = httpx.Response(429, headers={"retry-after": "3"}, json={"error": "slow down"})
    backend, _, sleeps = make("llamacpp", limited, ok({"content": "done"}), context_length=4096)
    assert backend.complete("p").text == "done"
    assert sleeps == [3.0]


def test_500_forever_gives_up_after_bounded_attempts() -> None:
    backend, server, sleeps = make(
        "openai-completions", httpx.Response(500, json={"error": {"message": "CUDA error"}}), retries=3
    )
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete("p")
    assert len(server.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert caught.value.status == 500 and caught.value.transient
    assert_one_line(caught.value, "http://127.0.0.1:8000/v1/completions", "HTTP 500", "CUDA error", "4 attempts")


def test_other_4xx_is_not_retried_and_shows_the_server_message() -> None:
    backend, server, sleeps = make(
        "llamacpp", httpx.Response(400, json={"error": {"message": "bad grammar\nat 3"}}), context_length=4096
    )
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete("p", constraint=CONSTRAINT)
    assert len(server.requests) == 1 and sleeps == []
    assert caught.value.status == 400 and not caught.value.transient
    assert_one_line(caught.value, "HTTP 400", "bad grammar at 3", "http://127.0.0.1:8080/completion")


def test_llamacpp_context_overflow_400_becomes_context_overflow_error() -> None:
    error = {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 5000,
            "n_ctx": 4096,
        }
    }
    backend, server, _ = make("llamacpp", httpx.Response(400, json=error), context_length=4096)
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete("p")
    assert (caught.value.prompt_tokens, caught.value.context_length) == (5000, 4096)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("message", "prompt_tokens", "context_length"),
    [
        pytest.param(
            "This model's maximum context length is 2048 tokens. However, you requested 2600 tokens "
            "(2088 in the messages, 512 in the completion).",
            2088, 2048, id="openai",
        ),
        pytest.param(
            "Requested tokens (10011) exceed context window of 8192 "
            "(requested 10011 tokens (10001 in your prompt; 10 for the completion))",
            10001, 8192, id="llama-cpp-python",
        ),
    ],
)
def test_an_overflow_message_gives_the_prompt_size_not_prompt_plus_reply(
    message: str, prompt_tokens: int, context_length: int
) -> None:
    backend, _, _ = make("openai-completions", httpx.Response(400, json={"error": {"message": message}}))
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete("p")
    assert (caught.value.prompt_tokens, caught.value.context_length) == (prompt_tokens, context_length)


def test_context_overflow_without_numbers_uses_prompt_estimate_and_known_context() -> None:
    backend, _, _ = make("llamacpp", httpx.Response(400, text="Context window exceeded"), context_length=1000)
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete("x" * 400)
    assert (caught.value.prompt_tokens, caught.value.context_length) == (100, 1000)
    assert "about 100 tokens (estimated) > 1000 tokens" in str(caught.value)  # not passed off as the server's


def test_context_overflow_without_any_known_context_leaves_the_number_out() -> None:
    backend, _, _ = make("openai-completions", httpx.Response(400, text="prompt exceeds the context window"))
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete("x" * 400)
    assert str(caught.value) == (
        "Request exceeds maximum context length (about 100 tokens (estimated); the server did not say its "
        "context length)"
    )


def test_context_overflow_with_the_servers_numbers_says_them_plainly() -> None:
    error = {"error": {"message": "the request exceeds the available context size", "n_prompt_tokens": 5000,
                       "n_ctx": 4096}}
    backend, _, _ = make("llamacpp", httpx.Response(400, json=error), context_length=4096)
    with pytest.raises(ContextOverflowError, match=r"\(5000 > 4096 tokens\)"):
        backend.complete("p")


def test_html_answer_is_a_backend_error() -> None:
    page = httpx.Response(200, text="<!DOCTYPE html><html><body>Welcome</body></html>")
    backend, server, _ = make("llamacpp", page, context_length=4096)
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert len(server.requests) == 1
    assert_one_line(caught.value, "http://127.0.0.1:8080/completion", "did not answer with JSON", "--endpoint")


@pytest.mark.parametrize(
    ("name", "answer", "options"),
    [
        ("llamacpp", {"content": "  \n"}, {"context_length": 4096}),
        ("openai-completions", openai_answer(""), {}),
        ("ollama", {"response": "", "done": True}, {"model": "m"}),
        ("koboldcpp", {"results": [{"text": ""}]}, {"context_length": 4096}),
    ],
)
def test_empty_text_is_a_transient_error_naming_the_url(
    name: str, answer: dict[str, Any], options: dict[str, Any]
) -> None:
    backend, server, _ = make(name, ok(answer), **options)
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert caught.value.transient
    assert_one_line(caught.value, str(server.request.url), "returned no text")


def test_wrong_answer_shape_names_the_missing_field() -> None:
    backend, _, _ = make("llamacpp", ok({"choices": [{"text": "hi"}]}), context_length=4096)
    with pytest.raises(BackendError, match=r"answered without `content`.*--backend llamacpp"):
        backend.complete("p")


def test_error_event_mid_stream_is_one_line() -> None:
    answer = stream(sse({"content": "a"}), sse({"error": {"code": 500, "message": "slot\ncrashed"}}))
    backend, _, _ = make("llamacpp", answer, context_length=4096)
    pieces: list[str] = []
    with pytest.raises(BackendError) as caught:
        backend.complete("p", on_text=pieces.append)
    assert pieces == ["a"]
    assert_one_line(caught.value, "failed mid-answer", "slot crashed")


def test_api_key_is_sent_but_never_shown() -> None:
    key = "sk-very-secret-key"
    echo = httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {key}"}})
    backend, server, _ = make("openai-completions", echo, api_key=key)
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert server.request.headers["authorization"] == f"Bearer {key}"
    assert key not in str(caught.value) and key not in repr(backend)
    assert_one_line(caught.value, "HTTP 401", "Check the API key", "***")


def test_password_in_the_endpoint_is_never_shown() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    backend, server, _ = make("llamacpp", refused, endpoint="http://me:hunter2@box:8080", context_length=9)
    with pytest.raises(BackendError) as caught:
        backend.complete("p")
    assert server.request.url.host == "box"
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(backend)
    assert_one_line(caught.value, "http://box:8080/completion")


# -- endpoints, registry, lifecycle ----------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["localhost:8080", "ftp://host", "", "http://"])
def test_bad_endpoint_is_a_config_error_naming_it(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="http:// or https://") as caught:
        create_backend("llamacpp", endpoint=endpoint or " ")
    assert repr(endpoint or " ") in str(caught.value)


def test_endpoint_trailing_v1_and_slash_are_not_doubled() -> None:
    backend, server, _ = make("openai-completions", ok(openai_answer("x")), endpoint="http://10.0.0.2:9000/v1/")
    backend.complete("p")
    assert str(server.request.url) == "http://10.0.0.2:9000/v1/completions"
    backend, server, _ = make("llamacpp", ok({"content": "x"}), endpoint="https://box/llm/v1", context_length=9)
    backend.complete("p")
    assert str(server.request.url) == "https://box/llm/completion"


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        create_backend("gpt4all")
    assert "'gpt4all'" in str(caught.value)
    for name in BACKENDS:
        assert name in str(caught.value)


def test_registry_names_classes_and_default_endpoints() -> None:
    for name, cls in BACKENDS.items():
        assert issubclass(cls, Backend) and cls.name == name
    assert DEFAULT_ENDPOINTS == {
        "llamacpp": "http://127.0.0.1:8080",
        "openai-completions": "http://127.0.0.1:8000",
        "ollama": "http://127.0.0.1:11434",
        "webui": "http://127.0.0.1:5000",
        "lmstudio": "http://127.0.0.1:1234",
        "koboldcpp": "http://127.0.0.1:5001",
        "vllm": "http://127.0.0.1:8000",
        "openai": "https://api.openai.com",
    }


def test_create_backend_rejects_options_the_backend_does_not_use() -> None:
    with pytest.raises(ConfigError, match="human backend doesn't use endpoint"):
        create_backend("human", endpoint="http://127.0.0.1:8080")


def test_close_closes_the_client_and_can_repeat() -> None:
    backend, _, _ = make("llamacpp", refuse_everything, context_length=4096)
    backend.close()
    backend.close()
    assert backend.server.client.is_closed


# -- human -----------------------------------------------------------------------------------------
def scripted(lines: list[str]) -> Callable[[str], str]:
    def read(_: str) -> str:
        if not lines:
            raise EOFError
        return lines.pop(0)

    return read


def test_human_types_the_output_until_a_dot_line() -> None:
    shown: list[str] = []
    lines = ['{"function": "send_message",', ' "params": {"message": "hi"}}', ".", "not read"]
    backend = create_backend("human", input_fn=scripted(lines), output_fn=shown.append, tail_chars=10)

    result = backend.complete("0123456789ABCDEFGHIJ")

    assert result.text == '{"function": "send_message",\n "params": {"message": "hi"}}'
    assert lines == ["not read"]
    assert "ABCDEFGHIJ" in shown[0] and "0123456789" not in shown[0]
    assert "last 10 of 20 characters" in shown[0]
    assert isinstance(backend, HumanBackend) and backend.count_tokens("abcdefgh") == 2


def test_human_input_ends_at_eof_and_stop_strings_cut() -> None:
    pieces: list[str] = []
    backend = HumanBackend(input_fn=scripted(["hello<|im_end|>ignored", "more"]), output_fn=lambda _: None)
    result = backend.complete("p", stop=STOP, on_text=pieces.append)
    assert result.text == "hello"
    assert pieces == ["hello"]


@pytest.mark.parametrize("name", ["llamacpp", "openai-completions", "ollama"])
def test_an_answer_larger_than_any_reply_is_refused_before_it_is_read(name: str) -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": "50000000"}, content=b"{}")

    backend, server, _ = make(name, huge, context_length=4096, model="m")
    with pytest.raises(BackendError) as caught:
        backend.complete("hi", max_tokens=8)
    message = str(caught.value)
    assert "50 MB" in message and "--endpoint" in message and "\n" not in message
    assert len(server.requests) == 1  # not retried: a wrong endpoint does not get better


# -- the ServerClient on its own -------------------------------------------------------------------
def test_a_server_client_serves_any_backend_that_talks_http() -> None:
    """The wire without a dialect: JSON in and out, a 503 retried after backoff, a rejected key redacted."""
    from memagent.llm.backends.deadline import call_limits
    from memagent.llm.backends.http_faults import ServerWording
    from memagent.llm.backends.server import ServerClient

    server = Server(
        httpx.Response(503, json={"error": "loading"}),
        ok({"models": ["m"]}),
        httpx.Response(401, json={"error": {"message": "bad key sk-secret"}}),
    )
    sleeps: list[float] = []
    wording = ServerWording("custom", "custom server", "http://127.0.0.1:7000", secret="sk-secret")
    client = ServerClient(
        wording, call_limits(None), connect_timeout=1, retries=2, transport=httpx.MockTransport(server),
        sleep=sleeps.append,
    )
    with closing(client):
        assert client.post_json("/models", {"q": 1}) == {"models": ["m"]}
        assert sleeps == [0.5] and server.body == {"q": 1}
        assert server.request.headers["authorization"] == "Bearer sk-secret"
        with pytest.raises(BackendHTTPError) as caught:
            client.get_json("/whoami")
    assert caught.value.status == 401
    assert_one_line(caught.value, "custom server at http://127.0.0.1:7000/whoami", "HTTP 401", "***")
    assert "sk-secret" not in str(caught.value)
