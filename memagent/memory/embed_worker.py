"""The background embedder: gives stored rows their vectors after the step that wrote them has committed, so
embedding (~50 ms of CPU a row) never slows a turn.

A daemon thread at low CPU priority with its own ``Store`` (its own connection: a store is used by one thread). It
wakes when the chat's store commits (``Store.on_commit``) and embeds what is new, ``BATCH`` rows at a time, each
batch written in its own short transaction; when nothing woke it for ``rescan`` seconds it looks at every row
again (a rewritten message lost its vector; another process may have written rows). Stopped at exit between two
batches. If the process is killed at any instant, nothing is lost: a row without a vector is found by full text
meanwhile, and embedded by the next run (or `memagent agents reindex`).

Started and stopped by the composition root (``app.py``); nothing here prints. A failure (the database locked
for longer than the busy timeout, say) is kept in ``last_error`` and the rows wait for the next wake: a traceback
from this thread would land in the middle of the chat, and search works without vectors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import suppress

from memagent.memory.embed import Embedder
from memagent.memory.store import Store

BATCH = 8
"""Rows embedded per model call and written per transaction: short enough that a search waiting for the model
(one lock) or a step waiting for the write lock waits well under a second."""

RESCAN_SECONDS = 300.0
NICENESS = 10
FIRST_SCAN_DELAY = 5.0
"""Seconds after start before the worker looks for old rows, unless a commit wakes it first: loading numpy and the
e5 model at once would compete with the chat's own start for the GIL and the CPU (the first prompt comes first)."""


def _lower_priority() -> None:
    """This thread only (Linux: a thread is a task of its own to setpriority); elsewhere nothing."""
    with suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


class EmbeddingWorker:
    """Embeds the rows of the database ``open_store`` opens, in a thread, from ``start`` to ``stop``."""

    def __init__(
        self, open_store: Callable[[], Store], embedder: Embedder, *, rescan: float = RESCAN_SECONDS,
        first_scan_delay: float = FIRST_SCAN_DELAY,
    ) -> None:
        self._open_store = open_store
        self.embedder = embedder
        self.rescan = rescan
        self.first_scan_delay = first_scan_delay
        self.embedded = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._lock = threading.Lock()  # wake() and "all done" never interleave
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="memagent-embedder", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something was committed: look for rows to embed."""
        with self._lock:
            self._idle.clear()
            self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Block until every row seen so far has its vector (True), or ``timeout`` seconds pass (False)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand and end the thread (a batch is a second or two at most)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        _lower_priority()
        self._wake.wait(self.first_scan_delay)
        if self._stop.is_set():
            self._idle.set()
            return
        try:
            store = self._open_store()
        except Exception as error:  # any error, as in _loop
            self.last_error = str(error)
            self._idle.set()
            return
        try:
            self._loop(store)
        finally:
            store.close()

    def _loop(self, store: Store) -> None:
        cursor: dict[str, int] = {}
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.embedded += store.embed_pending(
                    self.embedder, batch=BATCH, after=cursor, stop=self._stop.is_set
                )
                self.last_error = None
            except Exception as error:  # any error: a thread's traceback would land in the middle of the chat
                self.last_error = str(error) or type(error).__name__
            with self._lock:
                if not self._wake.is_set():
                    self._idle.set()
            if not self._wake.wait(self.rescan):
                cursor = {}  # nothing new for a while: look at every row again
