"""LM Studio's local server, through `/v1/completions` for raw prompts.

LM Studio can't constrain raw completions: `/v1/completions` has no grammar or schema field, and its
`response_format` json_schema exists only on the chat endpoint, which would apply the model's own chat
template and defeat the wrapper. So `constraint_kinds` is empty: the wrapper describes the format in the
prompt and its parser repairs what comes back.
"""

from __future__ import annotations

from memagent.llm.backends.openai_completions import OpenAICompletionsBackend
from memagent.llm.types import Capabilities


class LMStudioBackend(OpenAICompletionsBackend):
    name = "lmstudio"
    label = "LM Studio server"
    default_endpoint = "http://127.0.0.1:1234"
    tokenize_path = None
    capabilities = Capabilities()
