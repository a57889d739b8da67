"""Settings: `.env` parsing, flag > environment > .env > default, the API key kept out of sight, bad numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from memagent.errors import ConfigError
from memagent.settings import Settings, build_settings, parse_dotenv, read_environment

SECRET = "sk-test-0123456789abcdef"


def build(tmp_path: Path, flags: dict | None = None, env: dict | None = None) -> Settings:
    """Settings from these flags and this environment only: never the developer's own ~/.memagent or .env."""
    return build_settings(flags or {}, environ={"MEMAGENT_HOME": str(tmp_path / "home"), **(env or {})}, cwd=tmp_path)


# -- .env ------------------------------------------------------------------------------------------
def test_parse_dotenv_handles_comments_export_quotes_and_equals_in_values() -> None:
    text = """
# a comment
BACKEND_TYPE=llamacpp
export OPENAI_API_BASE = "http://127.0.0.1:8080"
MEMAGENT_MODEL='chatml'
OPENAI_API_KEY=abc=def==
not a setting line
EMPTY=
"""
    assert parse_dotenv(text) == {
        "BACKEND_TYPE": "llamacpp",
        "OPENAI_API_BASE": "http://127.0.0.1:8080",
        "MEMAGENT_MODEL": "chatml",
        "OPENAI_API_KEY": "abc=def==",
        "EMPTY": "",
    }


def test_the_current_directory_env_file_beats_the_home_one_and_the_environment_beats_both(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".env").write_text("BACKEND_TYPE=webui\nMEMAGENT_MODEL=zephyr\nMEMAGENT_CONTEXT_LENGTH=1000\n")
    (tmp_path / ".env").write_text("BACKEND_TYPE=lmstudio\nMEMAGENT_CONTEXT_LENGTH=2000\n")
    env = read_environment({"MEMAGENT_HOME": str(home), "MEMAGENT_CONTEXT_LENGTH": "3000", "PATH": "/bin"}, tmp_path)
    assert env["BACKEND_TYPE"] == "lmstudio"  # cwd .env over home .env
    assert env["MEMAGENT_MODEL"] == "zephyr"  # only in the home .env
    assert env["MEMAGENT_CONTEXT_LENGTH"] == "3000"  # the environment over both
    assert "PATH" not in env  # unrelated variables are not read


# -- precedence ------------------------------------------------------------------------------------
def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    settings = build(tmp_path)
    assert settings.backend == "embedded" and settings.endpoint is None and settings.context_length is None
    assert settings.home == tmp_path / "home" and settings.db_path == tmp_path / "home" / "memagent.db"
    assert settings.llm_config is None and dict(settings.backend_settings) == {}


@pytest.mark.parametrize(
    ("flag", "env", "dotenv", "expected"),
    [
        (4096, "3000", "2000", 4096),
        (None, "3000", "2000", 3000),
        (None, None, "2000", 2000),
        (None, None, None, None),
    ],
)
def test_flag_beats_environment_beats_dotenv_beats_default(tmp_path: Path, flag, env, dotenv, expected) -> None:
    if dotenv:
        (tmp_path / ".env").write_text(f"MEMAGENT_CONTEXT_LENGTH={dotenv}\n")
    settings = build(tmp_path, {"context_length": flag}, {"MEMAGENT_CONTEXT_LENGTH": env} if env else {})
    assert settings.context_length == expected


def test_seed_001_variables_pick_the_server(tmp_path: Path) -> None:
    env = {"BACKEND_TYPE": "WebUI", "OPENAI_API_BASE": "http://127.0.0.1:5000"}
    settings = build(tmp_path, env=env)
    assert settings.backend == "webui" and settings.endpoint == "http://127.0.0.1:5000"
    flagged = build(tmp_path, {"backend": "lmstudio", "endpoint": "http://localhost:1234"}, env)
    assert flagged.backend == "lmstudio" and flagged.endpoint == "http://localhost:1234"


def test_an_exported_endpoint_does_not_break_the_embedded_default(tmp_path: Path) -> None:
    env = {"OPENAI_API_BASE": "http://127.0.0.1:5000", "MEMAGENT_MODEL_PATH": "/models/x.gguf"}
    assert build(tmp_path, env=env).endpoint is None
    assert build(tmp_path, env=env).model_path == Path("/models/x.gguf")
    server = build(tmp_path, {"backend": "llamacpp"}, env)
    assert server.endpoint == "http://127.0.0.1:5000" and server.model_path is None
    # A typed flag is kept, so the backend can refuse it instead of silently ignoring it.
    assert build(tmp_path, {"endpoint": "http://127.0.0.1:9"}).endpoint == "http://127.0.0.1:9"


# -- the API key -----------------------------------------------------------------------------------
def test_the_api_key_is_never_in_the_repr(tmp_path: Path) -> None:
    settings = build(tmp_path, {"backend": "openai", "backend_model": "gpt-4o-mini"}, {"OPENAI_API_KEY": SECRET})
    assert settings.api_key == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings) and "api_key=" not in repr(settings)


def test_the_api_key_goes_to_the_openai_backend_only(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    assert build(tmp_path, {"backend": "openai", "backend_model": "m"}).api_key == SECRET  # from .env
    assert build(tmp_path, {"backend": "llamacpp"}).api_key is None
    assert build(tmp_path).api_key is None


# -- bad values ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "env", "source"),
    [
        ({}, {"MEMAGENT_CONTEXT_LENGTH": "lots"}, "MEMAGENT_CONTEXT_LENGTH"),
        ({}, {"MEMAGENT_CONTEXT_LENGTH": "-1"}, "MEMAGENT_CONTEXT_LENGTH"),
        ({"context_length": 0}, {}, "--context-length"),
    ],
)
def test_a_bad_context_length_is_one_line_naming_where_it_came_from(tmp_path: Path, flags, env, source) -> None:
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, flags, env)
    message = str(caught.value)
    assert source in message and "positive number of tokens" in message and "\n" not in message


def test_a_server_that_needs_a_model_name_asks_for_the_right_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ollama backend needs a model name .*--backend-model"):
        build(tmp_path, {"backend": "ollama"})
    assert build(tmp_path, {"backend": "ollama", "backend_model": "qwen2.5:7b"}).backend_model == "qwen2.5:7b"


def test_settings_are_frozen_all_the_way_down(tmp_path: Path) -> None:
    settings = build(tmp_path, {"llm_config": "llamacpp-server"})
    assert settings.backend_settings["temperature"] == 0.3
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.backend = "human"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.backend_settings["temperature"] = 2.0  # type: ignore[index]


# -- the timeout: --timeout > LLM config > MEMAGENT_TIMEOUT > the backend's defaults ------------------
def write_config(tmp_path: Path, name: str, text: str) -> None:
    folder = tmp_path / "home" / "llm_configs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_the_timeout_flag_beats_the_config_which_beats_the_environment(tmp_path: Path) -> None:
    write_config(tmp_path, "slow", "backend: llamacpp\ntimeout: 300\nsettings: {temperature: 0.2}\n")
    env = {"MEMAGENT_TIMEOUT": "45"}
    assert build(tmp_path, {"backend": "llamacpp"}, env).timeout == 45
    assert build(tmp_path, {"llm_config": "slow"}, env).timeout == 300
    flagged = build(tmp_path, {"llm_config": "slow", "timeout": 12.5}, env)
    assert flagged.timeout == 12.5
    assert dict(flagged.backend_settings) == {"temperature": 0.2, "timeout": 12.5}  # what reaches the backend


def test_no_timeout_anywhere_leaves_the_backend_its_defaults(tmp_path: Path) -> None:
    settings = build(tmp_path, {"backend": "llamacpp"})
    assert settings.timeout is None and "timeout" not in settings.backend_settings


def test_every_backend_that_calls_a_model_gets_the_timeout_but_a_typing_human_does_not(tmp_path: Path) -> None:
    for backend in ("embedded", "huggingface", "llamacpp", "openai-completions", "koboldcpp", "webui", "lmstudio"):
        assert build(tmp_path, {"backend": backend, "timeout": 30}).backend_settings["timeout"] == 30, backend
    human = build(tmp_path, {"backend": "human", "timeout": 30})
    assert human.timeout is None and "timeout" not in human.backend_settings


@pytest.mark.parametrize(
    ("flags", "env", "source"),
    [
        ({"timeout": 0}, {}, "--timeout"),
        ({}, {"MEMAGENT_TIMEOUT": "soon"}, "MEMAGENT_TIMEOUT"),
        ({}, {"MEMAGENT_TIMEOUT": "-3"}, "MEMAGENT_TIMEOUT"),
        ({}, {"MEMAGENT_TIMEOUT": "inf"}, "MEMAGENT_TIMEOUT"),
    ],
)
def test_a_bad_timeout_names_where_it_came_from(tmp_path: Path, flags: dict, env: dict, source: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, {"backend": "llamacpp", **flags}, env)
    assert source in str(caught.value) and "positive number of seconds" in str(caught.value)
