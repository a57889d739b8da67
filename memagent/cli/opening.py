"""Opening the chat session in a thread, behind the first prompt.

Importing SQLAlchemy alone takes ~0.4 s, loading the model and restoring its KV cache more, and evaluating a new
preset's shared prompt prefix can take a minute: none of it is needed to show the prompt. In an interactive chat the
prompt is drawn at once and the session opens meanwhile (what it prints appears above the prompt); the first line
typed waits for it. If opening fails, the prompt ends and the error is the same one line as without the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memagent.agent import Agent
    from memagent.app import Session


class Opening:
    """A session being opened by ``open_session`` in a thread of its own, from ``start()`` on (the first prompt calls
    it once it is drawn, so that the opening's imports don't hold Python's lock while the prompt draws)."""

    def __init__(self, open_session: Callable[[], Session]) -> None:
        self._open = open_session
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._on_failure: Callable[[], None] | None = None
        self.session: Session | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="memagent-open", daemon=True)

    def start(self) -> None:
        with self._lock:
            if self._thread.ident is None:  # not started yet
                self._thread.start()

    def _run(self) -> None:
        try:
            self.session = self._open()
        except BaseException as exc:  # handed to the main thread, which reports it as it would have
            self.error = exc
        with self._lock:
            self._done.set()
            callback = self._on_failure if self.error is not None else None
        if callback is not None:
            callback()

    def when_failed(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (from any thread) if opening fails, at once if it already has; None: no longer."""
        with self._lock:
            self._on_failure = callback
            failed = self._done.is_set() and self.error is not None
        if failed and callback is not None:
            callback()

    def agent_if_open(self) -> Agent | None:
        return self.session.agent if self._done.is_set() and self.session is not None else None

    def wait(self) -> Session:
        """The session once opened; raises what opening raised."""
        self.start()
        self._done.wait()
        if self.error is not None:
            raise self.error
        assert self.session is not None
        return self.session
