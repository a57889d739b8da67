"""Backend names -> classes, their default endpoints, and the one factory every backend is built by.

Importing this is cheap: the server backends import httpx only when one is created, and the in-process
backends ("embedded", "huggingface") are registered as "module:Class" strings, imported on first use, so
listing backends never loads llama.cpp, torch or transformers.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memagent.errors import ConfigError
from memagent.llm.backends.base import Backend
from memagent.llm.backends.http import HTTPBackend
from memagent.llm.backends.human import HumanBackend
from memagent.llm.backends.koboldcpp import KoboldCppBackend
from memagent.llm.backends.llamacpp import LlamaCppBackend
from memagent.llm.backends.lmstudio import LMStudioBackend
from memagent.llm.backends.ollama import OllamaBackend
from memagent.llm.backends.openai import OpenAIBackend
from memagent.llm.backends.openai_completions import OpenAICompletionsBackend
from memagent.llm.backends.vllm import VLLMBackend
from memagent.llm.backends.webui import WebUIBackend

if TYPE_CHECKING:
    import httpx

# Constructor arguments that are options of their own (flags, top-level config keys, injected test
# doubles), never "settings": a config's `settings:` may not set them.
RESERVED_OPTIONS = frozenset(
    {
        "endpoint", "model", "model_path", "context_length", "api_key", "transport", "sleep", "clock", "input_fn",
        "output_fn", "prefix_cache",
    }
)


class BackendTable(Mapping[str, type[Backend]]):
    """Names -> backend classes. An entry may be a "module:Class" string, imported when first looked up,
    so a backend whose module is costly (or whose extra isn't installed) costs nothing until it is used."""

    def __init__(self) -> None:
        self._entries: dict[str, type[Backend] | str] = {}

    def register(self, name: str, target: type[Backend] | str) -> None:
        self._entries[name] = target

    def __getitem__(self, name: str) -> type[Backend]:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


_SERVERS: dict[str, type[HTTPBackend]] = {
    "llamacpp": LlamaCppBackend,
    "openai-completions": OpenAICompletionsBackend,
    "ollama": OllamaBackend,
    "webui": WebUIBackend,
    "lmstudio": LMStudioBackend,
    "koboldcpp": KoboldCppBackend,
    "vllm": VLLMBackend,
    "openai": OpenAIBackend,
}

BACKENDS = BackendTable()
# In process: a model loaded into this Python process.
BACKENDS.register("embedded", "memagent.llm.backends.embedded:EmbeddedBackend")
BACKENDS.register("huggingface", "memagent.llm.backends.huggingface:HuggingFaceBackend")
# Servers reached over HTTP.
for _name, _cls in _SERVERS.items():
    BACKENDS.register(_name, _cls)
# No model at all: you type the output.
BACKENDS.register("human", HumanBackend)

DEFAULT_ENDPOINTS: dict[str, str] = {name: cls.default_endpoint for name, cls in _SERVERS.items()}


def backend_class(name: str) -> type[Backend]:
    """The class registered as `name`; an unknown name is a ConfigError listing the known ones."""
    key = name.strip().lower()
    if key not in BACKENDS:
        raise ConfigError(f"Unknown backend {name!r}. Known backends: {', '.join(BACKENDS)}.")
    return BACKENDS[key]


def runs_in_process(name: str) -> bool:
    """Whether backend `name` loads a model into this process (its capabilities say so); False for an unknown
    name, which creating the backend reports."""
    try:
        return backend_class(name).capabilities.in_process
    except ConfigError:
        return False


def takes_option(name: str, option: str) -> bool:
    """Whether backend `name` takes `option` (endpoint, model, model_path, api_key...). True for an unknown
    name, so the caller keeps the value and creating the backend reports the unknown name instead."""
    try:
        cls = backend_class(name)
    except ConfigError:
        return True
    return option in inspect.signature(cls).parameters


def setting_names(name: str) -> frozenset[str] | None:
    """The settings backend `name` takes (sampling, timeouts...); None when it takes any (the server
    backends send unknown settings to the server as they are)."""
    parameters = inspect.signature(backend_class(name)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return frozenset(parameters) - RESERVED_OPTIONS


def check_settings(name: str, settings: Mapping[str, Any]) -> None:
    """A setting the backend has no use for is a ConfigError naming it and the ones it takes."""
    reserved = sorted(key for key in settings if key in RESERVED_OPTIONS)
    if reserved:
        raise ConfigError(f"`{reserved[0]}` is not a backend setting: give it as an option of its own.")
    accepted = setting_names(name)
    if accepted is None:
        return
    unknown = sorted(key for key in settings if key not in accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(f"The {name} backend has no setting {unknown[0]!r} (it takes: {takes}).")


def create_backend(
    name: str,
    *,
    endpoint: str | None = None,
    model: str | None = None,
    model_path: Path | str | None = None,
    context_length: int | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    transport: httpx.BaseTransport | None = None,
    cache_folder: Path | None = None,
    **settings: Any,
) -> Backend:
    """Build the backend called `name`. None means "the backend's default" for every option. A backend that keeps
    evaluated prompts on disk (capabilities.kv_cache) keeps the prompt start shared by all agents in `cache_folder`.

    An option the backend has no use for (an endpoint for `human`, say) is a ConfigError rather than
    silently ignored, so a typo'd flag combination doesn't run something other than what was asked."""
    cls = backend_class(name)
    options = {
        "endpoint": endpoint,
        "model": model,
        "model_path": model_path,
        "api_key": api_key,
        "timeout": timeout,
        "retries": retries,
        "transport": transport,
    }
    options = {key: value for key, value in options.items() if value is not None}
    if cache_folder is not None and cls.capabilities.kv_cache:
        options["prefix_cache"] = Path(cache_folder) / "prefix"
    accepted = inspect.signature(cls).parameters
    unused = [key for key in options if key not in accepted]
    if unused:
        raise ConfigError(f"The {cls.name} backend doesn't use {', '.join(unused)}: leave it out.")
    check_settings(cls.name, {key: value for key, value in settings.items() if key not in accepted})
    # Each backend's constructor takes its own keywords (checked against its signature above); `Backend`
    # itself declares none, so the class is called as a factory of unknown keywords.
    factory: Callable[..., Backend] = cls
    return factory(context_length=context_length, **options, **settings)
