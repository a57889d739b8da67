"""`memagent chat`'s flags reach Settings by their names (ctx.params -> build_settings), in process: the chat
itself is replaced, so no fork and no model."""

from __future__ import annotations

from pathlib import Path

import pytest

import memagent.cli.chat as chat_module
from memagent.cli import app
from memagent.settings import Settings


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Settings]:
    seen: list[Settings] = []
    monkeypatch.setenv("MEMAGENT_HOME", str(tmp_path / "home"))
    for name in ("BACKEND_TYPE", "OPENAI_API_BASE", "MEMAGENT_LLM_CONFIG", "MEMAGENT_TIMEOUT", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(chat_module, "run_chat", lambda settings: seen.append(settings) or 0)
    return seen


def test_every_chat_flag_reaches_settings(captured: list[Settings], tmp_path: Path) -> None:
    app(
        ["chat", "--agent", "sam", "--preset", "memgpt_chat", "--model", "chatml", "--backend", "llamacpp",
         "--endpoint", "http://127.0.0.1:9", "--context-length", "2048", "--timeout", "7.5", "--no_verify",
         "--no-constraint", "--json", "--no-color", "--debug"],
        standalone_mode=False,
    )
    [settings] = captured
    assert (settings.agent, settings.preset, settings.model, settings.backend) == (
        "sam", "memgpt_chat", "chatml", "llamacpp"
    )
    assert (settings.endpoint, settings.context_length, settings.timeout) == ("http://127.0.0.1:9", 2048, 7.5)
    assert settings.no_verify and not settings.constrain and settings.json_output
    assert not settings.color and settings.debug


def test_no_flags_give_the_defaults(captured: list[Settings]) -> None:
    app(["chat"], standalone_mode=False)
    [settings] = captured
    assert settings.agent is None and settings.backend == "embedded" and settings.timeout is None
    assert settings.constrain and not settings.json_output and not settings.debug and settings.color


def test_model_path_and_backend_model_reach_settings(captured: list[Settings], tmp_path: Path) -> None:
    app(["chat", "--model-path", str(tmp_path / "m.gguf")], standalone_mode=False)
    app(["chat", "--backend", "ollama", "--backend-model", "qwen2.5:7b"], standalone_mode=False)
    assert captured[0].model_path == tmp_path / "m.gguf"
    assert captured[1].backend_model == "qwen2.5:7b"


def test_auto_recall_flags_reach_settings(captured: list[Settings]) -> None:
    app(["chat"], standalone_mode=False)
    app(["chat", "--auto-recall"], standalone_mode=False)
    app(["chat", "--no-auto-recall"], standalone_mode=False)
    assert [settings.auto_recall for settings in captured] == [None, True, False]
