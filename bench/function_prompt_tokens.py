"""Function-set prompt cost: the tokens of an agent's first prompt for a preset's functions, with the search filters and
archival tags (the "+filters"/"+tags" forms) and without them.

Each row opens a new agent in a temporary home with a preset written there (the bundled one, or the bundled one with
its functions swapped for the other forms), records the first prompt the model would be sent (a backend that only
records, the default wrapper) and counts its tokens with the default model's own tokenizer (the bundled SmolLM2 GGUF,
read vocabulary only; without llama-cpp-python, the 4-characters-a-token estimate). No model runs.

    .venv/bin/python -m bench.function_prompt_tokens
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from memagent.app import open_agent
from memagent.functions.memory import WITH_FILTERS
from memagent.llm.backends.base import Backend, Completion, CompletionRequest
from memagent.memory.store import Store
from memagent.prompts.presets import BUNDLED
from memagent.settings import Settings

SMALL_TO_WHOLE = {fn.__name__: key for fn, _, key in WITH_FILTERS}
WHOLE_TO_SMALL = {key: name for name, key in SMALL_TO_WHOLE.items()}


class _FirstPrompt(Backend):
    """Records the prompts it is sent and answers each with a send_message call."""

    name = "first-prompt"

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.constraint_kinds = frozenset({"gbnf"})

    @property
    def context_length(self) -> int:
        return 8192

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def generate(self, request: CompletionRequest) -> Completion:
        self.prompts.append(request.prompt)
        params = {"inner_thoughts": "Answer.", "message": "Hello."}
        return Completion(text=json.dumps({"function": "send_message", "params": params}), prompt_tokens=1)


def _tokenizer() -> tuple[str, Callable[[str], int]]:
    try:
        from llama_cpp import Llama

        from memagent.llm.backends.embedded import default_model_path

        llama = Llama(str(default_model_path()), vocab_only=True, verbose=False)
    except Exception as error:  # no llama-cpp-python or no model file: estimate
        return f"estimate (4 characters a token; {type(error).__name__})", lambda text: len(text) // 4 + 1
    return "SmolLM2 tokenizer", lambda text: len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def first_prompt(preset: str, functions: Sequence[str]) -> str:
    """The first prompt of a new agent of bundled ``preset`` with ``functions`` instead of its own."""
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        data = yaml.safe_load((BUNDLED / "presets" / f"{preset}.yaml").read_text(encoding="utf-8"))
        data["functions"] = list(functions)
        (home / "presets").mkdir(parents=True)
        (home / "presets" / f"{preset}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        backend = _FirstPrompt()
        with Store(home / "memagent.db") as store:
            agent, _ = open_agent(Settings(home=home, agent="probe", preset=preset, no_verify=True), store, backend)
            agent.run_turn("Hello!", lambda _event: None)
        return backend.prompts[0]


def main() -> None:
    how, count = _tokenizer()
    print(f"tokens of the first prompt ({how})")
    for preset in ("memgpt_chat", "memgpt_blocks"):
        listed = yaml.safe_load((BUNDLED / "presets" / f"{preset}.yaml").read_text(encoding="utf-8"))["functions"]
        small = [WHOLE_TO_SMALL.get(name, name) for name in listed]
        whole = [SMALL_TO_WHOLE.get(name, name) for name in small]
        without, with_filters = count(first_prompt(preset, small)), count(first_prompt(preset, whole))
        print(f"{preset}: without filters {without}, with filters {with_filters} (+{with_filters - without})")


if __name__ == "__main__":
    main()
