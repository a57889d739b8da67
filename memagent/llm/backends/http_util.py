"""The pure parts of the HTTP plumbing (``server.py``, ``http.py``): nothing here touches the network.

Endpoint checking, digging values out of a server's JSON, the lines of a streamed answer (Server-Sent
Events or NDJSON), and the wording of failures: one short line per server message, advice per HTTP
status, the numbers in a "prompt too long" message. The server backends import the small helpers
through ``http.py``, which re-exports them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from memagent.errors import ConfigError, ContextOverflowError
from memagent.llm.backends.base import FinishReason

if TYPE_CHECKING:
    import httpx

_MESSAGE_LIMIT = 300
_CONTEXT_WORDS = re.compile(r"context[ _-]?(length|window|size)|n_ctx|exceeds? the .{0,20}context", re.I)
_PROMPT_NUMBERS = (
    r"n_prompt_tokens\D{0,5}(\d+)",
    # llama-cpp-python: "requested 10011 tokens (10001 in your prompt; 10 for the completion)"
    r"(\d+) in your prompt",
    # OpenAI: "you requested 2600 tokens (2088 in the messages, 512 in the completion)"
    r"(\d+) in the messages",
    r"requested (\d+) tokens",
    r"requested tokens \((\d+)\)",
    r"(\d+) input tokens",
    r"prompt (?:is|has|of) (\d+)",
)
_CONTEXT_NUMBERS = (
    r"n_ctx\D{0,5}(\d+)",
    r"maximum context length is (\d+)",
    r"context window of (\d+)",
    r"context (?:length|size|window)(?: is| of)? (\d+)",
)


# ---------------------------------------------------------------------------------------- settings


def normalize_endpoint(endpoint: str, label: str) -> str:
    """Check a base URL and drop what our paths add again: a trailing `/` or `/v1`."""
    value = endpoint.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", value, re.IGNORECASE):
        hint = f" (did you mean http://{value}?)" if value and "://" not in value else ""
        raise ConfigError(
            f"Invalid endpoint {endpoint!r} for the {label}: it must start with http:// or https://{hint}."
        )
    return value[:-3] if value.lower().endswith("/v1") else value


def check_numbers(context_length: int | None, timeout: float, connect_timeout: float, retries: int) -> None:
    if context_length is not None and context_length <= 0:
        raise ConfigError(f"Invalid context length {context_length}: it must be a positive number of tokens.")
    if timeout <= 0 or connect_timeout <= 0:
        bad = min(timeout, connect_timeout)
        raise ConfigError(f"Invalid timeout {bad}: it must be a positive number of seconds.")
    if retries < 0:
        raise ConfigError(f"Invalid retries {retries}: it must be 0 or more.")


# ------------------------------------------------------------------------------------- answer JSON


def dig(data: Any, *path: str | int) -> Any:
    """`data[a][b][0]...`, or None when any step is missing or of the wrong type."""
    for key in path:
        in_list = isinstance(key, int) and isinstance(data, list) and -len(data) <= key < len(data)
        if not (in_list or (isinstance(key, str) and isinstance(data, dict) and key in data)):
            return None
        data = data[key]
    return data


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def finish_reason(value: Any) -> FinishReason:
    """Servers say "length" when the token budget ran out; everything else (eos, stop word) is a stop."""
    return "length" if value == "length" else "stop"


# ---------------------------------------------------------------------------------------- streaming


def sse_payload(line: str) -> str | None:
    """The data of one Server-Sent-Events line; None for blank lines, comments and `event:` lines."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip() or None


def ndjson_payload(line: str) -> str | None:
    return line.strip() or None


def stream_payloads(lines: Iterable[str], stream_format: str) -> Iterator[str]:
    """The data of each streamed line up to `[DONE]`: SSE `data:` lines (the default), or NDJSON lines."""
    payload_of = ndjson_payload if stream_format == "ndjson" else sse_payload
    for line in lines:
        payload = payload_of(line)
        if payload == "[DONE]":
            return
        if payload is not None:
            yield payload


# ----------------------------------------------------------------------------------------- failures


def one_line(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """Squash a server's message (maybe an HTML error page) into one short line."""
    flat = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def says_context_overflow(message: str) -> bool:
    """Whether a server's error message is about the prompt not fitting the context window."""
    return _CONTEXT_WORDS.search(message) is not None


def overflow_numbers(text: str) -> tuple[int | None, int | None]:
    """(prompt tokens, context length) as a "prompt too long" message states them, where it does."""
    return _first_number(_PROMPT_NUMBERS, text), _first_number(_CONTEXT_NUMBERS, text)


def overflow_error(prompt_tokens: int, context_length: int | None, *, estimated: bool = False) -> ContextOverflowError:
    """The error for a prompt the server found too long, saying which numbers are only estimates (a server
    that gave none) and leaving out a context length nobody knows."""
    error = ContextOverflowError(prompt_tokens, context_length or 0)
    if estimated or not context_length:
        size = f"about {prompt_tokens} tokens (estimated)" if estimated else f"{prompt_tokens} tokens"
        limit = f" > {context_length} tokens" if context_length else "; the server did not say its context length"
        error.args = (f"Request exceeds maximum context length ({size}{limit})",)
    return error


def generic_advice(status: int, name: str) -> str:
    """What to check for an HTTP error `status` from the `name` backend's server (unless it knows better)."""
    if status in (401, 403):
        return "Check the API key."
    if status in (404, 405):
        return f"Check --endpoint and --backend: this server may not be what the {name} backend expects."
    if status == 429:
        return "The server is busy or rate-limiting: wait and try again."
    if status == 503:
        return "The server may still be loading the model: wait and try again."
    if status >= 500:
        return "Check the server's log."
    return "The server rejected the request: check --model and the backend settings."


def retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _first_number(patterns: Sequence[str], text: str) -> int | None:
    for pattern in patterns:
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            return int(match.group(1))
    return None
