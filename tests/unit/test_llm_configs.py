"""LLM configs: bundled ones load, `defaults` inherit, user configs come first, errors name file and key,
and flags > LLM config > environment when Settings are built. Plus the registry and app wiring they feed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memagent.app import constraint_notice, create_backend
from memagent.errors import ConfigError
from memagent.llm.backends.registry import BACKENDS, backend_class
from memagent.llm.backends.registry import create_backend as create_registered_backend
from memagent.llm.configs import BUNDLED_FOLDER, available_llm_configs, load_llm_config
from memagent.settings import Settings, build_settings

BUNDLED = {
    "smollm2-embedded": "embedded",
    "embedded": "embedded",
    "llamacpp-server": "llamacpp",
    "openai-completions": "openai-completions",
    "ollama": "ollama",
    "lmstudio": "lmstudio",
    "webui": "webui",
    "koboldcpp": "koboldcpp",
    "vllm": "vllm",
    "openai": "openai",
    "human": "human",
    "huggingface": "huggingface",
}


def write(home: Path, name: str, text: str) -> Path:
    path = home / "llm_configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(home: Path, name: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_llm_config(name, home)
    message = str(caught.value)
    assert "\n" not in message
    return message


def settings_for(home: Path, tmp_path: Path, flags: dict | None = None, env: dict | None = None) -> Settings:
    return build_settings(flags or {}, environ={"MEMAGENT_HOME": str(home), **(env or {})}, cwd=tmp_path)


# -- bundled ---------------------------------------------------------------------------------------
def test_every_bundled_config_loads_with_its_backend(tmp_path: Path) -> None:
    assert set(available_llm_configs(tmp_path / "empty")) == set(BUNDLED)
    for name, backend in BUNDLED.items():
        config = load_llm_config(name, tmp_path / "empty")
        assert config.backend == backend and config.source == BUNDLED_FOLDER / f"{name}.yaml"
        assert config.description, name
        assert backend_class(backend).name == backend


def test_bundled_values_that_matter(tmp_path: Path) -> None:
    lmstudio = load_llm_config("lmstudio", tmp_path)
    assert lmstudio.endpoint == "http://127.0.0.1:1234" and lmstudio.context_length == 4096
    server = load_llm_config("llamacpp-server", tmp_path)
    assert server.context_length is None  # asked from /props
    # No timeout: the default limits apply, so a stalled server gives control back after 30 s of silence
    # (a config's timeout, like --timeout, would also be the first-byte limit).
    assert server.timeout is None and "timeout" not in server.settings
    assert load_llm_config("openai", tmp_path).model_id == "gpt-4o-mini"
    assert load_llm_config("ollama", tmp_path).model_id is None  # the user must name the model


# -- inheritance and lookup order ------------------------------------------------------------------
def test_defaults_inherit_and_merge_settings_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "qwen", """\
        defaults: [ollama]
        model_id: qwen2.5:7b
        context_length: 16384
        settings: {top_p: 0.9}
    """)
    config = load_llm_config("qwen", tmp_path)
    assert config.backend == "ollama" and config.endpoint == "http://127.0.0.1:11434"
    assert config.model_id == "qwen2.5:7b" and config.context_length == 16384
    assert dict(config.settings) == {"temperature": 0.3, "top_p": 0.9}
    assert config.source == tmp_path / "llm_configs" / "qwen.yaml"


def test_a_list_of_defaults_merges_in_order_and_the_file_wins(tmp_path: Path) -> None:
    write(tmp_path, "a", "backend: llamacpp\nendpoint: http://a:1\nsettings: {temperature: 0.1, top_k: 5}\n")
    write(tmp_path, "b", "backend: llamacpp\nendpoint: http://b:2\nsettings: {temperature: 0.2}\n")
    write(tmp_path, "c", "defaults: [a, b]\nsettings: {top_k: 7}\n")
    config = load_llm_config("c", tmp_path)
    assert config.endpoint == "http://b:2"
    assert dict(config.settings) == {"temperature": 0.2, "top_k": 7}


def test_a_user_config_hides_the_bundled_one_of_the_same_name(tmp_path: Path) -> None:
    write(tmp_path, "ollama", "backend: llamacpp\nendpoint: http://gpu:8080\n")
    config = load_llm_config("ollama", tmp_path)
    assert config.backend == "llamacpp" and config.endpoint == "http://gpu:8080"
    assert dict(config.settings) == {}  # nothing merged from the bundled file
    assert available_llm_configs(tmp_path)["ollama"] == tmp_path / "llm_configs" / "ollama.yaml"


def test_a_user_config_can_extend_the_bundled_one_it_hides(tmp_path: Path) -> None:
    write(tmp_path, "ollama", "defaults: [ollama]\nmodel_id: llama3.2:3b\n")
    config = load_llm_config("ollama", tmp_path)
    assert config.backend == "ollama" and config.model_id == "llama3.2:3b"
    assert config.endpoint == "http://127.0.0.1:11434"


def test_a_relative_model_path_starts_at_the_file_that_set_it(tmp_path: Path) -> None:
    write(tmp_path, "mine", "defaults: [embedded]\nmodel_id: models/tiny.gguf\n")
    write(tmp_path, "abs", "defaults: [embedded]\nmodel_id: ~/m.gguf\n")
    assert load_llm_config("mine", tmp_path).model_path() == tmp_path / "llm_configs" / "models" / "tiny.gguf"
    assert load_llm_config("abs", tmp_path).model_path() == Path("~/m.gguf").expanduser()


# -- errors: one line, the file and the key --------------------------------------------------------
def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken", "backend: llamacpp\nendpoint: http://x:1\n  bad: 1\ncontext_length: 5\n")
    message = error_of(tmp_path, "broken")
    assert str(path) in message and "invalid YAML at line 3" in message


def test_unknown_backend_names_the_file_and_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "x", "backend: gpt4all\n")
    message = error_of(tmp_path, "x")
    assert str(path) in message and "`backend` 'gpt4all'" in message
    for name in BACKENDS:
        assert name in message


def test_missing_backend_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "x", "model_id: m\ncontext_length: 2048\n")
    message = error_of(tmp_path, "x")
    assert str(path) in message and "no `backend`" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("backend: ollama\ntemperature: 0.3\n", ["unknown key `temperature`", "settings:"]),
        ("backend: ollama\ncontext_length: big\n", ["`context_length`", "'big'"]),
        ("backend: ollama\ncontext_length: -5\n", ["`context_length`", "-5"]),
        ("backend: ollama\nmodel_id: 7\n", ["`model_id` must be text"]),
        ("backend: ollama\nendpoint: localhost:11434\n", ["`endpoint`", "http://"]),
        ("backend: ollama\nsettings: [1, 2]\n", ["`settings` must be a mapping"]),
        ("backend: ollama\nsettings: {temperature: hot}\n", ["`settings.temperature` must be a number"]),
        ("backend: ollama\nsettings: {endpoint: 'http://x:1'}\n", ["`settings.endpoint` is not a setting"]),
        ("backend: ollama\nsettings: {stamp: 2024-01-01}\n", ["`settings.stamp`"]),
        ("backend: human\nmodel_id: m\n", ["`model_id` means nothing to the human backend"]),
        ("backend: human\ntimeout: 30\n", ["`timeout` means nothing to the human backend"]),
        ("backend: ollama\ntimeout: soon\n", ["`timeout` must be a positive number of seconds", "'soon'"]),
        ("backend: ollama\ntimeout: 0\n", ["`timeout` must be a positive number of seconds"]),
        ("backend: ollama\nsettings: {first_byte_timeout: x}\n", ["`settings.first_byte_timeout` must be a number"]),
        ("backend: embedded\nendpoint: http://x:1\n", ["`endpoint` means nothing to the embedded backend"]),
        ("", ["empty", "`backend:`"]),
        ("defaults: nope-nothing\n", ["`defaults` names 'nope-nothing'"]),
        ("defaults: ['../etc']\n", ["`defaults` must be a config name"]),
    ],
)
def test_each_bad_value_is_one_line_naming_the_file_and_key(tmp_path: Path, text: str, words: list[str]) -> None:
    path = write(tmp_path, "x", text)
    message = error_of(tmp_path, "x")
    assert str(path) in message
    for word in words:
        assert word in message


def test_a_setting_the_backend_lacks_names_the_file_that_set_it(tmp_path: Path) -> None:
    parent = write(tmp_path, "base", "backend: embedded\nsettings: {top_p: 0.9}\n")
    write(tmp_path, "child", "defaults: [base]\n")
    message = error_of(tmp_path, "child")
    assert str(parent) in message and "`settings.top_p`" in message
    assert "temperature" in message and "seed" in message  # what the embedded backend does take


def test_defaults_that_loop_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a", "defaults: [b]\n")
    write(tmp_path, "b", "defaults: [a]\n")
    message = error_of(tmp_path, "a")
    assert "loops" in message and "a.yaml -> b.yaml -> a.yaml" in message


@pytest.mark.parametrize("name", ["../ollama", "/etc/passwd", "a/b", ".hidden", ""])
def test_names_are_names_not_paths(tmp_path: Path, name: str) -> None:
    assert "not a path" in error_of(tmp_path, name)


def test_an_unknown_name_lists_where_it_looked_and_what_exists(tmp_path: Path) -> None:
    write(tmp_path, "mine", "backend: human\n")
    message = error_of(tmp_path, "nope")
    assert "'nope'" in message and str(tmp_path / "llm_configs") in message
    assert "mine" in message and "smollm2-embedded" in message


def test_the_timeout_is_a_top_level_key_and_the_older_settings_spelling_still_works(tmp_path: Path) -> None:
    write(tmp_path, "top", "defaults: [ollama]\nmodel_id: m\ntimeout: 90\n")
    write(tmp_path, "old", "defaults: [ollama]\nmodel_id: m\nsettings: {timeout: 45}\n")
    write(tmp_path, "both", "defaults: [old]\ntimeout: 120\n")
    assert load_llm_config("top", tmp_path).timeout == 90
    assert load_llm_config("old", tmp_path).timeout == 45
    assert load_llm_config("both", tmp_path).timeout == 120
    settings = settings_for(tmp_path, tmp_path, {"llm_config": "both"})
    assert settings.timeout == 120 and settings.backend_settings["timeout"] == 120


# -- precedence: flag > LLM config > environment > .env > default -----------------------------------
def test_config_values_become_settings(tmp_path: Path) -> None:
    write(tmp_path, "q", "defaults: [ollama]\nmodel_id: qwen2.5:7b\nwrapper: chatml\nsettings: {top_k: 20}\n")
    settings = settings_for(tmp_path, tmp_path, {"llm_config": "q"})
    assert settings.backend == "ollama" and settings.backend_model == "qwen2.5:7b" and settings.model == "chatml"
    assert settings.endpoint == "http://127.0.0.1:11434" and settings.context_length == 8192
    assert dict(settings.backend_settings) == {"temperature": 0.3, "top_k": 20}
    assert settings.llm_config == "q" and settings.model_path is None


def test_flags_override_the_config(tmp_path: Path) -> None:
    write(tmp_path, "q", "defaults: [ollama]\nmodel_id: qwen2.5:7b\nwrapper: chatml\n")
    flags = {
        "llm_config": "q",
        "endpoint": "http://gpu:11434",
        "backend_model": "llama3.2",
        "model": "llama3",
        "context_length": 4096,
    }
    settings = settings_for(tmp_path, tmp_path, flags)
    assert (settings.endpoint, settings.backend_model, settings.model, settings.context_length) == (
        "http://gpu:11434",
        "llama3.2",
        "llama3",
        4096,
    )


def test_the_config_overrides_the_environment_and_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BACKEND_TYPE=webui\nMEMAGENT_CONTEXT_LENGTH=1000\n")
    env = {"OPENAI_API_BASE": "http://elsewhere:5000", "MEMAGENT_MODEL": "zephyr"}
    write(tmp_path, "q", "defaults: [ollama]\nmodel_id: m\nwrapper: chatml\n")
    settings = settings_for(tmp_path, tmp_path, {"llm_config": "q"}, env)
    assert (settings.backend, settings.endpoint, settings.context_length, settings.model) == (
        "ollama",
        "http://127.0.0.1:11434",
        8192,
        "chatml",
    )


def test_the_environment_fills_what_the_config_leaves_out(tmp_path: Path) -> None:
    write(tmp_path, "bare", "backend: llamacpp\n")
    env = {"OPENAI_API_BASE": "http://box:9000", "MEMAGENT_CONTEXT_LENGTH": "2048", "MEMAGENT_MODEL": "zephyr"}
    settings = settings_for(tmp_path, tmp_path, {"llm_config": "bare"}, env)
    assert (settings.endpoint, settings.context_length, settings.model) == ("http://box:9000", 2048, "zephyr")


def test_the_config_can_be_chosen_in_the_environment_and_the_flag_wins(tmp_path: Path) -> None:
    env = {"MEMAGENT_LLM_CONFIG": "lmstudio"}
    assert settings_for(tmp_path, tmp_path, {}, env).backend == "lmstudio"
    assert settings_for(tmp_path, tmp_path, {"llm_config": "koboldcpp"}, env).backend == "koboldcpp"


def test_a_local_config_gives_a_model_path_and_a_flag_backend_switch_keeps_what_applies(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    write(tmp_path, "mine", f"defaults: [smollm2-embedded]\nmodel_id: {model}\n")
    settings = settings_for(tmp_path, tmp_path, {"llm_config": "mine"})
    assert settings.model_path == model and settings.backend_model is None
    switched = settings_for(tmp_path, tmp_path, {"llm_config": "mine", "backend": "huggingface"})
    assert switched.backend == "huggingface" and switched.model_path == model
    assert dict(switched.backend_settings) == {"temperature": 0.3, "seed": 42}  # both backends take these
    assert settings_for(tmp_path, tmp_path, {"llm_config": "mine", "model_path": "/x.gguf"}).model_path == Path(
        "/x.gguf"
    )


def test_a_server_needing_a_model_name_says_which_key_or_flag_gives_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_for(tmp_path, tmp_path, {"llm_config": "ollama"})
    message = str(caught.value)
    assert str(BUNDLED_FOLDER / "ollama.yaml") in message and "`model_id`" in message and "--backend-model" in message
    assert settings_for(tmp_path, tmp_path, {"llm_config": "ollama", "backend_model": "m"}).backend_model == "m"


# -- the registry and the app ----------------------------------------------------------------------
def test_importing_the_registry_loads_no_model_library() -> None:
    code = (
        "import sys; from memagent.llm.backends.registry import BACKENDS; "
        "names = list(BACKENDS); hf = BACKENDS['huggingface']; "
        "heavy = ('torch', 'transformers', 'llama_cpp', 'httpx'); "
        "print(names[:2], hf.name, sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['embedded', 'huggingface'] huggingface []"
    assert {name for name in BACKENDS if BACKENDS[name].capabilities.in_process} == {"embedded", "huggingface"}


def test_an_unknown_setting_for_an_in_process_backend_fails_before_loading_a_model() -> None:
    with pytest.raises(ConfigError, match="embedded backend has no setting 'top_p'.*temperature"):
        create_registered_backend("embedded", model_path="/no/such/model.gguf", top_p=0.9)
    with pytest.raises(ConfigError, match="huggingface backend doesn't use endpoint"):
        create_registered_backend("huggingface", endpoint="http://127.0.0.1:1")


def test_create_backend_passes_settings_and_the_key_only_where_they_belong(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        backend="llamacpp",
        endpoint="http://127.0.0.1:8081",
        context_length=2048,
        backend_settings={"temperature": 0.1, "timeout": 30},
    )
    backend = create_backend(settings)
    try:
        assert backend.name == "llamacpp" and backend.context_length == 2048
        assert backend.settings == {"temperature": 0.1} and backend.limits.overall == 30
        assert "authorization" not in backend.server.client.headers
    finally:
        backend.close()
    openai = create_backend(Settings(home=tmp_path, backend="openai", backend_model="gpt-4o-mini", api_key="sk-x1"))
    try:
        assert openai.server.client.headers["authorization"] == "Bearer sk-x1"
    finally:
        openai.close()


def test_a_model_path_for_a_server_backend_is_refused(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, tmp_path, {"backend": "llamacpp", "model_path": "/m.gguf"})
    with pytest.raises(ConfigError, match="llamacpp backend doesn't use model_path"):
        create_backend(settings)


def test_the_constraint_notice_is_given_only_when_output_cant_be_constrained(tmp_path: Path) -> None:
    backends = {name: create_registered_backend(name, context_length=4096) for name in ("lmstudio", "llamacpp")}
    human = create_registered_backend("human")
    try:
        settings = Settings(home=tmp_path)
        assert constraint_notice(settings, backends["lmstudio"]) == (
            "lmstudio can't constrain output here: malformed calls are repaired or retried instead."
        )
        assert constraint_notice(settings, backends["llamacpp"]) is None
        assert constraint_notice(Settings(home=tmp_path, constrain=False), backends["lmstudio"]) is None
        assert constraint_notice(settings, human) is None
    finally:
        for backend in backends.values():
            backend.close()
