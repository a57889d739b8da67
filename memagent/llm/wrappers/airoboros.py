"""Airoboros 2.1 (jondurbin/airoboros-l2-70b-2.1): `A chat.`-style `USER:` / `ASSISTANT:` turns.

The model card's format is a system line followed by `USER: ...` and `ASSISTANT: ...` turns, and its
function-calling data asks for "the most suitable function and parameters" from a YAML-like list and answers
`{"function": NAME, "params": {...}}`. That is exactly JSONCallWrapper's default format, so these wrappers
only choose the stop strings and simplify user turns to their text (MemGPT's Airoboros wrappers did the same).
Function results have no native turn; they go back as a `FUNCTION RETURN:` line, as in MemGPT.
"""

from __future__ import annotations

from memagent.llm.wrappers.base import JSONCallWrapper


class AiroborosWrapper(JSONCallWrapper):
    name = "airoboros-l2-70b-2.1"
    description = "Airoboros 2.1 USER:/ASSISTANT: turns; MemGPT's JSON call with inner thoughts in params"
    # No special tokens in this format: a new turn's header is the only sign the answer is over. A JSON call
    # can't contain these (a raw newline never appears inside a JSON string).
    stop = ("\nUSER:", "\nASSISTANT:", "\nFUNCTION RETURN:")
    simplify_user_messages = True


class AiroborosPlainWrapper(AiroborosWrapper):
    """The same turns without inner monologue: `{"function": NAME, "params": {args}}` only."""

    name = "airoboros-l2-70b-2.1-plain"
    description = "Airoboros 2.1 USER:/ASSISTANT: turns; plain JSON call, no inner thoughts"
    thoughts = None
