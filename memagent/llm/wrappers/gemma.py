"""Gemma 2 / 3 instruction-tuned: `<start_of_turn>user` / `<start_of_turn>model` turns ending `<end_of_turn>`.

Follows Gemma's chat template: there is no system role, so the system text opens the first user turn
(separated by a blank line), and turns must alternate user/model, so consecutive user-side turns (a function
result followed by a user message) are merged into one. No `<bos>` in the prompt text: the backend adds it.
Gemma has no tool tokens; calls are MemGPT's prompted JSON with inner thoughts in params, and function results
go back inside a user turn as `FUNCTION RETURN: ...` (Google's guide returns tool output in a user turn).
"""

from __future__ import annotations

from memagent.llm.wrappers.base import JSONCallWrapper, Turn


class GemmaWrapper(JSONCallWrapper):
    name = "gemma"
    description = "Gemma <start_of_turn>user/model turns, system folded into the first user turn; MemGPT's JSON call"
    stop = ("<end_of_turn>", "<start_of_turn>")
    user_template = "<start_of_turn>user\n{text}<end_of_turn>\n"
    assistant_template = "<start_of_turn>model\n{text}<end_of_turn>\n"
    generation_prompt = "<start_of_turn>model\n"

    def arrange(self, turns: list[Turn]) -> list[Turn]:
        system = "\n\n".join(t.text for t in turns if t.role == "system")
        out: list[Turn] = []
        for turn in turns:
            if turn.role == "system":
                continue
            role, text = ("assistant", turn.text) if turn.role == "assistant" else ("user", self.user_side(turn))
            if out and out[-1].role == role:
                out[-1] = Turn(role, f"{out[-1].text}\n\n{text}")
            else:
                out.append(Turn(role, text))
        if system:
            if out and out[0].role == "user":
                out[0] = Turn("user", f"{system}\n\n{out[0].text}")
            else:
                out.insert(0, Turn("user", system))
        return out

    @staticmethod
    def user_side(turn: Turn) -> str:
        return f"FUNCTION RETURN: {turn.text}" if turn.role == "function" else turn.text
