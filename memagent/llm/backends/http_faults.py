"""What went wrong with a server, in one line: the wording the ServerClient (``server.py``) and the
backends' answer readers (``http.py`` and its subclasses) share.

`ServerWording` names the server and the URL in every message, reads a server's error text (OpenAI,
llama.cpp, Ollama, FastAPI shapes), tells which faults waiting can fix, turns "prompt too long" into the
error the agent answers by summarizing, and keeps API keys out of all of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memagent.errors import BackendError, ContextOverflowError
from memagent.llm.backends.base import estimate_tokens
from memagent.llm.backends.deadline import TIMEOUT_ADVICE, Deadline, deadline_message
from memagent.llm.backends.http_util import (
    dig,
    generic_advice,
    one_line,
    overflow_error,
    overflow_numbers,
    retry_after,
    says_context_overflow,
)

if TYPE_CHECKING:
    import httpx

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
class Fault:
    """One failed attempt: the parts of the final message, and whether waiting could fix it."""

    what: str
    detail: str
    advice: str
    retry: bool
    transient: bool
    status: int | None = None
    retry_after: float | None = None

    def error(self, attempts: int, *, deadline: float | None = None) -> BackendError:
        """The one line; `deadline`: the seconds of the call's deadline, when it left no time for another try."""
        detail = f"{self.detail}, gave up after {attempts} attempts" if attempts > 1 else self.detail
        if deadline is not None:
            detail += f" within the {deadline:g} s deadline"
        message = f"{self.what} ({detail}). {self.advice}".strip()
        if deadline is not None:
            message += f" Or {TIMEOUT_ADVICE}."
        if self.status is None:
            return BackendError(message, transient=self.transient)
        return BackendHTTPError(message, status=self.status, transient=self.transient)


class ServerWording:
    """One server as its messages name it, and what is known of it so far.

    `name` is the backend's (for "--backend NAME" advice), `label` says what the server is ("llama.cpp
    server"); `advice` is the backend's hint for an error status, where the generic one would mislead.
    `answered` (set by the client) and `context_length` (set by the backend once known) refine the words."""

    def __init__(
        self,
        name: str,
        label: str,
        endpoint: str,
        *,
        secret: str | None = None,
        advice: Callable[[int, str], str | None] | None = None,
    ) -> None:
        self.name = name
        self.label = label
        self.endpoint = endpoint
        self.secret = secret or None
        self._advice = advice
        self.answered = False  # whether the server has answered a request in this session
        self.context_length: int | None = None

    def url(self, path: str) -> str:
        """The full URL for messages, without any user:password part of the endpoint."""
        return re.sub(r"^(https?://)[^/@]*@", r"\1", self.endpoint + path)

    def where(self, path: str) -> str:
        """ "the llama.cpp server at http://127.0.0.1:8080/completion": which server, in a message."""
        return f"the {self.label} at {self.url(path)}"

    def require_text(self, text: Any, path: str, where: str) -> str:
        """The generated text, or one line saying it's missing (wrong server) or empty (retry may help)."""
        if not isinstance(text, str):
            raise self.shape_error(path, where)
        if not text.strip():
            raise BackendError(
                f"The {self.label} at {self.url(path)} returned no text. The model stopped at once: check "
                "the stop strings and the prompt format; trying again may help.",
                transient=True,
            )
        return text

    def shape_error(self, path: str, where: str) -> BackendError:
        return BackendError(
            f"The {self.label} at {self.url(path)} answered without {where}. Is --backend {self.name} "
            "right for this server?"
        )

    def deadline_error(self, path: str, deadline: Deadline) -> BackendError:
        return BackendError(deadline_message(self.where(path), deadline.seconds), transient=True)

    def transport_fault(self, path: str, exc: httpx.TransportError) -> Fault:
        import httpx

        where = self.where(path)
        if isinstance(exc, httpx.ConnectError):
            text = one_line(str(exc), 120)
            detail = "connection refused" if "refused" in text.lower() else text or "can't connect"
            advice = "Is it running? Start it or pass --endpoint."
            if self.answered:  # it answered earlier in this session: it went away since
                advice = f"It answered before, so it has stopped or crashed: check its log. {_CRASH_HINT}"
            return Fault(f"Can't reach {where}", detail, advice, True, False)
        if isinstance(exc, httpx.TimeoutException):
            return Fault(
                f"Can't reach {where}",
                "timed out connecting",
                "Is it running and reachable? Check --endpoint.",
                True,
                True,
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return Fault(
                f"Lost the connection to {where}",
                one_line(str(exc), 120) or "connection dropped",
                f"The server may have crashed or restarted: check its log. {_CRASH_HINT}",
                True,
                True,
            )
        return Fault(
            f"Can't talk to {where}", one_line(str(exc), 120) or type(exc).__name__, "Check --endpoint.", False, False
        )

    def status_fault(self, path: str, response: httpx.Response, body: Any) -> Fault:
        status = response.status_code
        message, payload = self._server_message(response)
        if says_context_overflow(message):
            raise self._overflow(message, payload, body)
        where = f"The {self.label} at {self.url(path)} answered HTTP {status}"
        hint = self._advice(status, message) if self._advice is not None else None
        advice = hint or generic_advice(status, self.name)
        retry = status == 429 or status >= 500
        return Fault(
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
        return self.redact(one_line(text)), payload

    def _overflow(self, message: str, payload: Any, body: Any) -> ContextOverflowError:
        """Turn "prompt too long" into the error the agent answers by summarizing, with the best numbers."""
        text = message + " " + (json.dumps(payload) if isinstance(payload, dict) else "")
        prompt_tokens, context = overflow_numbers(text)
        if prompt_tokens is not None:
            return overflow_error(prompt_tokens, context or self.context_length)
        sent = (body.get("prompt") or body.get("messages") or "") if isinstance(body, dict) else ""
        estimate = estimate_tokens(sent if isinstance(sent, str) else json.dumps(sent))
        return overflow_error(estimate, context or self.context_length, estimated=True)

    def decode(self, response: httpx.Response, path: str) -> dict[str, Any]:
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

    def event(self, payload: str, path: str) -> dict[str, Any]:
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
            message = self.redact(one_line(str(dig(error, "message") or error)))
            if says_context_overflow(message):
                raise self._overflow(message, error, None)
            raise BackendError(f"The {self.label} at {self.url(path)} failed mid-answer: {message}", transient=True)
        return event

    def redact(self, text: str) -> str:
        """Servers sometimes echo a rejected key back: never let it reach a message."""
        return text.replace(self.secret, "***") if self.secret else text
