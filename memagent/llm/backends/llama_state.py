"""llama.cpp's state in files: the evaluated tokens and their KV cache, written and read by llama.cpp itself.

Two uses: an agent's own cache, saved when a chat ends and restored when it is opened again, and the shared prompt
prefix (instructions and function schemas) that every new agent with the same model and prompt starts from.

llama.cpp streams the used KV cells to and from the file in C, so saving costs no extra memory (llama-cpp-python's
``save_state()`` holds several copies of the state in Python at once). A small JSON header beside each file names
what the state belongs to (model file, context length, format version); a state is only loaded under the same
header, and any error while loading means starting cold: it is a cache, never the only copy of anything.
"""

from __future__ import annotations

import ctypes
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def header_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_state(llm: Any, path: Path, header: dict[str, Any]) -> None:
    """Write the evaluated tokens and their KV cache (llama_state_save_file), then the header."""
    from llama_cpp import llama_state_save_file, llama_token

    count = int(llm.n_tokens)
    tokens = (llama_token * count)(*llm.input_ids[:count].tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    header_file = header_path(path)
    header_file.unlink(missing_ok=True)  # no header, no restore: a crash below leaves nothing that could mismatch
    # Each save writes a file of its own and renames it into place: two processes saving the same state at once each
    # leave a whole file, never a mix, and an interrupted save leaves no litter.
    partial = path.with_name(f"{path.name}.{unique_suffix()}.partial")
    try:
        if not llama_state_save_file(llm.ctx, str(partial).encode(), tokens, count):
            raise OSError(f"llama.cpp could not write its state to {partial}")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    write_atomically(header_file, json.dumps(header))


def load_state(llm: Any, path: Path, header: dict[str, Any], capacity: int) -> int:
    """Restore the state saved at ``path`` if its header is ``header``; the number of tokens restored (0: none, and
    the model's state is reset if a load was attempted and failed)."""
    from llama_cpp import llama_state_load_file, llama_token

    try:
        if json.loads(header_path(path).read_text(encoding="utf-8")) != header:
            return 0
        tokens = (llama_token * capacity)()
        count = ctypes.c_size_t(0)
        if not llama_state_load_file(llm.ctx, str(path).encode(), tokens, capacity, ctypes.byref(count)):
            raise ValueError(f"llama.cpp could not read its state from {path}")
    except (OSError, ValueError, UnicodeDecodeError):
        llm.reset()  # a stale or damaged state is only a cache: start cold
        return 0
    restored = int(count.value)
    llm.input_ids[:restored] = tokens[:restored]
    llm.n_tokens = restored  # llama-cpp-python matches the next prompt against these tokens
    llm._requires_eval = True  # as Llama.load_state() does: the restored logits are not a fresh decode
    return restored


def common_prefix(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading tokens the two sequences share."""
    n = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        n += 1
    return n


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.{unique_suffix()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def unique_suffix() -> str:
    """A part of a temporary file name no other process or save uses."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
