"""ContextWindow: what the model sees (the system message, the messages in context and unsaved extras, as the
wrapper renders them), what fits, when to warn, and how to summarize the oldest messages on overflow.

MemGPT's thresholds: warn once at 75% of the window; on overflow summarize the oldest ~75% of the
message tokens and always keep the last 3 messages. Unlike MemGPT, the summarizer's own request is cut to
fit before it is sent (MemGPT could loop here), and evicted messages stay in recall memory. The summary is
asked for as a raw prompt where the backend runs one, else through its chat API (the openai backend).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from memagent.agent.history import History
from memagent.agent.outcomes import Emit
from memagent.agent.state import AgentConfig
from memagent.errors import BackendError, ContextOverflowError
from memagent.events import SystemAlert, Warning
from memagent.functions.registry import AgentFunction
from memagent.llm.backends.base import Backend
from memagent.llm.wrappers.base import LLMChatCompletionWrapper
from memagent.messages import HIDDEN_PREFIX, AgentMessage, Message, SystemAlertMessage, SystemMessage

WARNING_FRACTION = 0.75
SUMMARY_FRACTION = 0.75
KEEP_LAST = 3
SUMMARY_WORD_LIMIT = 100
SUMMARY_MAX_TOKENS = 200
LINE_CHAR_LIMIT = 600

SUMMARY_PLACEHOLDER = "(The summary could not be generated; search recall memory for details.)"
SUMMARIZER_SYSTEM = (
    "Your job is to summarize a history of previous messages in a conversation between an AI persona "
    'and a human. Write the summary from the AI\'s first-person perspective ("I", not "the AI"). Keep '
    "the facts the AI should remember about the human and itself. Answer in plain English (no JSON), in "
    f"less than {SUMMARY_WORD_LIMIT} words."
)


def choose_cutoff(token_counts: Sequence[int], roles: Sequence[str]) -> int:
    """How many of the oldest messages to summarize: about SUMMARY_FRACTION of the tokens, never the
    last KEEP_LAST messages, and never leaving a function result whose call was summarized away."""
    limit = len(token_counts) - KEEP_LAST
    if limit < 1:
        return 0
    target = SUMMARY_FRACTION * sum(token_counts)
    running, cutoff = 0, 0
    while cutoff < limit and running < target:
        running += token_counts[cutoff]
        cutoff += 1
    while cutoff < len(roles) - 1 and roles[cutoff] in ("function", "tool"):
        cutoff += 1
    return min(cutoff, len(token_counts) - 1)


def transcript_line(message: AgentMessage) -> str:
    role = message.role
    text = message.searchable_text.replace(HIDDEN_PREFIX, "")
    if role == "assistant":
        call = message.to_dict().get("function_call") or {}  # the arguments as the model wrote them (JSON)
        if call.get("name") and call["name"] != "send_message":
            args = call.get("arguments") or "{}"
            text = f"{text} [called {call['name']}({args})]"
        label = "ASSISTANT"
    elif role in ("function", "tool"):
        label = "FUNCTION RETURN"
    else:
        label = "USER"
    if len(text) > LINE_CHAR_LIMIT:
        text = text[:LINE_CHAR_LIMIT] + "..."
    return f"{label}: {text.strip()}"


def fit_transcript(lines: list[str], budget: int, count_tokens: Callable[[str], int]) -> list[str]:
    """Keep the newest lines that fit the budget (the summarizer's request must itself fit)."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        cost = count_tokens(line) + 1
        if used + cost > budget:
            kept.append("(earlier messages omitted)")
            break
        kept.append(line)
        used += cost
    return list(reversed(kept))


def write_summary(old: Sequence[AgentMessage], backend: Backend, wrapper: LLMChatCompletionWrapper) -> str:
    """Ask the model for a short plain-text summary of `old`, in a request that fits the window."""
    budget = int(backend.context_length * SUMMARY_FRACTION) - SUMMARY_MAX_TOKENS
    transcript = "\n".join(fit_transcript([transcript_line(m) for m in old], budget, backend.count_tokens))
    try:
        text = _ask_for_summary(transcript, backend, wrapper)
    except BackendError:  # the model failed just now: keep going without a summary
        text = ""
    return text.strip() or SUMMARY_PLACEHOLDER


def _ask_for_summary(transcript: str, backend: Backend, wrapper: LLMChatCompletionWrapper) -> str:
    """The summary by the route the backend declares: a raw prompt in the wrapper's format, or a chat turn
    without functions (no wrapper, no stop strings: the API formats and ends the answer itself)."""
    if backend.capabilities.raw_completion:
        prompt = wrapper.plain_prompt(SUMMARIZER_SYSTEM, transcript) + "SUMMARY: "
        return backend.complete(prompt, stop=wrapper.stop, max_tokens=SUMMARY_MAX_TOKENS).text
    if backend.capabilities.native_function_calls:
        messages = [{"role": "system", "content": SUMMARIZER_SYSTEM}, {"role": "user", "content": transcript}]
        _, completion = backend.chat_completion(messages, [])
        return completion.text
    return ""


def summary_alert_text(summary: str, hidden: int, total: int) -> str:
    return (
        f"Note: prior messages ({hidden} of {total} total messages) have been hidden from view due to "
        f"conversation memory constraints.\nThe following is a summary of the previous {hidden} messages:\n"
        f"{summary.strip()}"
    )


def over_warning(prompt_tokens: int, context_length: int) -> bool:
    return prompt_tokens > WARNING_FRACTION * context_length


def describe_usage(prompt_tokens: int, context_length: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "context_length": context_length,
        "percent": round(100 * prompt_tokens / max(context_length, 1), 1),
    }


class ContextWindow:
    """The prompt side of the agent: renders the context through the wrapper and keeps it within the backend's
    window. `functions` is the agent's function table (shared: the step runs what the prompt offers)."""

    def __init__(
        self,
        history: History,
        backend: Backend,
        wrapper: LLMChatCompletionWrapper,
        functions: dict[str, AgentFunction],
        config: AgentConfig,
    ) -> None:
        self.history, self.backend, self.wrapper = history, backend, wrapper
        self.functions, self.config = functions, config

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [f.schema for f in self.functions.values()]

    @property
    def context_length(self) -> int:
        return self.backend.context_length

    def messages(self, extra: Sequence[AgentMessage] = ()) -> list[Message]:
        """The system message, the messages in context, and any not-stored extras (corrections), as the dicts
        wrappers and chat APIs take."""
        messages = [SystemMessage(self.history.system_message), *(m for _, m in self.history.messages), *extra]
        return [message.to_dict() for message in messages]

    def prompt(self, extra: Sequence[AgentMessage] = ()) -> str:
        first_message = not self.history.state.first_reply_done
        return self.wrapper.chat_completion_to_prompt(self.messages(extra), self.schemas, first_message=first_message)

    def shared_prefix(self, prompt: str) -> int:
        """How much of ``prompt`` every new agent of this preset sends too: the wrapper's shared start (instructions and
        functions), extended through core memory up to the time of the last memory edit when the layout shows that
        time after core memory (memagent's layout does; MemGPT's shows it in the heading). A backend keeps that start
        evaluated for the next new agent; for an agent whose memory changed it is simply its own."""
        start = self.wrapper.shared_prefix(prompt)
        stamp = str((self.history.state.memory_stats or {}).get("edit_timestamp") or "")
        at = prompt.find(stamp, start) if start and stamp else -1
        return at if at > start else start

    def fit(self, extra: Sequence[AgentMessage], emit: Emit) -> tuple[str, int]:
        """The prompt and its size in tokens, summarizing old messages until it fits with room for the reply."""
        while True:
            prompt = self.prompt(extra)
            prompt_tokens = self.backend.count_tokens(prompt)
            if prompt_tokens + self.config.max_tokens <= self.context_length:
                return prompt, prompt_tokens
            if not self.summarize(emit):
                raise ContextOverflowError(prompt_tokens + self.config.max_tokens, self.context_length)

    def over_warning(self, prompt_tokens: int) -> bool:
        return over_warning(prompt_tokens, self.context_length)

    def clip_user_text(self, text: str, emit: Emit) -> str:
        """A message too long for the context window is kept whole in recall memory (searchable) while the
        agent sees its start: one pasted document must not leave every later turn without room."""
        limit = max(1000, self.context_length)  # characters: about a quarter of the window
        if len(text) <= limit:
            return text
        emit(Warning(f"Your message has {len(text):,} characters; the agent sees the first {limit:,}. "
                     "All of it is saved in recall memory; /attach loads long texts into archival memory."))
        return f"{text[:limit]}... [cut: {len(text) - limit:,} more characters, kept in recall memory]"

    def summarize(self, emit: Emit | None = None) -> bool:
        """Replace the oldest in-context messages with a summary. They stay in recall memory."""
        messages = self.history.messages
        counts = [self.backend.count_tokens(json.dumps(m.to_dict(), ensure_ascii=False)) for _, m in messages]
        cutoff = choose_cutoff(counts, [m.role for _, m in messages])
        if cutoff < 2:
            return False
        summary = write_summary([m for _, m in messages[:cutoff]], self.backend, self.wrapper)
        summarized = {mid for mid, _ in messages[:cutoff]}
        with self.history.transaction() as tx:  # the messages as committed now: another process may have changed them
            current = self.history.messages
            kept = [(mid, m) for mid, m in current if mid not in summarized]
            if len(kept) == len(current):
                return True  # another process summarized these messages meanwhile
            count = len(current) - len(kept)
            alert = SystemAlertMessage(summary_alert_text(summary, count, self.history.recall_count()))
            self.history.messages = []
            self.history.add(tx, alert)
            self.history.messages += kept
            self.history.state.memory_pressure_alerted = False
            self.history.save(tx)
        if emit:
            text = f"Summarized {count} older messages to fit the context window; they stay searchable."
            emit(SystemAlert(text, summary))
        return True
