"""Saving and restoring llama.cpp's state (the KV cache) for the embedded backend, two ways: memagent's own
`save_cache`/`load_cache` (llama.cpp's `llama_state_save_file`/`llama_state_load_file`, streamed from C), and
llama-cpp-python's `Llama.save_state()` pickled, which memagent used before. Each saver returns the seconds it took."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from pathlib import Path

from memagent.llm.backends.embedded import EmbeddedBackend

Saver = Callable[[EmbeddedBackend, Path], float]
Loader = Callable[[EmbeddedBackend, Path], None]


def save_pickled_state(backend: EmbeddedBackend, path: Path) -> float:
    """llama-cpp-python's Llama.save_state() (KV cache, token ids and the logits buffer), pickled."""
    start = time.perf_counter()
    with path.open("wb") as handle:
        pickle.dump(backend._llm.save_state(), handle, protocol=pickle.HIGHEST_PROTOCOL)
    return time.perf_counter() - start


def load_pickled_state(backend: EmbeddedBackend, path: Path) -> None:
    with path.open("rb") as handle:
        backend._llm.load_state(pickle.load(handle))


def save_cache(backend: EmbeddedBackend, path: Path) -> float:
    start = time.perf_counter()
    backend.save_cache(path)
    return time.perf_counter() - start


def load_cache(backend: EmbeddedBackend, path: Path) -> None:
    if not backend.load_cache(path):
        raise RuntimeError("load_cache restored nothing")


def state_methods() -> dict[str, tuple[Saver, Loader]]:
    """How to save and restore llama.cpp's state: memagent's save_cache/load_cache, and Llama.save_state() pickled."""
    return {"save_cache": (save_cache, load_cache), "pickle": (save_pickled_state, load_pickled_state)}
