"""LLM configs: named YAML files saying which backend runs which model and how (seed 003's `configs/llm/`).

    defaults: [ollama]        # inherit other configs, merged in order; this file's keys win
    backend: ollama           # required, here or inherited: a registered backend
    model_id: qwen2.5:7b      # a server's model name, or a path for embedded/huggingface (relative to this file)
    context_length: 8192      # the model's window in tokens
    wrapper: chatml           # optional: the prompt format (else picked from the model, else the default)
    endpoint: http://127.0.0.1:11434   # optional: the server's URL
    timeout: 900              # optional: the deadline of one model call in seconds, as --timeout
    settings:                 # per-backend settings: sampling, retries; merged key by key with inherited ones
      temperature: 0.3
    description: Qwen 2.5 7B on Ollama   # optional: one line for listings

A config is chosen by name (never a path). `$MEMAGENT_HOME/llm_configs/NAME.yaml` comes before the bundled
`memagent/data/llm_configs/NAME.yaml`; a user config that names itself in `defaults` extends the bundled
config it hides. Every error is one line naming the file and the key. No API key belongs in a config
(configs get shared): OPENAI_API_KEY comes from the environment only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from memagent.errors import ConfigError
from memagent.llm.backends.http import normalize_endpoint
from memagent.llm.backends.registry import BACKENDS, RESERVED_OPTIONS, setting_names, takes_option

BUNDLED_FOLDER = Path(str(resources.files("memagent") / "data" / "llm_configs"))
SUFFIX = ".yaml"
TEXT_KEYS = ("backend", "model_id", "wrapper", "endpoint", "description")
KNOWN_KEYS = frozenset({"defaults", "context_length", "timeout", "settings", *TEXT_KEYS})
# Settings that are numbers whatever the backend: a quoted "0.7" would reach a server as a string.
NUMERIC_SETTINGS = frozenset(
    {
        "temperature", "top_p", "top_k", "min_p", "typical_p", "repetition_penalty", "repeat_penalty",
        "presence_penalty", "frequency_penalty", "seed", "threads", "timeout", "first_byte_timeout", "connect_timeout",
        "retries",
    }
)  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class LLMConfig:
    """One resolved config: its own keys over everything it inherits."""

    name: str
    source: Path
    backend: str
    model_id: str | None = None
    context_length: int | None = None
    timeout: float | None = None  # the top-level `timeout`, else `settings.timeout` (the older spelling)
    wrapper: str | None = None
    endpoint: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    model_folder: Path | None = None  # the folder of the file that set model_id: relative paths start there

    @property
    def label(self) -> str:
        return f"LLM config {self.name!r} ({self.source})"

    def model_path(self) -> Path | None:
        """model_id read as a file or directory path, as the in-process backends need it."""
        if self.model_id is None:
            return None
        path = Path(self.model_id).expanduser()
        return path if path.is_absolute() or self.model_folder is None else self.model_folder / path


@dataclass
class _Merged:
    """Keys seen so far while resolving `defaults`, each with the file that set it (for error messages)."""

    values: dict[str, tuple[Any, Path]] = field(default_factory=dict)
    settings: dict[str, tuple[Any, Path]] = field(default_factory=dict)

    def update(self, other: _Merged) -> None:
        self.values.update(other.values)
        self.settings.update(other.settings)


def config_folders(home: Path | None) -> list[Path]:
    """Where configs are looked up, first match wins: the user's folder, then the bundled one."""
    return ([home / "llm_configs"] if home else []) + [BUNDLED_FOLDER]


def available_llm_configs(home: Path | None) -> dict[str, Path]:
    """Every config name and the file it resolves to (a user file hides a bundled one of the same name)."""
    found: dict[str, Path] = {}
    for folder in reversed(config_folders(home)):
        for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
            found[path.name.removesuffix(SUFFIX)] = path
    return dict(sorted(found.items()))


def load_llm_config(name: str, home: Path | None) -> LLMConfig:
    """Find config `name`, resolve its `defaults` and check the result; any problem is a one-line ConfigError."""
    folders = config_folders(home)
    name = _check_name(name)
    path, index = _find(name, folders, 0)
    if path is None:
        raise ConfigError(
            f"Unknown LLM config {name!r}: looked in {' and '.join(str(f) for f in folders)}. "
            f"Available: {', '.join(available_llm_configs(home)) or 'none'}."
        )
    merged = _resolve(name, path, index, folders, home, ())
    return _finish(name, path, merged)


# -- finding and merging ---------------------------------------------------------------------------
def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"Invalid LLM config name {name!r}: use letters, digits, '-', '_' or '.', not a path.")
    return name.removesuffix(SUFFIX)


def _find(name: str, folders: list[Path], start: int) -> tuple[Path | None, int]:
    for index in range(start, len(folders)):
        path = folders[index] / f"{name}{SUFFIX}"
        if path.is_file():
            return path, index
    return None, -1


def _resolve(
    name: str, path: Path, index: int, folders: list[Path], home: Path | None, chain: tuple[Path, ...]
) -> _Merged:
    """This file's keys over its parents'. A parent with the file's own name is looked up after the file's
    folder, so a user's `ollama.yaml` can say `defaults: [ollama]` to extend the bundled one."""
    if path in chain:
        loop = " -> ".join(p.name for p in (*chain, path))
        raise ConfigError(f"LLM config {chain[-1]}: `defaults` loops back ({loop}).")
    raw = _read(path)
    merged = _Merged()
    for parent in _defaults(raw, path):
        parent_path, parent_index = _find(parent, folders, index + 1 if parent == name else 0)
        if parent_path is None:
            known = ", ".join(available_llm_configs(home)) or "none"
            raise ConfigError(
                f"LLM config {path}: `defaults` names {parent!r}, which is not a config (known: {known})."
            )
        merged.update(_resolve(parent, parent_path, parent_index, folders, home, (*chain, path)))
    _check_fields(raw, path)
    merged.values.update({key: (value, path) for key, value in raw.items() if key not in ("defaults", "settings")})
    merged.settings.update({key: (value, path) for key, value in (raw.get("settings") or {}).items()})
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"LLM config {path}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"LLM config {path}: can't be read ({exc}).") from exc
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping of keys"
        raise ConfigError(f"LLM config {path}: the file is {kind}; it needs at least `backend:`.")
    return data


def _defaults(raw: dict[str, Any], path: Path) -> list[str]:
    value = raw.get("defaults") or []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in names):
        raise ConfigError(f"LLM config {path}: `defaults` must be a config name or a list of names, not {value!r}.")
    return names


# -- checking --------------------------------------------------------------------------------------
def _check_fields(raw: dict[str, Any], path: Path) -> None:
    """Each key of one file, so the error names the file that has the bad value."""
    for key in raw:
        if key not in KNOWN_KEYS:
            raise ConfigError(
                f"LLM config {path}: unknown key `{key}` (known: {', '.join(sorted(KNOWN_KEYS))}; "
                "sampling and timeouts go under `settings:`)."
            )
    for key in TEXT_KEYS:
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise ConfigError(f"LLM config {path}: `{key}` must be text, not {raw[key]!r}.")
    if "backend" in raw and raw["backend"].strip().lower() not in BACKENDS:
        raise ConfigError(
            f"LLM config {path}: `backend` {raw['backend']!r} is unknown. Known backends: {', '.join(BACKENDS)}."
        )
    length = raw.get("context_length")
    if "context_length" in raw and (not isinstance(length, int) or isinstance(length, bool) or length <= 0):
        raise ConfigError(
            f"LLM config {path}: `context_length` must be a positive whole number of tokens, not {length!r}."
        )
    timeout = raw.get("timeout")
    if "timeout" in raw and (not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0):
        raise ConfigError(f"LLM config {path}: `timeout` must be a positive number of seconds, not {timeout!r}.")
    if "endpoint" in raw:
        try:
            normalize_endpoint(raw["endpoint"], "LLM config")
        except ConfigError as exc:
            raise ConfigError(f"LLM config {path}: `endpoint`: {exc}") from exc
    _check_settings(raw.get("settings"), path)


def _check_settings(settings: Any, path: Path) -> None:
    if settings is None:
        return
    if not isinstance(settings, dict):
        raise ConfigError(f"LLM config {path}: `settings` must be a mapping (name: value), not {settings!r}.")
    for key, value in settings.items():
        where = f"LLM config {path}: `settings.{key}`"
        if not isinstance(key, str):
            raise ConfigError(f"{where}: setting names must be text.")
        if key in RESERVED_OPTIONS:
            top = "model_id" if key in ("model", "model_path") else key
            raise ConfigError(f"{where} is not a setting: use the top-level key `{top}`.")
        if key in NUMERIC_SETTINGS and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{where} must be a number, not {value!r}.")
        if not _json_like(value):
            raise ConfigError(f"{where} must be text, a number, true/false or a list/mapping of them, not {value!r}.")


def _json_like(value: Any) -> bool:
    """What can be sent to a server as JSON (YAML also yields dates, which can't)."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list):
        return all(_json_like(v) for v in value)
    return isinstance(value, dict) and all(isinstance(k, str) and _json_like(v) for k, v in value.items())


def _finish(name: str, path: Path, merged: _Merged) -> LLMConfig:
    """The merged keys as an LLMConfig, checked against its backend."""
    values = {key: value for key, (value, _) in merged.values.items()}
    if "backend" not in values:
        raise ConfigError(f"LLM config {path}: no `backend` (set one, or inherit one with `defaults:`).")
    backend = values["backend"].strip().lower()
    for key, option in (("endpoint", ("endpoint",)), ("model_id", ("model", "model_path")), ("timeout", ("timeout",))):
        if key in values and not any(takes_option(backend, o) for o in option):
            raise ConfigError(f"LLM config {merged.values[key][1]}: `{key}` means nothing to the {backend} backend.")
    accepted = setting_names(backend)
    for key, (_, origin) in merged.settings.items():
        if accepted is not None and key not in accepted:
            takes = ", ".join(sorted(accepted)) or "none"
            raise ConfigError(
                f"LLM config {origin}: `settings.{key}` is not a setting of the {backend} backend (it takes: {takes})."
            )
    model_origin = merged.values.get("model_id", (None, None))[1]
    return LLMConfig(
        name=name,
        source=path,
        backend=backend,
        model_id=values.get("model_id"),
        context_length=values.get("context_length"),
        timeout=values.get("timeout", merged.settings.get("timeout", (None, None))[0]),
        wrapper=values.get("wrapper"),
        endpoint=values.get("endpoint"),
        settings={key: value for key, (value, _) in merged.settings.items()},
        description=values.get("description"),
        model_folder=model_origin.parent if model_origin else None,
    )
