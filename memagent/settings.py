"""The only reader of the environment, `.env` files and flags: everything becomes one frozen Settings.

Precedence: command-line flag, then environment variable, then `.env` (current directory, then
$MEMAGENT_HOME/.env), then the default. Seed 001's variables keep working: BACKEND_TYPE picks the
backend, OPENAI_API_BASE its endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from memagent.errors import ConfigError

ENV_VARS = (
    "MEMAGENT_HOME",
    "BACKEND_TYPE",
    "OPENAI_API_BASE",
    "OPENAI_API_KEY",
    "MEMAGENT_MODEL",
    "MEMAGENT_MODEL_PATH",
    "MEMAGENT_CONTEXT_LENGTH",
    "NO_COLOR",
)


@dataclass(frozen=True)
class Settings:
    home: Path
    agent: str | None = None
    preset: str | None = None
    model: str | None = None  # the wrapper name, or a model name mapped to one
    model_path: Path | None = None
    backend: str = "embedded"
    endpoint: str | None = None
    backend_model: str | None = None  # the model name a server needs (Ollama, vLLM)
    api_key: str | None = None
    context_length: int | None = None
    no_verify: bool = False
    constrain: bool = True
    json_output: bool = False
    color: bool = True
    debug: bool = False

    @property
    def db_path(self) -> Path:
        return self.home / "memagent.db"


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


def build_settings(
    flags: Mapping[str, object], environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Settings:
    """Combine flags (None = not given) with the environment."""
    env = read_environment(environ, cwd)

    def pick(flag: str, var: str | None = None) -> object:
        value = flags.get(flag)
        return value if value is not None else (env.get(var) if var else None)

    context = pick("context_length", "MEMAGENT_CONTEXT_LENGTH")
    try:
        context_length = int(context) if context not in (None, "") else None
    except ValueError as exc:
        raise ConfigError(
            f"Context length {context!r} is not a number (MEMAGENT_CONTEXT_LENGTH or --context-length)."
        ) from exc
    model_path = pick("model_path", "MEMAGENT_MODEL_PATH")
    return Settings(
        home=Path(str(env.get("MEMAGENT_HOME") or Path.home() / ".memagent")).expanduser(),
        agent=flags.get("agent"),  # type: ignore[arg-type]
        preset=flags.get("preset"),  # type: ignore[arg-type]
        model=pick("model", "MEMAGENT_MODEL"),  # type: ignore[arg-type]
        model_path=Path(str(model_path)).expanduser() if model_path else None,
        backend=str(pick("backend", "BACKEND_TYPE") or "embedded"),
        endpoint=pick("endpoint", "OPENAI_API_BASE"),  # type: ignore[arg-type]
        backend_model=flags.get("backend_model"),  # type: ignore[arg-type]
        api_key=env.get("OPENAI_API_KEY"),
        context_length=context_length,
        no_verify=bool(flags.get("no_verify")),
        constrain=not bool(flags.get("no_constraint")),
        json_output=bool(flags.get("json_output")),
        color=not flags.get("no_color") and "NO_COLOR" not in env,
        debug=bool(flags.get("debug")),
    )
