"""CallGenerator: prompt -> completion -> parsed call.

It retries output the wrapper can't parse (with a short correction the model can act on), checks the agent's first
reply, asks again with twice the token limit when a call was cut mid-way, and sends backends with native function
calling (OpenAI's chat API) messages instead of a prompt. It depends on the ContextWindow for what to send.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

from memagent.agent.context import ContextWindow
from memagent.agent.outcomes import Emit
from memagent.agent.state import AgentConfig
from memagent.errors import GenerationTruncatedError, LLMOutputError
from memagent.events import AssistantMessageDelta, Retry, Warning
from memagent.llm.backends.base import Backend, Completion, Constraint
from memagent.llm.constraint import build_constraint
from memagent.llm.json_repair import CLOSED_BRACES
from memagent.llm.parse import ParsedCall
from memagent.llm.stream import ArgumentStreamer
from memagent.llm.wrappers.base import LLMChatCompletionWrapper
from memagent.messages import AgentMessage, SystemAlertMessage

CORRECTION = "Your last reply could not be used: {error} Reply with exactly one function call in the JSON format shown."
FIRST_REPLY_FUNCTIONS = ("send_message", "archival_memory_search")
_LEAK_CHARS = set('(){}[]"')
ERROR_CHAR_LIMIT = 300


def shorten(text: str, limit: int = ERROR_CHAR_LIMIT) -> str:
    """A parse error as the model and the user see it: errors quote the output, which can be any length."""
    return text if len(text) <= limit else f"{text[:limit]}..."


class CallGenerator:
    def __init__(self, context: ContextWindow, config: AgentConfig) -> None:
        self.context, self.config = context, config
        self.stream = False  # the REPL turns this on to show send_message text as it is generated
        self.last_completion: Completion | None = None
        self._constraint: Constraint | None = None

    @property
    def backend(self) -> Backend:
        return self.context.backend

    @property
    def wrapper(self) -> LLMChatCompletionWrapper:
        return self.context.wrapper

    def set_wrapper(self, wrapper: LLMChatCompletionWrapper) -> None:
        self.context.wrapper, self._constraint = wrapper, None

    def generate(self, emit: Emit, *, first_reply: bool = False) -> tuple[ParsedCall, Completion]:
        """The model's next call and the completion it came from; `first_reply` checks it as the agent's first
        (MemGPT's verification: a send_message with clean thoughts). Unusable output is asked for again with a
        correction (an unsaved system alert); LLMOutputError after the last try."""
        corrections: list[AgentMessage] = []
        attempts = self.config.max_parse_retries + 1
        verify = self.config.verify_first_message and first_reply
        if verify:
            attempts = max(attempts, self.config.first_message_attempts)
        last_error: LLMOutputError | None = None
        for attempt in range(attempts):
            completion, call = self._complete(corrections, emit)
            if isinstance(call, LLMOutputError):
                last_error = call
                if completion.finish_reason == "length":
                    last_error = GenerationTruncatedError(
                        f"The reply was cut at the token limit ({self.config.max_tokens_ceiling} tokens) "
                        "before the call was complete.",
                        completion.text,
                    )
                emit(Retry(shorten(str(last_error)), attempt + 1, completion.text))
                corrections = [SystemAlertMessage(CORRECTION.format(error=shorten(str(last_error))))]
                continue
            if completion.finish_reason == "length" and CLOSED_BRACES in call.repairs:
                emit(
                    Warning(
                        "The reply was cut at the token limit; its call was completed from what was generated.",
                        raw=completion.text,
                    )
                )
            problem = self._first_reply_problem(call) if verify else None
            if problem and attempt < attempts - 1:
                emit(Retry(f"First reply check: {problem}", attempt + 1, completion.text))
                continue
            return call, completion
        assert last_error is not None
        raise LLMOutputError(
            f"The model's output could not be parsed after {attempts} tries: {shorten(str(last_error))}", last_error.raw
        )

    @staticmethod
    def _first_reply_problem(call: ParsedCall) -> str | None:
        if call.name not in FIRST_REPLY_FUNCTIONS:
            return f"expected send_message, got {call.name}"
        if _LEAK_CHARS & set(call.inner_thoughts or ""):
            return "inner thoughts contain call syntax"
        return None

    def _complete(self, extra: Sequence[AgentMessage], emit: Emit) -> tuple[Completion, ParsedCall | LLMOutputError]:
        """The model's output and its call (or why it has none). Output cut at the token limit in the middle
        of its call is asked for again with twice the limit, up to the ceiling."""
        if self.backend.capabilities.native_function_calls:
            completion = self._complete_native(extra, emit)
            return completion, self._parse(completion.text)
        prompt, prompt_tokens = self.context.fit(extra, emit)
        constraint = self._output_constraint()
        max_tokens = self.config.max_tokens
        for round_number in itertools.count(1):
            streamer = ArgumentStreamer()
            shown: list[str] = []

            def on_text(piece: str, streamer: ArgumentStreamer = streamer, shown: list[str] = shown) -> None:
                delta = streamer.feed(piece)
                if delta:
                    shown.append(delta)
                    emit(AssistantMessageDelta(delta))

            completion = self.backend.complete(
                prompt,
                stop=self.wrapper.stop,
                max_tokens=max_tokens,
                constraint=constraint,
                on_text=on_text if self.stream else None,
                shared_prefix=self.context.shared_prefix(prompt),
            )
            if completion.prompt_tokens is None:  # servers that stream without usage (llama-cpp-python)
                completion.prompt_tokens = prompt_tokens
            self.last_completion = completion
            call = self._parse(completion.text)
            # a call that closed by itself is whole: the text the model ran on with after it is dropped
            cut_mid_call = isinstance(call, LLMOutputError) or CLOSED_BRACES in call.repairs
            if completion.finish_reason != "length" or not cut_mid_call or max_tokens >= self.config.max_tokens_ceiling:
                return completion, call
            previous, max_tokens = max_tokens, min(max_tokens * 2, self.config.max_tokens_ceiling)
            if shown:  # the text streamed so far is abandoned: say so, so it isn't joined to the next
                text = f"The reply was cut at {previous} tokens mid-call; asking again with room for {max_tokens}."
                emit(Retry(text, round_number, completion.text))
        raise AssertionError("unreachable")

    def _parse(self, text: str) -> ParsedCall | LLMOutputError:
        """The call in the model's output, or the error that says why there is none."""
        try:
            return self.wrapper.parse(text, self.context.schemas)
        except LLMOutputError as exc:
            return exc

    def _output_constraint(self) -> Constraint | None:
        if not self.backend.can_constrain or not self.wrapper.constrained:
            return None
        if self._constraint is None:
            schema = self.wrapper.output_schema(self.context.schemas)
            self._constraint = build_constraint(schema) if schema else None
        return self._constraint

    def _complete_native(self, extra: Sequence[AgentMessage], emit: Emit) -> Completion:
        """Backends with native function calling (OpenAI's chat API) take messages, not a prompt. Their
        call is written as JSON text so it goes through the same parser and validation as any other."""
        self.context.fit(extra, emit)  # summarizes if the conversation no longer fits
        reply, completion = self.backend.chat_completion(self.context.messages(extra), self.context.schemas)
        call = reply.get("function_call")
        if call:
            completion.text = json.dumps(
                {
                    "inner_thoughts": reply.get("content") or "",
                    "name": call.get("name"),
                    "arguments": call.get("arguments"),
                },
                ensure_ascii=False,
            )
        self.last_completion = completion
        return completion
