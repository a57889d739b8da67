"""Shared plumbing for the backends that talk to a local (or remote) server over HTTP.

Each server backend is a small subclass saying where to POST, what body to send and where the text is in
the answer. Everything that can go wrong on the wire is handled here once: bounded retries with
exponential backoff for faults that go away by themselves, and every failure reaches the user as ONE
line naming the URL and what to check. httpx is imported lazily so listing backends costs nothing.
Every call has a deadline (``deadline.py``): a first-byte limit for a server that stalls and an overall
one that retries, backoff and a dripping body all count against. The wording of failures is in
``http_faults.py``; the pure helpers (endpoint checks, JSON digging, stream lines) are in
``http_util.py`` and re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from memagent.errors import BackendError, ConfigError
from memagent.llm.backends.base import Backend, Completion, CompletionRequest, Constraint, estimate_tokens
from memagent.llm.backends.deadline import (
    DEFAULT_TIMEOUT,
    Clock,
    Deadline,
    Watchdog,
    call_limits,
    first_byte_message,
    unfinished_message,
)
from memagent.llm.backends.http_faults import BackendHTTPError, ServerWording
from memagent.llm.backends.http_util import (
    as_int,
    check_numbers,
    dig,
    finish_reason,
    ndjson_payload,
    normalize_endpoint,
    one_line,
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

# The deadlines of a call (DEFAULT_TIMEOUT and the first-byte limit) are in deadline.py. Connecting to a
# live server is instant.
DEFAULT_CONNECT_TIMEOUT = 10.0
MAX_BODY_BYTES = 16_000_000  # a whole reply is a few hundred KB at most; a longer body is no model's answer
DEFAULT_RETRIES = 3
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0


class HTTPBackend(ServerWording, Backend):
    """A Backend reached over HTTP. Subclasses set the class attributes and the four request hooks."""

    label: ClassVar[str] = "server"  # "the llama.cpp server at <url>" in every message
    default_endpoint: ClassVar[str] = ""
    completion_path: ClassVar[str] = ""
    stream_path: ClassVar[str | None] = None  # when streaming uses another path than completion_path
    stream_format: ClassVar[str] = "sse"  # or "ndjson"
    tokenize_path: ClassVar[str | None] = None  # None: count_tokens estimates
    default_context_length: ClassVar[int | None] = None  # None: ask the server or demand --context-length
    # Ask for a stream even when nobody shows the pieces: then the first byte comes with the first token, not
    # when the whole answer is done, so a stalled server is told from a slow one within the first-byte limit.
    # Off where the stream lacks what a non-streamed answer has (token usage).
    stream_always: ClassVar[bool] = True

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        model: str | None = None,
        context_length: int | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        first_byte_timeout: float | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = time.monotonic,
        **settings: Any,
    ) -> None:
        """`settings` are extra sampling fields (temperature, top_p...) sent to the server as they are.

        `timeout` is the overall deadline of one model call and `first_byte_timeout` how long the server
        may stay silent (see deadline.py); None means the defaults."""
        import httpx

        self.endpoint = normalize_endpoint(endpoint or self.default_endpoint, self.label)
        hint = self.capabilities.needs_model_name
        if hint and not model:
            raise ConfigError(f"The {self.name} backend needs a model name: pass --backend-model ({hint}).")
        self.limits = call_limits(timeout, first_byte_timeout)
        check_numbers(context_length, self.limits.overall, connect_timeout, retries)
        self.model = model
        self.settings = settings
        self.retries = retries
        self._context_length = context_length
        self._secret = api_key or None
        self._sleep = sleep
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._deadline: Deadline | None = None  # the model call in progress, retries included
        self._can_tokenize = self.tokenize_path is not None
        self._answered = False  # whether the server has answered a request in this session
        self._client = httpx.Client(
            base_url=self.endpoint,
            timeout=httpx.Timeout(self.limits.overall, connect=connect_timeout),
            transport=transport,
            # No idle connections: each request opens its own, so the watchdog always learns its socket.
            limits=httpx.Limits(max_keepalive_connections=0),
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

        deadline, watch = Deadline(self.limits.overall, self._clock), Watchdog()  # waits for headers only
        try:
            self._exchange("GET", "/", None, deadline, watch).close()
        except httpx.TransportError as exc:
            raise self._failure("", deadline, watch, exc) from exc
        finally:
            watch.stop()

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

    def generate(self, request: CompletionRequest) -> Completion:
        """Streamed when `on_text` is given or the server streams what a whole answer says (stream_always);
        a server that answers a streamed request in one JSON body is fine too."""
        on_text = request.on_text
        streamed = on_text is not None or self.stream_always
        body = self.request_body(
            request.prompt, list(request.stop), request.max_tokens, request.constraint, stream=streamed
        )
        if not streamed:
            return self.parse_completion(self.post_json(self.completion_path, body), self.completion_path)
        path = self.stream_path or self.completion_path
        parts: list[str] = []
        events: list[dict[str, Any]] = []
        with self._call(), closing(self.stream_json(path, body)) as stream:
            for event in stream:
                if isinstance(event, WholeAnswer):
                    return self._whole(event, path, on_text)
                piece = self.stream_piece(event)
                if piece:
                    if on_text is not None:
                        on_text(piece)
                    parts.append(piece)
                events.append(event)
        return self.parse_completion(self.merge_stream("".join(parts), events), path)

    def _whole(self, data: dict[str, Any], path: str, on_text: Callable[[str], None] | None) -> Completion:
        completion = self.parse_completion(data, path)
        if on_text is not None:
            on_text(completion.text)
        return completion

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

    # -- the wire ----------------------------------------------------------------------------------
    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` as JSON and return the decoded JSON object, retrying transient faults."""
        with self._call():
            response, _ = self._send("POST", path, body)
            return self._decode(response, path)

    def get_json(self, path: str) -> dict[str, Any]:
        with self._call():
            response, _ = self._send("GET", path, None)
            return self._decode(response, path)

    def stream_json(self, path: str, body: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
        """POST `body` and yield each streamed event (SSE `data:` lines up to `[DONE]`, or NDJSON lines);
        an answer in one body (a server that doesn't stream) is yielded whole, as the one WholeAnswer.

        Faults before the first byte are retried like post_json; a fault mid-stream is not (the text
        already shown can't be taken back) and becomes one transient BackendError."""
        import httpx

        with self._call() as deadline:
            response, watch = self._send("POST", path, body, stream=True)
            try:
                yield from self._read_events(response, path, deadline, watch)
                cut = watch.fired  # the watchdog's cut can look like a body that simply ended
            except (httpx.TransportError, BackendError) as exc:
                if not (watch.fired or deadline.expired):
                    raise exc if isinstance(exc, BackendError) else self._transport_fault(path, exc).error(1) from exc
                raise self._cut_error(path, deadline, watch) from exc  # or like a half line
            finally:
                watch.stop()
                response.close()
            if cut:
                raise self._cut_error(path, deadline, watch)

    def _read_events(
        self, response: httpx.Response, path: str, deadline: Deadline, watch: Watchdog
    ) -> Iterator[dict[str, Any]]:
        if not _is_stream(response):
            self._arm_unfinished(watch, deadline)
            response.read()
            yield WholeAnswer(self._decode(response, path))
            return
        for payload in stream_payloads(self._lines(response, watch, deadline), self.stream_format):
            event = self._event(payload, path)
            if deadline.expired:  # a server that streams forever, however fast
                raise self._deadline_error(path, deadline)
            yield event

    def _lines(self, response: httpx.Response, watch: Watchdog, deadline: Deadline) -> Iterator[str]:
        """The streamed lines as they complete. Between lines the server may think as long as the deadline
        allows (a long prompt); a line it has begun must end within the silence limit, or it hangs or drips."""
        pending: list[str] = []
        size = 0
        for chunk in response.iter_text():
            if "\n" not in chunk:
                if chunk and not pending:
                    self._arm_unfinished(watch, deadline)
                pending.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise BackendError(f"The {self.label} streamed a line of over {MAX_BODY_BYTES:,} characters.")
                continue
            *complete, rest = "".join([*pending, chunk]).split("\n")
            yield from (line.removesuffix("\r") for line in complete)
            pending, size = ([rest], len(rest)) if rest else ([], 0)
            if rest:
                self._arm_unfinished(watch, deadline)
            else:
                watch.unfinished = False
                watch.arm(deadline.remaining())
        if pending:
            yield "".join(pending)

    def _arm_unfinished(self, watch: Watchdog, deadline: Deadline) -> None:
        """A body or line has begun: it gets the silence limit to end (a real server writes each at once)."""
        watch.unfinished = True
        watch.arm(min(self.limits.first_byte, deadline.remaining()))

    @contextmanager
    def _call(self) -> Iterator[Deadline]:
        """The deadline of the model call in progress: a complete() and everything in it (retries, backoff,
        the streamed body) share one; a request on its own gets its own."""
        if self._deadline is not None:
            yield self._deadline
            return
        self._deadline = Deadline(self.limits.overall, self._clock)
        try:
            yield self._deadline
        finally:
            self._deadline = None

    def _send(self, method: str, path: str, body: Any, *, stream: bool = False) -> tuple[httpx.Response, Watchdog]:
        """One request, retried with exponential backoff while the fault is one that waiting can fix, all
        within the current call's deadline. The response comes with its body read, or with `stream` still
        to read, and then its watchdog still armed: the caller stops it when done."""
        import httpx

        deadline = self._deadline or Deadline(self.limits.overall, self._clock)
        for attempt in range(1, self.retries + 2):
            watch = Watchdog()
            try:
                response = self._exchange(method, path, body, deadline, watch)
                self._check_size(response, path)
                if response.is_success and stream:
                    self._answered = True
                    return response, watch
                self._arm_unfinished(watch, deadline)  # a body that drips is cut off by the watchdog
                response.read()
                if watch.fired:  # cut where a body without a length may seem to end: not the whole answer
                    raise httpx.ReadTimeout("cut off at the deadline")
            except httpx.TransportError as exc:
                watch.stop()
                timed_out = self._timeout_error(path, deadline, watch, exc)
                if timed_out is not None:
                    raise timed_out from exc
                fault = self._transport_fault(path, exc)
            except BaseException:  # Ctrl-C, or a bug: nothing may cut a later request's socket
                watch.stop()
                raise
            else:
                watch.stop()
                response.close()
                if response.is_success:
                    self._answered = True
                    return response, watch
                fault = self._status_fault(path, response, body)
            if not fault.retry or attempt > self.retries:
                raise fault.error(attempt)
            delay = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)
            delay = max(delay, min(fault.retry_after or 0.0, BACKOFF_MAX))
            if delay >= deadline.remaining():  # the next try could not finish in time: this fault is the answer
                raise fault.error(attempt, deadline=deadline.seconds)
            self._sleep(delay)
        raise AssertionError("unreachable")

    def _check_size(self, response: httpx.Response, path: str) -> None:
        """Refuse, before reading it, an answer larger than any model's (a wrong endpoint, a broken server)."""
        size = _content_length(response)
        if size is not None and size > MAX_BODY_BYTES:
            response.close()
            raise BackendError(
                f"The {self.label} at {self.url(path)} sent an answer of {size / 1e6:.0f} MB, more than any model "
                f"reply (memagent reads at most {MAX_BODY_BYTES // 1_000_000} MB). Is --endpoint a model server?"
            )

    def _exchange(self, method: str, path: str, body: Any, deadline: Deadline, watch: Watchdog) -> httpx.Response:
        """Send one request and wait for the answer's headers, at most the first-byte limit (or the time
        left, if less); the body is left to read, with only the overall deadline left to bound it."""
        import httpx

        remaining = deadline.remaining()
        if remaining <= 0:
            raise httpx.ReadTimeout("the deadline passed before the request was sent")
        silence = min(self.limits.first_byte, remaining)
        timeout = httpx.Timeout(remaining, connect=min(self._connect_timeout, remaining), read=silence)
        request = self._client.build_request(
            method, path, json=body, timeout=timeout, extensions={"trace": watch.trace}
        )
        watch.arm(silence)
        watch.silence = self.limits.first_byte
        response = self._client.send(request, stream=True)
        # The first byte came: from here on only the overall deadline bounds the wait. The socket's read
        # timeout is read from this dict when the body is read; the watchdog covers any transport.
        timeouts = request.extensions.get("timeout")
        if isinstance(timeouts, dict):
            timeouts["read"] = max(deadline.remaining(), 0.001)
        watch.first_byte_seen = True
        watch.arm(deadline.remaining())
        return response

    def _timeout_error(
        self, path: str, deadline: Deadline, watch: Watchdog, exc: httpx.TransportError
    ) -> BackendError | None:
        """The one line for a request cut off by the deadline or the first-byte limit; None for other faults."""
        import httpx

        if deadline.expired or (watch.fired and watch.first_byte_seen):
            return self._cut_error(path, deadline, watch)
        if watch.fired or isinstance(exc, httpx.ReadTimeout):
            where = f"the {self.label} at {self.url(path)}"
            return BackendError(first_byte_message(where, watch.silence), transient=True)
        return None

    def _cut_error(self, path: str, deadline: Deadline, watch: Watchdog) -> BackendError:
        """Why the watchdog cut an answer that had begun: left unfinished, or out of time."""
        if watch.fired and watch.unfinished and not deadline.expired:
            where = f"the {self.label} at {self.url(path)}"
            return BackendError(unfinished_message(where, watch.silence), transient=True)
        return self._deadline_error(path, deadline)

    def _failure(self, path: str, deadline: Deadline, watch: Watchdog, exc: httpx.TransportError) -> BackendError:
        """A fault that is not retried: the deadline's line, or the fault's own."""
        return self._timeout_error(path, deadline, watch, exc) or self._transport_fault(path, exc).error(1)

class WholeAnswer(dict[str, Any]):
    """A streamed request answered in one body, as a non-streamed request would be."""


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers.get("content-length", ""))
    except ValueError:
        return None


def _is_stream(response: httpx.Response) -> bool:
    """Whether an answer is a stream of events (SSE or NDJSON) rather than one body: servers that ignore
    `stream` answer with application/json, errors may come as HTML."""
    kind = response.headers.get("content-type", "").lower()
    return any(word in kind for word in ("event-stream", "ndjson", "jsonl"))
