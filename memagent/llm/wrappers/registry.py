"""Every wrapper, by name: the built-in ones, user files in $MEMAGENT_HOME/wrappers/, and installed
packages' `memagent.wrappers` entry points. All three register the same way."""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from memagent.errors import ConfigError
from memagent.llm.wrappers.base import LLMChatCompletionWrapper

DEFAULT_WRAPPER = "chatml"
BUILTIN_MODULES = ("chatml",)

# Model names users know (seed 001) that map to a wrapper.
MODEL_ALIASES: dict[str, str] = {}


@dataclass(frozen=True)
class WrapperEntry:
    name: str
    cls: type[LLMChatCompletionWrapper]
    origin: str  # "built-in", a file path, or "entry point <dist>"


def _wrappers_in_module(module: object) -> list[type[LLMChatCompletionWrapper]]:
    found = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if issubclass(obj, LLMChatCompletionWrapper) and obj.name and not inspect.isabstract(obj):
            found.append(obj)
    return found


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
            raise ConfigError(f"Wrapper file {path} failed to load: {exc}. Fix or remove the file.") from exc
        entries += [WrapperEntry(cls.name, cls, str(path)) for cls in _wrappers_in_module(module)]
    return entries


def _from_entry_points() -> list[WrapperEntry]:
    entries = []
    for ep in entry_points(group="memagent.wrappers"):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"Wrapper entry point {ep.name!r} failed to load: {exc}") from exc
        classes = [obj] if inspect.isclass(obj) else _wrappers_in_module(obj)
        dist = ep.dist.name if ep.dist else ep.value
        entries += [WrapperEntry(cls.name, cls, f"entry point {dist}") for cls in classes]
    return entries


def available_wrappers(user_folder: Path | None = None) -> dict[str, WrapperEntry]:
    """Built-ins first; user files and entry points may add names (a same-named one overrides)."""
    entries = _builtin() + _from_entry_points()
    if user_folder is not None:
        entries += _from_files(user_folder)
    return {entry.name: entry for entry in entries}


def resolve_wrapper_name(name: str, known: dict[str, WrapperEntry]) -> str:
    if name in known:
        return name
    lowered = {k.lower(): k for k in known}
    alias = MODEL_ALIASES.get(name) or MODEL_ALIASES.get(name.lower()) or lowered.get(name.lower())
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
