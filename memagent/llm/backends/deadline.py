"""How long one model call may take, and the watchdog that holds a server to it.

Two limits, both in seconds:

- the *first-byte* limit: how long a server may stay silent after it got a request. Silence means it has
  stalled (or is still loading a model), and the user gets control back in well under a minute;
- the *overall* deadline: everything one model call may take, retries and backoff included. Once bytes
  flow, a long generation may run until then, but no longer: a server that drips a byte a second is cut
  off there too (a socket's own timeout restarts on every byte, so it can't do this alone).

`--timeout N` (or MEMAGENT_TIMEOUT, or `timeout:` in an LLM config) sets the overall deadline, and the
first-byte limit to the same N: whoever names a number has a slow model and means it.

The watchdog runs in a daemon thread and only ever shuts a socket down, which makes the read blocked in
the main thread return; the read itself stays in the main thread, so Ctrl-C and streaming callbacks work
as they always did.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memagent.errors import ConfigError

DEFAULT_TIMEOUT = 600.0  # a whole call on a server: a long prompt and a few hundred tokens on a CPU
DEFAULT_FIRST_BYTE_TIMEOUT = 30.0  # a server silent this long after a request has stalled
DEFAULT_EMBEDDED_TIMEOUT = 1800.0  # in process nothing stalls; only a runaway generation is stopped
TIMEOUT_ADVICE = "pass --timeout SECONDS (or MEMAGENT_TIMEOUT) for a slower model"

Clock = Callable[[], float]


@dataclass(frozen=True)
class CallLimits:
    """The limits of one call: `overall` seconds in all, `first_byte` seconds of silence at most."""

    overall: float
    first_byte: float


def call_limits(
    timeout: float | None, first_byte_timeout: float | None = None, *, default: float = DEFAULT_TIMEOUT
) -> CallLimits:
    """The limits for a backend given its `timeout` and `first_byte_timeout` settings (None: not set)."""
    for name, value in (("timeout", timeout), ("first_byte_timeout", first_byte_timeout)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise ConfigError(f"Invalid {name} {value!r}: it must be a positive number of seconds.")
    overall = float(timeout) if timeout is not None else default
    if first_byte_timeout is not None:
        first_byte = float(first_byte_timeout)
    else:
        first_byte = overall if timeout is not None else DEFAULT_FIRST_BYTE_TIMEOUT
    return CallLimits(overall=overall, first_byte=min(first_byte, overall))


class Deadline:
    """The moment one call must be over, on a monotonic clock (injectable for tests)."""

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


class DeadlineExceeded(Exception):
    """Raised inside a backend when its deadline passes; turned into one BackendError line there."""


class Watchdog:
    """Shuts the socket of the request in flight down when its time is up.

    `trace` is an httpx/httpcore trace extension: it learns the socket when the connection is made (the
    client keeps no idle connections, so every request makes one). `arm(seconds)` (re)starts the timer;
    `stop()` disarms it for good. Everything is under one lock, so a timer that fires late, after the
    request is over, touches nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self._stopped = False
        self.fired = False
        self.silence = 0.0  # the first-byte limit of the request watched, for its message
        self.first_byte_seen = False  # once the answer began, only the overall deadline is armed...
        self.unfinished = False  # ...except while a line or body has begun and not ended (see HTTPBackend)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if not event.endswith(("connect_tcp.complete", "connect_unix_socket.complete")):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._socket = sock
                if self.fired:  # the time ran out while connecting
                    _shut(sock)

    def arm(self, seconds: float) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(max(seconds, 0.0), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
            self._socket = None

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired = True
            if self._socket is not None:
                _shut(self._socket)


def _shut(sock: socket.socket) -> None:
    """Make a read blocked on `sock` in another thread return at once (close() alone would not)."""
    with contextlib.suppress(OSError):  # already closed or never connected: nothing is blocked on it
        sock.shutdown(socket.SHUT_RDWR)


def deadline_message(where: str, seconds: float) -> str:
    return f"No complete answer from {where} within the {seconds:g} s deadline: {TIMEOUT_ADVICE}."


def unfinished_message(where: str, seconds: float) -> str:
    return (
        f"{where[0].upper()}{where[1:]} began an answer and left it unfinished for {seconds:g} s (a server that "
        f"hangs or sends a byte now and then); {TIMEOUT_ADVICE}."
    )


def first_byte_message(where: str, seconds: float) -> str:
    return (
        f"No answer from {where}: not a byte within {seconds:g} s, so it has stalled or is still loading "
        f"the model; {TIMEOUT_ADVICE}."
    )
