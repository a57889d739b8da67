"""Dolphin 2.1 (ehartford/dolphin-2.1-mistral-7b): ChatML, simplified user text, no inner monologue.

Dolphin's model card uses plain ChatML turns; MemGPT's Dolphin wrapper sent only the user's text (not the JSON
envelope) and asked for `{"function": NAME, "params": {args}}` without inner thoughts, which this keeps.
Function results go back in an assistant turn prefixed `FUNCTION RETURN:`, as with the chatml wrapper.
"""

from __future__ import annotations

from memagent.llm.wrappers.chatml import ChatMLWrapper


class DolphinWrapper(ChatMLWrapper):
    name = "dolphin-2.1-mistral-7b"
    description = "ChatML turns with the user's text only; plain JSON call, no inner thoughts"
    thoughts = None
    simplify_user_messages = True
