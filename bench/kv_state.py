"""Saving and restoring llama.cpp's state (the KV cache) for the embedded backend, three ways: memagent's own
`save_cache`/`load_cache` when the backend has them, llama-cpp-python's `Llama.save_state()` pickled, and
llama.cpp's `llama_state_save_file`/`llama_state_load_file`. Each saver returns the seconds it took."""

from __future__ import annotations

import ctypes
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


def save_state_file(backend: EmbeddedBackend, path: Path) -> float:
    """llama.cpp's own llama_state_save_file: the evaluated tokens and their KV cache only."""
    import llama_cpp

    llm = backend._llm
    start = time.perf_counter()
    n = llm.n_tokens
    tokens = (llama_cpp.llama_token * n)(*llm.input_ids[:n].tolist())
    if not llama_cpp.llama_state_save_file(llm._ctx.ctx, str(path).encode(), tokens, n):
        raise RuntimeError("llama_state_save_file failed")
    return time.perf_counter() - start


def load_state_file(backend: EmbeddedBackend, path: Path) -> None:
    import llama_cpp

    llm = backend._llm
    capacity = llm.n_ctx()
    tokens = (llama_cpp.llama_token * capacity)()
    count = ctypes.c_size_t(0)
    if not llama_cpp.llama_state_load_file(llm._ctx.ctx, str(path).encode(), tokens, capacity, ctypes.byref(count)):
        raise RuntimeError("llama_state_load_file failed")
    llm.input_ids[: count.value] = tokens[: count.value]
    llm.n_tokens = count.value


def _save_cache(backend: EmbeddedBackend, path: Path) -> float:
    start = time.perf_counter()
    backend.save_cache(path)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def _load_cache(backend: EmbeddedBackend, path: Path) -> None:
    if not backend.load_cache(path):  # type: ignore[attr-defined]
        raise RuntimeError("load_cache restored nothing")


def state_methods() -> dict[str, tuple[Saver, Loader]]:
    """How to save and restore llama.cpp's state: memagent's own save_cache/load_cache when the embedded backend
    has them, else llama-cpp-python's Llama.save_state() pickled; and llama.cpp's llama_state_save_file."""
    methods: dict[str, tuple[Saver, Loader]] = {}
    if hasattr(EmbeddedBackend, "save_cache") and hasattr(EmbeddedBackend, "load_cache"):
        methods["save_cache"] = (_save_cache, _load_cache)
    else:
        methods["pickle"] = (save_pickled_state, load_pickled_state)
    methods["state_file"] = (save_state_file, load_state_file)
    return methods
