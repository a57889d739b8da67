"""The one-line hint on the default model's first chat: shown once per home, never for a model the user chose."""

from __future__ import annotations

from pathlib import Path

from memagent.app import DEFAULT_MODEL_HINT, default_model_hint
from memagent.settings import Settings


def test_the_default_models_first_chat_in_a_home_gets_the_hint_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.backend == "embedded" and settings.model_path is None
    assert default_model_hint(settings) == DEFAULT_MODEL_HINT
    assert "--model-path" in DEFAULT_MODEL_HINT
    assert default_model_hint(settings) is None  # the next start says nothing
    (tmp_path / "other").mkdir()
    assert default_model_hint(Settings(home=tmp_path / "other")) == DEFAULT_MODEL_HINT  # another home: its own first


def test_a_chosen_model_or_another_backend_gets_no_hint(tmp_path: Path) -> None:
    assert default_model_hint(Settings(home=tmp_path, model_path=tmp_path / "llama-3.2-3b.gguf")) is None
    assert default_model_hint(Settings(home=tmp_path, backend="human")) is None
    assert not any(tmp_path.iterdir())  # and nothing written for them


def test_a_home_that_cant_be_written_still_gets_the_hint(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"  # the marker can't be created here
    assert default_model_hint(Settings(home=missing)) == DEFAULT_MODEL_HINT
