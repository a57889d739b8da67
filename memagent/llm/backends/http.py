"""HTTPBackend: a Backend reached over HTTP, as a ServerClient (``server.py``: the wire, retries, deadlines,
fault wording) plus one server's dialect.

Each server backend is a small subclass saying where to POST, what body to send and where the text is in
the answer: the class attributes and the hooks at the end of this class. The helpers they read answers
with (`as_int`, `dig`, `finish_reason`) are re-exported here from ``http_util.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING, Any, ClassVar

from memagent.errors import ConfigError
from memagent.llm.backends.base import Backend, Completion, CompletionRequest, Constraint, estimate_tokens
from memagent.llm.backends.deadline import Clock, call_limits
from memagent.llm.backends.http_faults import BackendHTTPError, ServerWording
from memagent.llm.backends.http_util import as_int, check_numbers, dig, finish_reason, normalize_endpoint
from memagent.llm.backends.server import DEFAULT_CONNECT_TIMEOUT, DEFAULT_RETRIES, ServerClient, WholeAnswer

if TYPE_CHECKING:
    import httpx

__all__ = ["BackendHTTPError", "HTTPBackend", "as_int", "dig", "finish_reason", "normalize_endpoint"]


class HTTPBackend(Backend):
    """A Backend reached over HTTP. Subclasses set the class attributes and the four request hooks; they
    reach the server through `self.server` and word what they find wrong through `self.wording`."""

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
        self.endpoint = normalize_endpoint(endpoint or self.default_endpoint, self.label)
        hint = self.capabilities.needs_model_name
        if hint and not model:
            raise ConfigError(f"The {self.name} backend needs a model name: pass --backend-model ({hint}).")
        self.limits = call_limits(timeout, first_byte_timeout)
        check_numbers(context_length, self.limits.overall, connect_timeout, retries)
        self.model = model
        self.settings = settings
        self.wording = ServerWording(self.name, self.label, self.endpoint, secret=api_key, advice=self.status_advice)
        self.wording.context_length = context_length
        self.server = ServerClient(
            self.wording, self.limits, connect_timeout=connect_timeout, retries=retries, transport=transport,
            sleep=sleep, clock=clock,
        )
        self._can_tokenize = self.tokenize_path is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.wording.url('')!r}, model={self.model!r})"

    def __enter__(self) -> HTTPBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.close()

    def check_reachable(self) -> None:
        self.server.check_reachable()

    # -- Backend -----------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        """As given, else asked of the server once; the wording names it when a server overflows silently."""
        if self.wording.context_length is None:
            self.wording.context_length = self.discover_context_length()
        return self.wording.context_length

    def discover_context_length(self) -> int:
        """Ask the server for its context size. This default knows no way to ask."""
        if self.default_context_length is not None:
            return self.default_context_length
        raise ConfigError(
            f"The {self.label} at {self.wording.url('')} can't tell its context length: pass --context-length "
            "(the context size the server was started with)."
        )

    def count_tokens(self, text: str) -> int:
        """The server's own tokenizer when it has an endpoint for it; else the 4-characters estimate."""
        if not text:
            return 0
        if not self._can_tokenize or self.tokenize_path is None:
            return estimate_tokens(text)
        try:
            data = self.server.post_json(self.tokenize_path, self.tokenize_body(text))
        except BackendHTTPError as exc:
            if not 400 <= exc.status < 500:
                raise
            self._can_tokenize = False  # this server has no such endpoint: stop asking
            return estimate_tokens(text)
        count = self.token_count(data)
        if count is None:
            raise self.wording.shape_error(self.tokenize_path, "a token count")
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
            return self.parse_completion(self.server.post_json(self.completion_path, body), self.completion_path)
        path = self.stream_path or self.completion_path
        parts: list[str] = []
        events: list[dict[str, Any]] = []
        with self.server.call(), closing(self.server.stream_json(path, body, self.stream_format)) as stream:
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

    # -- the dialect: hooks for the raw-completion backends ---------------------------------------------
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

    def status_advice(self, status: int, message: str) -> str | None:
        """A hint of this server's for an error status, where the generic one would mislead."""
        return None

    def token_count(self, data: dict[str, Any]) -> int | None:
        tokens = data.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None

