"""Saving the embedded backend's KV cache: each save writes a file of its own and renames it into place, so
two processes saving one agent's cache at once never write into the same temporary file."""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from memagent.llm.backends.embedded import EmbeddedBackend


class Tokens(list[int]):
    """input_ids as numpy gives them: slices that have tolist()."""

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return Tokens(item) if isinstance(index, slice) else item

    def tolist(self) -> list[int]:
        return list(self)


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """A stand-in llama_cpp whose state saver records where it was asked to write."""
    paths: list[Path] = []

    def save(ctx: Any, path: bytes, tokens: Any, count: int) -> bool:
        paths.append(Path(path.decode()))
        paths[-1].write_bytes(b"state %d" % len(paths))
        return True

    fake = types.SimpleNamespace(llama_state_save_file=save, llama_token=ctypes.c_int32)
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)
    return paths


def backend(tmp_path: Path) -> EmbeddedBackend:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    instance = EmbeddedBackend.__new__(EmbeddedBackend)  # no llama.cpp: only the saving is under test
    instance.model_path = model
    instance._busy = threading.RLock()
    instance._llm = types.SimpleNamespace(n_tokens=3, input_ids=Tokens([1, 2, 3, 4]), ctx=None, n_ctx=lambda: 64)
    return instance


def test_two_saves_of_one_cache_use_temporary_files_of_their_own(tmp_path: Path, written: list[Path]) -> None:
    first, second = backend(tmp_path), backend(tmp_path)
    target = tmp_path / "cache" / "agent.kv"
    first.save_cache(target)
    second.save_cache(target)
    assert len(set(written)) == 2 and target not in written  # never the final name, never a shared one
    assert target.read_bytes() == b"state 2"
    assert json.loads(EmbeddedBackend.cache_header(target).read_text())["n_ctx"] == 64
    assert sorted(p.name for p in target.parent.iterdir()) == ["agent.kv", "agent.kv.json"]  # no litter


def test_a_failed_save_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(ctx: Any, path: bytes, tokens: Any, count: int) -> bool:
        Path(path.decode()).write_bytes(b"half")
        return False

    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(llama_state_save_file=refuse,
                                                                         llama_token=ctypes.c_int32))
    target = tmp_path / "cache" / "agent.kv"
    with pytest.raises(OSError, match="could not write its state"):
        backend(tmp_path).save_cache(target)
    assert list(target.parent.iterdir()) == []
