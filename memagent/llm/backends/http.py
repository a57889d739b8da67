"""Shared plumbing for the backends that talk to a local (or remote) server over HTTP.

Each server backend is a small subclass saying where to POST, what body to send and where the text is in
the answer. Everything that can go wrong on the wire is handled here once: bounded retries with
exponential backoff for faults that go away by themselves, and every failure reaches the user as ONE
line naming the URL and what to check. httpx is imported lazily so listing backends costs nothing.
The pure helpers (endpoint checks, JSON digging, stream lines, failure wording) are in ``http_util.py``
and re-exported here.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memagent.errors import BackendError, ConfigError, ContextOverflowError
from memagent.llm.backends.base import Backend, Completion, Constraint, estimate_tokens
from memagent.llm.backends.http_util import (
    as_int,
    check_numbers,
    dig,
    finish_reason,
    generic_advice,
    ndjson_payload,
    normalize_endpoint,
    one_line,
    overflow_numbers,
    retry_after,
    says_context_overflow,
    sse_payload,
    stream_payloads,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "BackendHTTPError",
    "HTTPBackend",
    "as_int",
    "dig",
    "finish_reason",
    "ndjson_payload",
    "normalize_endpoint",
    "one_line",
    "sse_payload",
]

# A whole non-streamed generation must arrive within the read timeout: CPU inference of a long prompt
# plus a few hundred tokens takes minutes, so it is generous. Connecting to a live server is instant.
DEFAULT_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0


# What a crashed llama.cpp-based server most often means on a machine other than the one that built it.
_CRASH_HINT = (
    "'Illegal instruction' there means llama.cpp was built for CPU features this machine lacks: "
    "rebuild the server with -DGGML_NATIVE=OFF."
)


class BackendHTTPError(BackendError):
    """A BackendError for an HTTP error status, keeping the status so callers can tell 404 from 503."""

    def __init__(self, message: str, *, status: int, transient: bool = False) -> None:
        super().__init__(message, transient=transient)
        self.status = status


@dataclass
class _Fault:
    """One failed attempt: the parts of the final message, and whether waiting could fix it."""

    what: str
    detail: str
    advice: str
    retry: bool
    transient: bool
    status: int | None = None
    retry_after: float | None = None

    def error(self, attempts: int) -> BackendError:
        detail = f"{self.detail}, gave up after {attempts} attempts" if attempts > 1 else self.detail
        message = f"{self.what} ({detail}). {self.advice}".strip()
        if self.status is None:
            return BackendError(message, transient=self.transient)
        return BackendHTTPError(message, status=self.status, transient=self.transient)


class HTTPBackend(Backend):
    """A Backend reached over HTTP. Subclasses set the class attributes and the four request hooks."""

    label: ClassVar[str] = "server"  # "the llama.cpp server at <url>" in every message
    default_endpoint: ClassVar[str] = ""
    completion_path: ClassVar[str] = ""
    stream_path: ClassVar[str | None] = None  # when streaming uses another path than completion_path
    stream_format: ClassVar[str] = "sse"  # or "ndjson"
    tokenize_path: ClassVar[str | None] = None  # None: count_tokens estimates
    default_context_length: ClassVar[int | None] = None  # None: ask the server or demand --context-length
    model_hint: ClassVar[str | None] = None  # set when the server needs a model name

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        model: str | None = None,
        context_length: int | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **settings: Any,
    ) -> None:
        """`settings` are extra sampling fields (temperature, top_p...) sent to the server as they are."""
        import httpx

        self.endpoint = normalize_endpoint(endpoint or self.default_endpoint, self.label)
        if self.model_hint and not model:
            hint = self.model_hint
            raise ConfigError(f"The {self.name} backend needs a model name: pass --backend-model ({hint}).")
        check_numbers(context_length, timeout, connect_timeout, retries)
        self.model = model
        self.settings = settings
        self.retries = retries
        self._context_length = context_length
        self._secret = api_key or None
        self._sleep = sleep
        self._can_tokenize = self.tokenize_path is not None
        self._answered = False  # whether the server has answered a request in this session
        self._client = httpx.Client(
            base_url=self.endpoint,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.url('')!r}, model={self.model!r})"

    def __enter__(self) -> HTTPBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def check_reachable(self) -> None:
        """One GET of the server's root: any HTTP answer will do, no answer is one BackendError line."""
        import httpx

        try:
            self._client.get("/").close()
        except httpx.TransportError as exc:
            raise self._transport_fault("", exc).error(1) from exc

    def url(self, path: str) -> str:
        """The full URL for messages, without any user:password part of the endpoint."""
        return re.sub(r"^(https?://)[^/@]*@", r"\1", self.endpoint + path)

    # -- Backend -----------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        if self._context_length is None:
            self._context_length = self.discover_context_length()
        return self._context_length

    def discover_context_length(self) -> int:
        """Ask the server for its context size. This default knows no way to ask."""
        if self.default_context_length is not None:
            return self.default_context_length
        raise ConfigError(
            f"The {self.label} at {self.url('')} can't tell its context length: pass --context-length "
            "(the context size the server was started with)."
        )

    def count_tokens(self, text: str) -> int:
        """The server's own tokenizer when it has an endpoint for it; else the 4-characters estimate."""
        if not text:
            return 0
        if not self._can_tokenize or self.tokenize_path is None:
            return estimate_tokens(text)
        try:
            data = self.post_json(self.tokenize_path, self.tokenize_body(text))
        except BackendHTTPError as exc:
            if not 400 <= exc.status < 500:
                raise
            self._can_tokenize = False  # this server has no such endpoint: stop asking
            return estimate_tokens(text)
        count = self.token_count(data)
        if count is None:
            raise self._shape_error(self.tokenize_path, "a token count")
        return count

    def complete(
        self,
        prompt: str,
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        constraint: Constraint | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        body = self.request_body(prompt, list(stop), max_tokens, constraint, stream=on_text is not None)
        if on_text is None:
            return self.parse_completion(self.post_json(self.completion_path, body), self.completion_path)
        path = self.stream_path or self.completion_path
        parts: list[str] = []
        events: list[dict[str, Any]] = []
        for event in self.stream_json(path, body):
            piece = self.stream_piece(event)
            if piece:
                on_text(piece)
                parts.append(piece)
            events.append(event)
        return self.parse_completion(self.merge_stream("".join(parts), events), path)

    # -- hooks for the raw-completion backends -----------------------------------------------------
    def request_body(
        self, prompt: str, stop: list[str], max_tokens: int, constraint: Constraint | None, *, stream: bool
    ) -> dict[str, Any]:
        raise NotImplementedError

    def parse_completion(self, data: dict[str, Any], path: str) -> Completion:
        """Read text, stop reason and usage from the (non-streamed or merged streamed) answer."""
        raise NotImplementedError

    def stream_piece(self, event: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def merge_stream(self, text: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Rebuild the non-streamed answer shape from the joined text and the streamed events."""
        raise NotImplementedError

    def tokenize_body(self, text: str) -> dict[str, Any]:
        return {"content": text}

    def token_count(self, data: dict[str, Any]) -> int | None:
        tokens = data.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None

    def status_advice(self, status: int, message: str) -> str | None:
        """A backend-specific hint for an error status, if the generic one would mislead."""
        return None

    # -- helpers for subclasses --------------------------------------------------------------------
    def require_text(self, text: Any, path: str, where: str) -> str:
        """The generated text, or one line saying it's missing (wrong server) or empty (retry may help)."""
        if not isinstance(text, str):
            raise self._shape_error(path, where)
        if not text.strip():
            raise BackendError(
                f"The {self.label} at {self.url(path)} returned no text. The model stopped at once: check "
                "the stop strings and the prompt format; trying again may help.",
                transient=True,
            )
        return text

    def _shape_error(self, path: str, where: str) -> BackendError:
        return BackendError(
            f"The {self.label} at {self.url(path)} answered without {where}. Is --backend {self.name} "
            "right for this server?"
        )

    # -- the wire ----------------------------------------------------------------------------------
    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` as JSON and return the decoded JSON object, retrying transient faults."""
        return self._decode(self._send("POST", path, body), path)

    def get_json(self, path: str) -> dict[str, Any]:
        return self._decode(self._send("GET", path, None), path)

    def stream_json(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST `body` and yield each streamed event (SSE `data:` lines up to `[DONE]`, or NDJSON lines).

        Faults before the first byte are retried like post_json; a fault mid-stream is not (the text
        already shown can't be taken back) and becomes one transient BackendError."""
        import httpx

        response = self._send("POST", path, body, stream=True)
        try:
            for payload in stream_payloads(response.iter_lines(), self.stream_format):
                yield self._event(payload, path)
        except httpx.TransportError as exc:
            raise self._transport_fault(path, exc).error(1) from exc
        finally:
            response.close()

    def _send(self, method: str, path: str, body: Any, *, stream: bool = False) -> httpx.Response:
        """One request, retried with exponential backoff while the fault is one that waiting can fix."""
        import httpx

        for attempt in range(1, self.retries + 2):
            try:
                request = self._client.build_request(method, path, json=body)
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                fault = self._transport_fault(path, exc)
            else:
                if response.is_success:
                    self._answered = True
                    return response
                if stream:
                    response.read()
                    response.close()
                fault = self._status_fault(path, response, body)
            if not fault.retry or attempt > self.retries:
                raise fault.error(attempt)
            delay = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)
            self._sleep(max(delay, min(fault.retry_after or 0.0, BACKOFF_MAX)))
        raise AssertionError("unreachable")

    def _transport_fault(self, path: str, exc: httpx.TransportError) -> _Fault:
        import httpx

        where = f"the {self.label} at {self.url(path)}"
        if isinstance(exc, httpx.ConnectError):
            text = one_line(str(exc), 120)
            detail = "connection refused" if "refused" in text.lower() else text or "can't connect"
            advice = "Is it running? Start it or pass --endpoint."
            if self._answered:  # it answered earlier in this session: it went away since
                advice = f"It answered before, so it has stopped or crashed: check its log. {_CRASH_HINT}"
            return _Fault(f"Can't reach {where}", detail, advice, True, False)
        if isinstance(exc, httpx.ReadTimeout):
            # Not retried: the server is probably still busy with this very request.
            seconds = self._client.timeout.read
            return _Fault(
                f"No answer from {where}",
                f"read timeout after {seconds:g}s",
                "The model may be too slow for this prompt: pass a larger --timeout or use a smaller model.",
                False,
                True,
            )
        if isinstance(exc, httpx.TimeoutException):
            return _Fault(
                f"Can't reach {where}",
                "timed out connecting",
                "Is it running and reachable? Check --endpoint.",
                True,
                True,
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return _Fault(
                f"Lost the connection to {where}",
                one_line(str(exc), 120) or "connection dropped",
                f"The server may have crashed or restarted: check its log. {_CRASH_HINT}",
                True,
                True,
            )
        return _Fault(
            f"Can't talk to {where}", one_line(str(exc), 120) or type(exc).__name__, "Check --endpoint.", False, False
        )

    def _status_fault(self, path: str, response: httpx.Response, body: Any) -> _Fault:
        status = response.status_code
        message, payload = self._server_message(response)
        if says_context_overflow(message):
            raise self._overflow(message, payload, body)
        where = f"The {self.label} at {self.url(path)} answered HTTP {status}"
        advice = self.status_advice(status, message) or generic_advice(status, self.name)
        retry = status == 429 or status >= 500
        return _Fault(
            where,
            message or response.reason_phrase or "no message",
            advice,
            retry,
            retry,
            status=status,
            retry_after=retry_after(response),
        )

    def _server_message(self, response: httpx.Response) -> tuple[str, Any]:
        """The error text a server put in its answer (OpenAI, llama.cpp, Ollama, FastAPI shapes)."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        message: Any = None
        if isinstance(payload, dict):
            error = payload.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            message = message or payload.get("detail") or payload.get("message")
        if message is None:
            message = response.text
        text = message if isinstance(message, str) else json.dumps(message)
        return self._redact(one_line(text)), payload

    def _overflow(self, message: str, payload: Any, body: Any) -> ContextOverflowError:
        """Turn "prompt too long" into the error the agent answers by summarizing, with the best numbers."""
        text = message + " " + (json.dumps(payload) if isinstance(payload, dict) else "")
        prompt_tokens, context = overflow_numbers(text)
        if prompt_tokens is None:
            sent = (body.get("prompt") or body.get("messages") or "") if isinstance(body, dict) else ""
            prompt_tokens = estimate_tokens(sent if isinstance(sent, str) else json.dumps(sent))
        return ContextOverflowError(prompt_tokens, context or self._context_length or 0)

    def _decode(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            snippet = one_line(response.text, 60) or "an empty body"
            raise BackendError(
                f"The {self.label} at {self.url(path)} did not answer with JSON (got: {snippet}). "
                f"Is --endpoint pointing at a {self.label}?"
            )
        return data

    def _event(self, payload: str, path: str) -> dict[str, Any]:
        """One streamed event as a dict; an error event becomes the same one-line error as a status."""
        try:
            event = json.loads(payload)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            raise BackendError(
                f"The {self.label} at {self.url(path)} streamed something that isn't JSON "
                f"({one_line(payload, 60)}). Is --backend {self.name} right for this server?",
                transient=True,
            )
        error = event.get("error")
        if error:
            message = self._redact(one_line(str(dig(error, "message") or error)))
            if says_context_overflow(message):
                raise self._overflow(message, error, None)
            raise BackendError(f"The {self.label} at {self.url(path)} failed mid-answer: {message}", transient=True)
        return event

    def _redact(self, text: str) -> str:
        """Servers sometimes echo a rejected key back: never let it reach a message."""
        return text.replace(self._secret, "***") if self._secret else text
