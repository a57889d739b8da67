"""Backend names -> classes, their default endpoints, and the one factory the CLI calls.

Importing this is cheap: the backend modules import httpx only when a backend is created.
"""

from __future__ import annotations

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

BACKENDS: dict[str, type[Backend]] = {
    # Servers reached over HTTP.
    "llamacpp": LlamaCppBackend,
    "openai-completions": OpenAICompletionsBackend,
    "ollama": OllamaBackend,
    "webui": WebUIBackend,
    "lmstudio": LMStudioBackend,
    "koboldcpp": KoboldCppBackend,
    "vllm": VLLMBackend,
    "openai": OpenAIBackend,
    # No model at all: you type the output.
    "human": HumanBackend,
    # In-process models ("embedded", "huggingface") are registered here by their own modules' owner.
}

DEFAULT_ENDPOINTS: dict[str, str] = {
    name: cls.default_endpoint for name, cls in BACKENDS.items() if issubclass(cls, HTTPBackend)
}


def create_backend(
    name: str,
    *,
    endpoint: str | None = None,
    model: str | None = None,
    context_length: int | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    transport: httpx.BaseTransport | None = None,
    **settings: Any,
) -> Backend:
    """Build the backend called `name`. None means "the backend's default" for every option.

    An option the backend has no use for (an endpoint for `human`, say) is a ConfigError rather than
    silently ignored, so a typo'd flag combination doesn't run something other than what was asked."""
    import inspect

    cls = BACKENDS.get(name.strip().lower())
    if cls is None:
        raise ConfigError(f"Unknown backend {name!r}. Known backends: {', '.join(BACKENDS)}.")
    options = {
        "endpoint": endpoint,
        "model": model,
        "api_key": api_key,
        "timeout": timeout,
        "retries": retries,
        "transport": transport,
    }
    options = {key: value for key, value in options.items() if value is not None}
    accepted = inspect.signature(cls).parameters
    unused = [key for key in options if key not in accepted]
    if unused:
        raise ConfigError(f"The {cls.name} backend doesn't use {', '.join(unused)}: leave it out.")
    return cls(context_length=context_length, **options, **settings)
