"""The only reader of the environment, `.env` files, LLM configs and flags: everything becomes one frozen Settings.

Precedence, highest first:

1. a command-line flag (--backend, --endpoint, --model, --model-path, --backend-model, --context-length,
   --timeout, --db);
2. the LLM config chosen with --llm-config NAME (or MEMAGENT_LLM_CONFIG): its backend, model_id, endpoint,
   wrapper, context_length, timeout and settings;
3. an environment variable (BACKEND_TYPE, OPENAI_API_BASE, MEMAGENT_MODEL, MEMAGENT_MODEL_PATH,
   MEMAGENT_CONTEXT_LENGTH, MEMAGENT_TIMEOUT, MEMAGENT_DB...);
4. a `.env` file (the current directory's over $MEMAGENT_HOME/.env);
5. the default (the embedded backend on SmolLM2).

Why the config sits above the environment: it is chosen on the command line for this run, while the
environment is standing state, often exported long ago. With the environment on top, a forgotten
`export BACKEND_TYPE=webui` would run `--llm-config ollama` as webui with Ollama's model and port; this
way the config runs as written and only what is typed on the same command line changes it. The
environment and `.env` keep seed 001's meaning: BACKEND_TYPE picks the backend, OPENAI_API_BASE its URL.

Values that only some backends take (an endpoint, a model path) are used from the environment, `.env` or a
config only when the chosen backend takes them: OPENAI_API_BASE exported for other tools must not break
the embedded default. Typed flags always reach the backend, which refuses what it can't use in one line.
OPENAI_API_KEY is read for the openai backend only (never sent to a local server) and never printed.
The timeout (the deadline of one model call, see llm/backends/deadline.py) reaches every backend that
calls a model; `human` (a person typing) has none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from memagent.errors import ConfigError
from memagent.llm.backends.registry import backend_class, runs_in_process, setting_names, takes_option
from memagent.llm.configs import LLMConfig, load_llm_config

ENV_VARS = (
    "MEMAGENT_HOME",
    "MEMAGENT_LLM_CONFIG",
    "BACKEND_TYPE",
    "OPENAI_API_BASE",
    "OPENAI_API_KEY",
    "MEMAGENT_MODEL",
    "MEMAGENT_MODEL_PATH",
    "MEMAGENT_CONTEXT_LENGTH",
    "MEMAGENT_TIMEOUT",
    "MEMAGENT_DB",
    "NO_COLOR",
)
DEFAULT_BACKEND = "embedded"


@dataclass(frozen=True)
class Settings:
    home: Path
    agent: str | None = None
    preset: str | None = None
    model: str | None = None  # the wrapper name, or a model name mapped to one
    model_path: Path | None = None  # a model file or directory for the in-process backends
    backend: str = DEFAULT_BACKEND
    endpoint: str | None = None
    backend_model: str | None = None  # the model name a server needs (Ollama, vLLM, OpenAI)
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr, a log or an error
    context_length: int | None = None
    timeout: float | None = None  # seconds one model call may take; None: the backend's defaults
    no_verify: bool = False
    constrain: bool = True
    auto_recall: bool | None = None  # --auto-recall / --no-auto-recall; None: as the preset says
    json_output: bool = False
    color: bool = True
    debug: bool = False
    llm_config: str | None = None  # the name of the LLM config these values came from, if any
    # Per-backend settings (sampling, timeouts) from the LLM config; read-only like the rest.
    backend_settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # --db / MEMAGENT_DB: a SQLite file path or a SQLAlchemy URL; a URL may hold a password, so never in a repr.
    db: str | None = field(default=None, repr=False)

    @property
    def db_path(self) -> Path:
        """The default database: the SQLite file in the home."""
        return self.home / "memagent.db"

    @property
    def database(self) -> str:
        """What the store opens: --db / MEMAGENT_DB (a URL as given, a path with ~ expanded), else ``db_path``."""
        if not self.db:
            return str(self.db_path)
        return self.db if "://" in self.db else str(Path(self.db).expanduser())


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, optional 'export ', optional matching quotes."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def read_environment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The environment merged over .env files (the environment wins)."""
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, str] = {}
    home = Path(environ.get("MEMAGENT_HOME") or Path.home() / ".memagent").expanduser()
    for path in (home / ".env", (cwd or Path.cwd()) / ".env"):
        if path.is_file():
            try:
                merged.update(parse_dotenv(path.read_text(encoding="utf-8")))
            except OSError:
                continue
    merged.update({k: v for k, v in environ.items() if k in ENV_VARS or k.startswith("MEMAGENT_")})
    return merged


@dataclass(frozen=True)
class _Choice:
    """A value and where it came from: "flag", "config" or "env" (the environment or .env)."""

    value: Any
    source: str | None = None

    @property
    def typed(self) -> bool:
        return self.source == "flag"


def _first(flag: Any, config: Any, env: Any) -> _Choice:
    for value, source in ((flag, "flag"), (config, "config"), (env, "env")):
        if value not in (None, ""):
            return _Choice(value, source)
    return _Choice(None)


def build_settings(
    flags: Mapping[str, object], environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Settings:
    """Combine flags (None = not given), the chosen LLM config and the environment, in the order above."""
    env = read_environment(environ, cwd)
    home = Path(str(env.get("MEMAGENT_HOME") or Path.home() / ".memagent")).expanduser()
    config_name = flags.get("llm_config") or env.get("MEMAGENT_LLM_CONFIG")
    config = load_llm_config(str(config_name), home) if config_name else None
    backend = str(_first(flags.get("backend"), config and config.backend, env.get("BACKEND_TYPE")).value or "")
    backend = backend.strip().lower() or DEFAULT_BACKEND
    local = runs_in_process(backend)

    endpoint = _first(flags.get("endpoint"), config and config.endpoint, env.get("OPENAI_API_BASE"))
    model_path = _first(
        flags.get("model_path"), config.model_path() if config and local else None, env.get("MEMAGENT_MODEL_PATH")
    )
    backend_model = _first(flags.get("backend_model"), config.model_id if config and not local else None, None)
    wrapper = _first(flags.get("model"), config and config.wrapper, env.get("MEMAGENT_MODEL"))
    context = _first(flags.get("context_length"), config and config.context_length, env.get("MEMAGENT_CONTEXT_LENGTH"))
    timeout = _timeout(_first(flags.get("timeout"), config and config.timeout, env.get("MEMAGENT_TIMEOUT")), config)
    timeout = timeout if takes_option(backend, "timeout") else None
    _check_model_name(backend, backend_model.value, config)
    return Settings(
        home=home,
        # Names are passed through as given: the CLI's flags are text (or None when not given).
        agent=cast("str | None", flags.get("agent")),
        preset=cast("str | None", flags.get("preset")),
        model=wrapper.value,
        model_path=_path(_applicable(model_path, backend, "model_path")),
        backend=backend,
        endpoint=_applicable(endpoint, backend, "endpoint"),
        backend_model=backend_model.value,
        api_key=env.get("OPENAI_API_KEY") or None if backend == "openai" else None,
        context_length=_context_length(context, config),
        timeout=timeout,
        no_verify=bool(flags.get("no_verify")),
        constrain=not bool(flags.get("no_constraint")),
        auto_recall=_optional_bool(flags.get("auto_recall")),
        json_output=bool(flags.get("json_output")),
        color=not flags.get("no_color") and "NO_COLOR" not in env,
        debug=bool(flags.get("debug")),
        llm_config=config.name if config else None,
        db=str(flags.get("db") or env.get("MEMAGENT_DB") or "").strip() or None,
        backend_settings=MappingProxyType(_backend_settings(config, backend, timeout)),
    )


def _optional_bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _applicable(choice: _Choice, backend: str, option: str) -> Any:
    """A typed flag always; a value from a config or the environment only if the backend takes it."""
    return choice.value if choice.typed or takes_option(backend, option) else None


def _path(value: Any) -> Path | None:
    return Path(str(value)).expanduser() if value else None


_CONTEXT_LENGTH = ("Context length", "--context-length", "MEMAGENT_CONTEXT_LENGTH", "a positive number of tokens")
_TIMEOUT = ("Timeout", "--timeout", "MEMAGENT_TIMEOUT", "a positive number of seconds")


def _context_length(choice: _Choice, config: LLMConfig | None) -> int | None:
    value = _positive(choice, config, _CONTEXT_LENGTH, int)
    return None if value is None else int(value)


def _timeout(choice: _Choice, config: LLMConfig | None) -> float | None:
    return _positive(choice, config, _TIMEOUT, float)


def _positive(
    choice: _Choice, config: LLMConfig | None, names: tuple[str, str, str, str], kind: type[int] | type[float]
) -> float | None:
    """A flag, config or environment value that must be a positive, finite number; else one line naming where it
    came from. `names`: what it is, its flag, its environment variable, what it must be."""
    if choice.value is None:
        return None
    label, flag, env, must_be = names
    try:
        value: float | None = kind(str(choice.value).strip())
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        where = {"flag": flag, "config": config.label if config else "", "env": env}[choice.source or "flag"]
        raise ConfigError(f"{label} {choice.value!r} (from {where}) is not {must_be}.")
    return value


def _backend_settings(config: LLMConfig | None, backend: str, timeout: float | None) -> dict[str, Any]:
    """The config's settings (when a flag switched to another backend, only those that backend takes),
    with the timeout chosen by precedence in place of the config's own."""
    settings = {key: value for key, value in (config.settings if config else {}).items() if key != "timeout"}
    if timeout is not None:
        settings["timeout"] = timeout
    if config is None or backend == config.backend:
        return settings
    try:
        accepted = setting_names(backend)
    except ConfigError:  # an unknown backend: creating it reports that
        return {}
    return {key: value for key, value in settings.items() if accepted is None or key in accepted}


def _check_model_name(backend: str, model: Any, config: LLMConfig | None) -> None:
    """Servers that serve several models need a name; say which flag or config key gives it."""
    try:
        hint = backend_class(backend).capabilities.needs_model_name
    except ConfigError:
        return
    if not hint or model:
        return
    if config is not None:
        raise ConfigError(
            f"{config.label} has no `model_id`, which the {backend} backend needs ({hint}): add it to a config "
            f"of your own with `defaults: [{config.name}]`, or pass --backend-model."
        )
    raise ConfigError(f"The {backend} backend needs a model name ({hint}): pass --backend-model NAME.")
