"""The model layer's plain values: the request a completion is asked with, and what complete() hands on."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from memagent.app import Session, choose_wrapper, constraint_notice
from memagent.errors import UnsupportedOperation
from memagent.llm import constraint as constraint_module
from memagent.llm.backends import base
from memagent.llm.backends.base import Backend
from memagent.llm.backends.http import HTTPBackend
from memagent.llm.backends.human import HumanBackend
from memagent.llm.backends.registry import BACKENDS, create_backend, runs_in_process
from memagent.llm.types import Capabilities, Completion, CompletionRequest, Constraint
from memagent.llm.wrappers.registry import create_wrapper
from memagent.memory.store import Store
from memagent.settings import Settings
from tests.fakes import ScriptedBackend

CONSTRAINT = Constraint(json_schema={"type": "string"}, gbnf='root ::= "x"')


def test_complete_builds_the_request_generate_receives() -> None:
    backend = ScriptedBackend(["out"])
    pieces: list[str] = []
    completion = backend.complete("the prompt", stop=["<|im_end|>", "\n"], max_tokens=7, constraint=CONSTRAINT,
                                  on_text=pieces.append)
    assert completion.text == "out" and pieces == ["out"]
    assert backend.requests == [
        CompletionRequest("the prompt", ("<|im_end|>", "\n"), 7, CONSTRAINT, pieces.append)
    ]


def test_complete_fills_the_defaults() -> None:
    backend = ScriptedBackend(["out"])
    backend.complete("p")
    assert backend.requests == [CompletionRequest("p", (), 512, None, None)]


def test_a_request_is_frozen_and_its_stops_a_tuple() -> None:
    request = CompletionRequest("p", stop=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.prompt = "q"  # type: ignore[misc]
    assert hash(CompletionRequest("p")) == hash(CompletionRequest("p"))


def test_the_old_import_paths_still_work() -> None:
    assert base.Constraint is Constraint and base.Completion is Completion
    assert constraint_module.Constraint is Constraint


# -- declared capabilities -------------------------------------------------------------------------
def overrides(cls: type[Backend], method: str) -> bool:
    return getattr(cls, method) is not getattr(Backend, method)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_declares_its_capabilities(name: str) -> None:
    cls = BACKENDS[name]
    assert isinstance(cls.__dict__.get("capabilities"), Capabilities), f"{name} declares no capabilities of its own"


@pytest.mark.parametrize("name", list(BACKENDS))
def test_the_declared_capabilities_match_what_the_backend_implements(name: str) -> None:
    cls, caps = BACKENDS[name], BACKENDS[name].capabilities
    assert overrides(cls, "chat_completion") == caps.native_function_calls
    assert overrides(cls, "metadata") == caps.model_metadata
    assert overrides(cls, "save_cache") == overrides(cls, "load_cache") == caps.kv_cache
    assert ("model_path" in inspect.signature(cls).parameters) == caps.in_process
    assert caps.raw_completion or caps.native_function_calls, "a backend that can produce no text"
    if issubclass(cls, HTTPBackend):
        assert caps.exact_token_count == (cls.tokenize_path is not None)


def test_what_the_backends_declare() -> None:
    caps = {name: BACKENDS[name].capabilities for name in BACKENDS}
    assert [n for n, c in caps.items() if not c.raw_completion] == ["openai"]
    assert [n for n, c in caps.items() if c.kv_cache] == ["embedded"]
    assert [n for n, c in caps.items() if c.typed_by_person] == ["human"]
    assert sorted(n for n, c in caps.items() if c.needs_model_name) == ["ollama", "openai", "vllm"]
    assert caps["llamacpp"].constraint_kinds == {"gbnf", "json_schema"}


def test_constraint_kinds_and_can_constrain_derive_from_the_capabilities() -> None:
    backend = HumanBackend()
    assert backend.constraint_kinds == frozenset() and not backend.can_constrain
    scripted = ScriptedBackend(constrain=True)
    assert scripted.constraint_kinds == {"gbnf"} and scripted.can_constrain
    assert scripted.capabilities.constraint_kinds == {"gbnf"}
    assert not ScriptedBackend(constrain=False).can_constrain
    assert ScriptedBackend.capabilities == Capabilities()  # one instance's override leaves the class alone


def test_an_optional_operation_a_backend_lacks_is_one_line_error() -> None:
    backend = HumanBackend()
    for call in (lambda: backend.metadata(), lambda: backend.chat_completion([], []),
                 lambda: backend.load_cache(Path("x"))):
        with pytest.raises(UnsupportedOperation, match="The human backend has no "):
            call()


def test_settings_read_in_process_and_the_model_name_from_capabilities() -> None:
    assert runs_in_process("embedded") and runs_in_process("huggingface")
    assert not runs_in_process("llamacpp") and not runs_in_process("no-such-backend")


# -- the app reads capabilities ---------------------------------------------------------------------
LLAMA3_TEMPLATE = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{% endfor %}"


class GGUFLikeBackend(ScriptedBackend):
    """A scripted backend that declares a chat template and a KV cache, as the embedded one does."""

    capabilities = Capabilities(constraint_kinds=frozenset({"gbnf"}), kv_cache=True, model_metadata=True)

    def __init__(self) -> None:
        super().__init__()
        self.cache_calls: list[tuple[str, Path]] = []

    def metadata(self) -> dict[str, str]:
        return {"tokenizer.chat_template": LLAMA3_TEMPLATE}

    def save_cache(self, path: Path) -> None:
        self.cache_calls.append(("save", path))

    def load_cache(self, path: Path) -> int:
        self.cache_calls.append(("load", path))
        return 42


def test_the_wrapper_follows_the_chat_template_only_where_metadata_is_declared(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert choose_wrapper(settings, GGUFLikeBackend()).name == "llama3"
    assert choose_wrapper(settings, ScriptedBackend()).name == create_wrapper(None, constrained=True).name


def test_the_session_keeps_a_kv_cache_only_where_the_backend_declares_one(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "a.kv"
    path.parent.mkdir()
    path.write_bytes(b"state")
    for backend, expected in ((GGUFLikeBackend(), 42), (ScriptedBackend(), 0)):
        store = Store(tmp_path / "memagent.db")
        session = Session(agent=None, created=False, store=store, backend=backend, cache_path=path)  # type: ignore[arg-type]
        assert session.restore_cache() == expected
        session.close()
    assert GGUFLikeBackend.capabilities.kv_cache and not ScriptedBackend.capabilities.kv_cache


def test_no_constraint_notice_for_a_person_or_native_function_calls(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert constraint_notice(settings, HumanBackend()) is None
    chat_only = create_backend("openai", model="m", api_key="k")
    try:
        assert not chat_only.can_constrain and constraint_notice(settings, chat_only) is None
    finally:
        chat_only.close()
    assert constraint_notice(settings, ScriptedBackend(constrain=False)) == (
        "scripted can't constrain output here: malformed calls are repaired or retried instead."
    )
