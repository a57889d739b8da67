"""ServerClient: one model server over HTTP, whatever it speaks. Any backend that talks HTTP uses one.

Everything that can go wrong on the wire is handled here once: bounded retries with exponential backoff
for faults that go away by themselves, and every failure reaches the user as ONE line naming the URL and
what to check (the words are in ``http_faults.py``). Every call has a deadline (``deadline.py``): a
first-byte limit for a server that stalls and an overall one that retries, backoff and a dripping body all
count against. httpx is imported when a client is made, so listing backends costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from memagent.errors import BackendError
from memagent.llm.backends.deadline import (
    CallLimits,
    Clock,
    Deadline,
    Watchdog,
    first_byte_message,
    unfinished_message,
)
from memagent.llm.backends.http_util import stream_payloads

if TYPE_CHECKING:
    import httpx

    from memagent.llm.backends.http_faults import ServerWording

# The deadlines of a call (DEFAULT_TIMEOUT and the first-byte limit) are in deadline.py. Connecting to a
# live server is instant.
DEFAULT_CONNECT_TIMEOUT = 10.0
MAX_BODY_BYTES = 16_000_000  # a whole reply is a few hundred KB at most; a longer body is no model's answer
DEFAULT_RETRIES = 3
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0


class ServerClient:
    """JSON requests to one server: POST, GET and streamed POST, each within the deadline of the model call
    in progress, retried while waiting can fix the fault; a failure is one BackendError line."""

    def __init__(
        self,
        server: ServerWording,
        limits: CallLimits,
        *,
        connect_timeout: float,
        retries: int,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        import httpx

        self.server = server
        self.limits = limits
        self.retries = retries
        self._sleep = sleep
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._deadline: Deadline | None = None  # the model call in progress, retries included
        self.client = httpx.Client(
            base_url=server.endpoint,
            timeout=httpx.Timeout(limits.overall, connect=connect_timeout),
            transport=transport,
            # No idle connections: each request opens its own, so the watchdog always learns its socket.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"Authorization": f"Bearer {server.secret}"} if server.secret else None,
        )

    def close(self) -> None:
        self.client.close()

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

    # -- requests ----------------------------------------------------------------------------------
    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` as JSON and return the decoded JSON object, retrying transient faults."""
        with self.call():
            response, _ = self._send("POST", path, body)
            return self.server.decode(response, path)

    def get_json(self, path: str) -> dict[str, Any]:
        with self.call():
            response, _ = self._send("GET", path, None)
            return self.server.decode(response, path)

    def stream_json(
        self, path: str, body: dict[str, Any], stream_format: str = "sse"
    ) -> Generator[dict[str, Any], None, None]:
        """POST `body` and yield each streamed event (SSE `data:` lines up to `[DONE]`, or with
        stream_format "ndjson" one JSON object a line);
        an answer in one body (a server that doesn't stream) is yielded whole, as the one WholeAnswer.

        Faults before the first byte are retried like post_json; a fault mid-stream is not (the text
        already shown can't be taken back) and becomes one transient BackendError."""
        import httpx

        with self.call() as deadline:
            response, watch = self._send("POST", path, body, stream=True)
            try:
                yield from self._read_events(response, path, stream_format, deadline, watch)
                cut = watch.fired  # the watchdog's cut can look like a body that simply ended
            except (httpx.TransportError, BackendError) as exc:
                if not (watch.fired or deadline.expired):
                    fault = exc if isinstance(exc, BackendError) else self.server.transport_fault(path, exc).error(1)
                    raise fault from exc
                raise self._cut_error(path, deadline, watch) from exc  # or like a half line
            finally:
                watch.stop()
                response.close()
            if cut:
                raise self._cut_error(path, deadline, watch)

    def _read_events(
        self, response: httpx.Response, path: str, stream_format: str, deadline: Deadline, watch: Watchdog
    ) -> Iterator[dict[str, Any]]:
        if not _is_stream(response):
            self._arm_unfinished(watch, deadline)
            response.read()
            yield WholeAnswer(self.server.decode(response, path))
            return
        for payload in stream_payloads(self._lines(response, watch, deadline), stream_format):
            event = self.server.event(payload, path)
            if deadline.expired:  # a server that streams forever, however fast
                raise self.server.deadline_error(path, deadline)
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
                    label = self.server.label
                    raise BackendError(f"The {label} streamed a line of over {MAX_BODY_BYTES:,} characters.")
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
    def call(self) -> Iterator[Deadline]:
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
                    self.server.answered = True
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
                fault = self.server.transport_fault(path, exc)
            except BaseException:  # Ctrl-C, or a bug: nothing may cut a later request's socket
                watch.stop()
                raise
            else:
                watch.stop()
                response.close()
                if response.is_success:
                    self.server.answered = True
                    return response, watch
                fault = self.server.status_fault(path, response, body)
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
                f"The {self.server.label} at {self.server.url(path)} sent an answer of {size / 1e6:.0f} MB, more "
                f"than any model reply (memagent reads at most {MAX_BODY_BYTES // 1_000_000} MB). Is --endpoint a "
                "model server?"
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
        request = self.client.build_request(
            method, path, json=body, timeout=timeout, extensions={"trace": watch.trace}
        )
        watch.arm(silence)
        watch.silence = self.limits.first_byte
        response = self.client.send(request, stream=True)
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
            return BackendError(first_byte_message(self.server.where(path), watch.silence), transient=True)
        return None

    def _cut_error(self, path: str, deadline: Deadline, watch: Watchdog) -> BackendError:
        """Why the watchdog cut an answer that had begun: left unfinished, or out of time."""
        if watch.fired and watch.unfinished and not deadline.expired:
            return BackendError(unfinished_message(self.server.where(path), watch.silence), transient=True)
        return self.server.deadline_error(path, deadline)

    def _failure(self, path: str, deadline: Deadline, watch: Watchdog, exc: httpx.TransportError) -> BackendError:
        """A fault that is not retried: the deadline's line, or the fault's own."""
        return self._timeout_error(path, deadline, watch, exc) or self.server.transport_fault(path, exc).error(1)


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
