"""Every wrapper, by name: the built-in ones, user files in $MEMAGENT_HOME/wrappers/, and installed
packages' `memagent.wrappers` entry points. All three register the same way, and every name follows the
one name rule (`memagent.text.check_name`): it is echoed and typed by users."""

from __future__ import annotations

import importlib.util
import inspect
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import cast

from memagent.errors import ConfigError
from memagent.llm.wrappers.base import LLMChatCompletionWrapper
from memagent.text import check_name, clean_text

DEFAULT_WRAPPER = "chatml"
BUILTIN_MODULES = (
    "chatml",
    "airoboros",
    "dolphin",
    "zephyr",
    "llama3",
    "hermes",
    "mistral",
    "functionary",
    "gemma",
    "smollm2",
)

# Model names users know (seed 001) that map to a wrapper. Keys are lower case: lookups ignore case, a folder
# or `org/` prefix, `.gguf` and a quantisation suffix (see `model_key`).
MODEL_ALIASES: dict[str, str] = {
    "airoboros-l2-70b-2.1": "airoboros-l2-70b-2.1",
    "dolphin-2.1-mistral-7b": "dolphin-2.1-mistral-7b",
    "openhermes-2.5-mistral-7b": "chatml",
    "zephyr-7b-alpha": "zephyr-7B",
    "zephyr-7b-beta": "zephyr-7B",
    "meta-llama-3-8b-instruct": "llama3",
    "meta-llama-3-70b-instruct": "llama3",
    "llama-3.1-8b-instruct": "llama3",
    "meta-llama-3.1-8b-instruct": "llama3",
    "llama-3.2-1b-instruct": "llama3",
    "llama-3.2-3b-instruct": "llama3",
    "qwen2.5-0.5b-instruct": "qwen2.5",
    "qwen2.5-1.5b-instruct": "qwen2.5",
    "qwen2.5-3b-instruct": "qwen2.5",
    "qwen2.5-7b-instruct": "qwen2.5",
    "qwen2.5-14b-instruct": "qwen2.5",
    "hermes-2-pro-mistral-7b": "hermes",
    "hermes-2-pro-llama-3-8b": "hermes",
    "hermes-3-llama-3.1-8b": "hermes",
    "mistral-7b-instruct-v0.3": "mistral",
    "mistral-nemo-instruct-2407": "mistral",
    "functionary-small-v2.2": "functionary",
    "functionary-small-v2.4": "functionary",
    "functionary-medium-v2.4": "functionary",
    "gemma-2-2b-it": "gemma",
    "gemma-3-270m-it": "gemma",
    "gemma-3-1b-it": "gemma",
    "gemma-3-4b-it": "gemma",
    "smollm2-135m-instruct": "smollm2",
    "smollm2-360m-instruct": "smollm2",
    "smollm2-1.7b-instruct": "smollm2",
}
_QUANT_SUFFIX = re.compile(r"[.-](?:i?q\d\w*|f16|f32|bf16)$")


@dataclass(frozen=True)
class WrapperEntry:
    name: str
    cls: type[LLMChatCompletionWrapper]
    origin: str  # "built-in", a file path, or "entry point <dist>"


def _wrappers_in_module(module: ModuleType) -> list[type[LLMChatCompletionWrapper]]:
    """Named, concrete wrapper classes defined in `module` itself: an imported base class (a user file's
    `from ...chatml import ChatMLWrapper`) must not be registered again under the importer's origin."""
    found = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ != module.__name__:
            continue
        if issubclass(obj, LLMChatCompletionWrapper) and obj.name and not inspect.isabstract(obj):
            found.append(obj)
    return found


def _one_line(exc: BaseException) -> str:
    return " ".join(clean_text(str(exc)).split())


def _entries(classes: list[type[LLMChatCompletionWrapper]], origin: str, where: str) -> list[WrapperEntry]:
    """Registry entries for the classes a file or package defines; a bad name is that file's error."""
    entries = []
    for cls in classes:
        try:
            name = check_name(cls.name, "wrapper")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc} Rename the wrapper (its class's `name`).") from None
        entries.append(WrapperEntry(name, cls, origin))
    return entries


def _builtin() -> list[WrapperEntry]:
    entries = []
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(f"memagent.llm.wrappers.{module_name}")
        entries += [WrapperEntry(cls.name, cls, "built-in") for cls in _wrappers_in_module(module)]
    return entries


def _from_files(folder: Path) -> list[WrapperEntry]:
    entries = []
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        spec = importlib.util.spec_from_file_location(f"memagent_user_wrapper_{path.stem}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a user's file: report it as theirs, don't crash
            raise ConfigError(
                f"Wrapper file {path} failed to load: {type(exc).__name__}: {_one_line(exc)}. Fix or remove the file."
            ) from exc
        entries += _entries(_wrappers_in_module(module), str(path), f"Wrapper file {path}")
    return entries


def _from_entry_points() -> list[WrapperEntry]:
    entries = []
    for ep in entry_points(group="memagent.wrappers"):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(
                f"Wrapper entry point {ep.name!r} failed to load: {type(exc).__name__}: {_one_line(exc)}. "
                "Reinstall or uninstall the package that provides it."
            ) from exc
        # A class an entry point names is taken to be a wrapper, unchecked (a module's classes are filtered).
        classes = [cast(type[LLMChatCompletionWrapper], obj)] if inspect.isclass(obj) else _wrappers_in_module(obj)
        dist = ep.dist.name if ep.dist else ep.value
        entries += _entries(classes, f"entry point {dist}", f"Wrapper entry point {ep.name!r} ({dist})")
    return entries


def available_wrappers(user_folder: Path | None = None) -> dict[str, WrapperEntry]:
    """Built-ins first; user files and entry points may add names (a same-named one overrides)."""
    entries = _builtin() + _from_entry_points()
    if user_folder is not None:
        entries += _from_files(user_folder)
    return {entry.name: entry for entry in entries}


def model_key(name: str) -> str:
    """`Org/SmolLM2-135M-Instruct.Q4_1.gguf` -> `smollm2-135m-instruct`: how users' model names are matched."""
    key = name.strip().replace("\\", "/").rsplit("/", 1)[-1].lower().removesuffix(".gguf")
    return _QUANT_SUFFIX.sub("", key)


def resolve_wrapper_name(name: str, known: dict[str, WrapperEntry]) -> str:
    if name in known:
        return name
    lowered = {k.lower(): k for k in known}
    by_key = {model_key(alias): wrapper for alias, wrapper in MODEL_ALIASES.items()}
    alias = lowered.get(name.lower()) or by_key.get(model_key(name))
    if alias and alias in known:
        return alias
    names = ", ".join(sorted(known))
    aliases = ", ".join(sorted(MODEL_ALIASES))
    extra = f"; or a model name: {aliases}" if aliases else ""
    raise ConfigError(f"Unknown --model {name!r}. Known wrappers: {names}{extra}.")


def create_wrapper(name: str | None, *, constrained: bool, user_folder: Path | None = None) -> LLMChatCompletionWrapper:
    known = available_wrappers(user_folder)
    entry = known[resolve_wrapper_name(name or DEFAULT_WRAPPER, known)]
    return entry.cls(constrained=constrained)
