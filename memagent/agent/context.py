"""The context window: what fits, when to warn, and how to summarize the oldest messages on overflow.

MemGPT's thresholds: warn once at 75% of the window; on overflow summarize the oldest ~75% of the
message tokens and always keep the last 3 messages. Unlike MemGPT, the summarizer's own request is cut to
fit before it is sent (MemGPT could loop here), and evicted messages stay in recall memory. The summary is
asked for as a raw prompt where the backend runs one, else through its chat API (the openai backend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from memagent.errors import BackendError
from memagent.llm.backends.base import Backend
from memagent.llm.wrappers.base import LLMChatCompletionWrapper
from memagent.messages import HIDDEN_PREFIX, AgentMessage

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
