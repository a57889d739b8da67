"""Prompt reuse: how much of each prompt llama.cpp really evaluates, memagent's layout vs MemGPT's.

A scripted conversation runs twice on the embedded model with the same backend instance (its KV cache reset
between runs), each run in its own database: once as memagent renders the system message (stable between
memory edits) and once with MemGPT's layout, where the statistics and a timestamp in the system message are
rebuilt before every step. Then the agent of the first run is resumed with a new backend: once reading the
whole prompt again, and once after restoring llama.cpp's saved state (memagent's way, and the
pickled `Llama.save_state()` it used before).

    .venv/bin/python -m bench.prompt_reuse [--turns 20] [--context-length 8192]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    CallRecord,
    RecordingBackend,
    Section,
    Target,
    Timer,
    common_prefix,
    log,
    mb,
    md_table,
    paragraphs,
    targets_table,
)
from bench.kv_state import state_methods
from memagent.agent import Agent, Emit
from memagent.agent.outcomes import StepResult
from memagent.app import open_agent
from memagent.events import Event
from memagent.llm.backends.embedded import EmbeddedBackend
from memagent.memory.store import Store
from memagent.messages import now_text
from memagent.settings import Settings

AGENT = "bench"
MESSAGES = (
    "Hi! My name is Brad.",
    "I live in Lisbon and I work as a nurse.",
    "What is my name?",
    "Please remember that my favourite colour is green.",
    "I have a dog called Rex. He is three years old.",
    "Where do I live?",
    "What do you like to do for fun?",
    "My sister Ana is visiting me next week.",
    "Can you recommend a book for the weekend?",
    "I started learning to play the guitar.",
    "What is my dog's name?",
    "I had a long shift at the hospital today.",
    "Tell me something that would cheer me up.",
    "Do you remember my favourite colour?",
    "I'm thinking about going sailing on Sunday.",
    "What should I cook for dinner tonight?",
    "Who is visiting me next week?",
    "I think I will learn Italian this year.",
    "Can you summarise what you know about me?",
    "Thanks for the chat, talk to you tomorrow!",
)
RESUME_MESSAGE = "Hello again! Do you still remember my name?"
SLACK = 1.05  # an ordinary turn may evaluate at most this many times its new tokens


class MemGPTLayoutAgent(Agent):
    """MemGPT's system message: statistics and a timestamp rebuilt before every step (reference 1.7)."""

    def step(self, emit: Emit) -> StepResult:
        self.state.memory_stats = {
            "edit_timestamp": now_text(),
            "recall_count": self.history.recall_count(),
            "archival_count": self.history.archival_count(),
        }
        self.history.system_message = self.history.render_system()
        return super().step(emit)


@dataclass
class TurnRow:
    turn: int
    steps: int
    prompt_tokens: int  # of the turn's last completion
    evaluated: int  # summed over the turn's completions
    new_tokens: int  # tokens not in the previous prompt, summed
    prompt_eval_s: float
    latency_s: float
    system_changed: bool
    events: list[str]

    @property
    def ordinary(self) -> bool:
        return self.turn > 1 and not self.system_changed and "summary" not in self.events


def open_bench_agent(home: Path, backend: Any, layout: str = "memagent") -> tuple[Agent, Store]:
    store = Store(home / "memagent.db")
    agent, _ = open_agent(Settings(home=home, agent=AGENT, no_verify=True), store, backend)
    if layout == "memgpt":
        agent.__class__ = MemGPTLayoutAgent  # same object and state, MemGPT's per-step refresh
    return agent, store


def turn_row(
    turn: int, calls: list[CallRecord], previous: list[int], tokenize: Any, latency: float, events: list[Event]
) -> tuple[TurnRow, list[int]]:
    """Sum a turn's completions; `previous` is the token list of the prompt before this turn's first one."""
    evaluated = new = 0
    changed = False
    last_system = calls[0].note.get("previous_system") if calls else None
    for call in calls:
        tokens = tokenize(call.prompt)
        new += len(tokens) - common_prefix(previous, tokens)
        evaluated += call.completion.prompt_tokens_evaluated or 0
        changed = changed or (last_system is not None and call.note["system"] != last_system)
        last_system, previous = call.note["system"], tokens
    kinds = [e.type for e in events if e.type in ("retry", "error")]
    kinds += ["summary"] if any(e.type == "system_alert" and "summary" in e.data for e in events) else []
    row = TurnRow(
        turn=turn,
        steps=len(calls),
        prompt_tokens=calls[-1].completion.prompt_tokens or 0 if calls else 0,
        evaluated=evaluated,
        new_tokens=new,
        prompt_eval_s=sum(c.prompt_eval_ms or 0.0 for c in calls) / 1000,
        latency_s=latency,
        system_changed=changed,
        events=kinds,
    )
    return row, previous


def run_conversation(recorder: RecordingBackend, home: Path, layout: str, messages: tuple[str, ...]) -> list[TurnRow]:
    agent, store = open_bench_agent(home, recorder, layout)
    system = {"last": agent.system_message}

    def note() -> dict[str, Any]:
        previous, system["last"] = system["last"], agent.system_message
        return {"system": agent.system_message, "previous_system": previous}

    recorder.note, recorder.calls = note, []
    rows: list[TurnRow] = []
    previous: list[int] = []
    try:
        for number, text in enumerate(messages, 1):
            events: list[Event] = []
            first, start = len(recorder.calls), time.perf_counter()
            agent.run_turn(text, events.append)
            latency = time.perf_counter() - start
            row, previous = turn_row(
                number, recorder.calls[first:], previous, recorder.inner._tokenize, latency, events
            )
            rows.append(row)
            log(
                f"{layout} turn {number}: {row.steps} step(s), {row.evaluated}/{row.prompt_tokens} tokens evaluated, "
                f"{latency:.1f} s"
            )
    finally:
        store.close()
    return rows


# -- resuming: re-read the prompt, or restore llama.cpp's state --------------------------------------------------


def resume_first_turn(model_path: Path, n_ctx: int, home: Path, restore: tuple[str, Path] | None) -> dict[str, Any]:
    """Open a new backend (optionally restoring a saved state), resume the agent and run one turn."""
    start = time.perf_counter()
    backend = EmbeddedBackend(model_path, context_length=n_ctx)
    load_s = time.perf_counter() - start
    restore_s = 0.0
    if restore:
        start = time.perf_counter()
        state_methods()[restore[0]][1](backend, restore[1])
        restore_s = time.perf_counter() - start
    recorder = RecordingBackend(backend)
    try:
        agent, store = open_bench_agent(home, recorder)
        try:
            start = time.perf_counter()
            agent.run_turn(RESUME_MESSAGE, lambda _event: None)
            latency = time.perf_counter() - start
        finally:
            store.close()
    finally:
        backend.close()
    first = recorder.calls[0]
    return {
        "prompt_tokens": first.completion.prompt_tokens,
        "evaluated": first.completion.prompt_tokens_evaluated,
        "llama_evaluated": first.prompt_eval_tokens,
        "prompt_eval_s": (first.prompt_eval_ms or 0) / 1000,
        "latency_s": latency,
        "model_load_s": load_s,
        "restore_s": restore_s,
    }


def save_states(backend: EmbeddedBackend, home: Path, work: Path) -> dict[str, dict[str, Any]]:
    """Save the KV state both ways right after the run, and copy its database once per resume variant."""
    saved: dict[str, dict[str, Any]] = {}
    for variant, (saver, _) in state_methods().items():
        path = work / f"state.{variant}"
        seconds = saver(backend, path)
        saved[variant] = {"path": path, "save_s": seconds, "bytes": path.stat().st_size}
    for variant in ("reread", *saved):
        shutil.copytree(home, work / f"resume-{variant}")
    return saved


def measure_resumes(model_path: Path, n_ctx: int, work: Path, saved: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for variant in ("reread", *saved):
        restore = (variant, saved[variant]["path"]) if variant in saved else None
        log(f"resume: {variant}")
        try:
            result = resume_first_turn(model_path, n_ctx, work / f"resume-{variant}", restore)
        except Exception as exc:  # a failed restore is a result to report, not a crash
            result = {"error": f"{type(exc).__name__}: {exc}"}
        results.append({"variant": variant, **saved.get(variant, {}), **result})
    return results


def run(turns: int = 20, context_length: int = 8192, model_path: Path | None = None, resume: bool = True) -> Section:
    messages = tuple(MESSAGES[i % len(MESSAGES)] for i in range(turns))
    runs: dict[str, list[TurnRow]] = {}
    resumes: list[dict[str, Any]] = []
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="memagent-bench-") as tmp:
        work = Path(tmp)
        backend = EmbeddedBackend(model_path, context_length=context_length)
        model_path = backend.model_path
        recorder = RecordingBackend(backend)
        saved: dict[str, dict[str, Any]] = {}
        try:
            for layout in ("memagent", "memgpt"):
                backend._llm.reset()  # a cold KV cache for each run
                runs[layout] = run_conversation(recorder, work / layout, layout, messages)
                if layout == "memagent" and resume:
                    saved = save_states(backend, work / layout, work)
        finally:
            backend.close()
        if resume:
            resumes = measure_resumes(model_path, context_length, work, saved)
    command = f".venv/bin/python -m bench.prompt_reuse --turns {turns} --context-length {context_length}"
    section = build_section(runs, resumes, command, model_path)
    return timer.stamp(section)


def turns_table(runs: dict[str, list[TurnRow]]) -> str:
    headers = ["turn"]
    for layout in runs:
        headers += [f"{layout}: steps", "prompt tok", "evaluated", "new tok", "p-eval s", "latency s"]
    rows = []
    for index in range(len(next(iter(runs.values())))):
        row: list[object] = [index + 1]
        for layout_rows in runs.values():
            r = layout_rows[index]
            flags = "".join(f" ({k})" for k in [*r.events, *(["memory edit"] if r.system_changed else [])])
            row += [
                f"{r.steps}{flags}" if layout_rows is runs.get("memagent") else r.steps,
                r.prompt_tokens,
                r.evaluated,
                r.new_tokens,
                f"{r.prompt_eval_s:.1f}",
                f"{r.latency_s:.1f}",
            ]
        rows.append(row)
    totals: list[object] = ["**total**"]
    for layout_rows in runs.values():
        totals += [
            sum(r.steps for r in layout_rows),
            "",
            sum(r.evaluated for r in layout_rows),
            sum(r.new_tokens for r in layout_rows),
            f"{sum(r.prompt_eval_s for r in layout_rows):.1f}",
            f"{sum(r.latency_s for r in layout_rows):.1f}",
        ]
    return md_table(headers, [*rows, totals])


def reuse_targets(runs: dict[str, list[TurnRow]]) -> tuple[list[Target], dict[str, float]]:
    ours, theirs = runs["memagent"], runs["memgpt"]
    total = {k: float(sum(r.evaluated for r in v)) for k, v in runs.items()}
    ratio = total["memgpt"] / max(total["memagent"], 1)
    time_ratio = sum(r.prompt_eval_s for r in theirs) / max(sum(r.prompt_eval_s for r in ours), 1e-9)
    latency_ratio = sum(r.latency_s for r in theirs) / max(sum(r.latency_s for r in ours), 1e-9)
    ordinary = [r for r in ours if r.ordinary]
    worst = max(ordinary, key=lambda r: r.evaluated / max(r.new_tokens, 1), default=None)
    worst_ratio = worst.evaluated / max(worst.new_tokens, 1) if worst else 0.0
    within = all(r.evaluated <= SLACK * r.new_tokens + r.steps for r in ordinary)
    targets = [
        Target(
            "prompt evaluation, MemGPT layout / memagent",
            ">= 5x over the conversation",
            f"{ratio:.1f}x",
            ratio >= 5,
            f"prompt-eval time ratio {time_ratio:.1f}x, turn latency ratio {latency_ratio:.1f}x",
        ),
        Target(
            "ordinary turns evaluate only their new tokens",
            "within 5%",
            f"worst {worst_ratio:.2f}x of new tokens (turn {worst.turn if worst else '-'}), "
            f"{len(ordinary)} ordinary turns",
            within and bool(ordinary),
            "ordinary = not the first turn, no memory edit or summary in the turn",
        ),
    ]
    return targets, {"ratio": ratio, "time_ratio": time_ratio, "latency_ratio": latency_ratio}


def resume_table(resumes: list[dict[str, Any]]) -> str:
    names = {
        "reread": "re-read the prompt (no saved state)",
        "save_cache": "memagent's save_cache / load_cache (llama_state_save_file)",
        "pickle": "Llama.save_state() pickled (memagent before)",
    }
    rows = []
    for r in resumes:
        if "error" in r:
            rows.append((names[r["variant"]], "failed: " + r["error"], "", "", "", "", ""))
            continue
        size = mb(r["bytes"]) if "bytes" in r else "-"
        save = f"{r['save_s']:.2f}" if "save_s" in r else "-"
        rows.append(
            (
                names[r["variant"]],
                r["prompt_tokens"],
                r["evaluated"],
                f"{r['prompt_eval_s']:.1f}",
                f"{r['latency_s']:.1f}",
                size,
                f"{save} / {r['restore_s']:.2f}",
            )
        )
    return md_table(
        (
            "first turn after resume",
            "prompt tok",
            "evaluated",
            "p-eval s",
            "latency s",
            "state file",
            "save s / restore s",
        ),
        rows,
    )


def resume_notes(resumes: list[dict[str, Any]]) -> list[str]:
    """What the resume measurements mean for the embedded backend, in words built from the numbers."""
    by = {r["variant"]: r for r in resumes if "error" not in r}
    reread, ours, pickled = by.get("reread"), by.get("save_cache"), by.get("pickle")
    if not reread or not ours:
        return ["A restore failed; see the table."]
    notes = [
        f"Restoring llama.cpp's state turns the resumed agent's first turn from {reread['evaluated']} evaluated prompt "
        f"tokens into {ours['evaluated']} (only the new messages), {reread['latency_s']:.1f} s -> "
        f"{ours['latency_s']:.1f} s of latency for a restore of {ours['restore_s']:.2f} s. memagent does this on its "
        "own: the embedded backend saves the state when a chat ends and restores it when the agent is opened again, "
        "if a small header beside the file names the same model file (path, size, mtime) and context length; "
        "anything else, or any error, means starting cold."
    ]
    if pickled and "bytes" in pickled and "bytes" in ours:
        notes.append(
            f"How the state is written matters: `save_cache` writes it with llama.cpp's own `llama_state_save_file`, "
            f"which streams the used KV cells and the token ids to the file from C ({ours['save_s']:.2f} s, "
            f"{mb(ours['bytes'])}). The pickled `Llama.save_state()` that memagent used before takes "
            f"{pickled['save_s']:.2f} s and {mb(pickled['bytes'])}: it builds the state in Python, a ctypes buffer, "
            "a compact copy and `bytes()` of it, plus a copy of llama-cpp-python's logits array (n_batch x n_vocab "
            "float32, 96 MB for SmolLM2), all alive at once. The start-up benchmark shows the peak RSS of a chat."
        )
    return notes


def build_section(
    runs: dict[str, list[TurnRow]], resumes: list[dict[str, Any]], command: str, model_path: Path
) -> Section:
    targets, ratios = reuse_targets(runs)
    turns = len(runs["memagent"])
    body = [
        f"Model `{model_path.name}`, {turns} fixed user messages, the agent generating for real under the grammar "
        "(chatml wrapper, `--no-verify`). *evaluated* = prompt tokens llama.cpp evaluated (not served from its KV "
        "cache); *new tok* = tokens of the prompt that were not in the previous prompt; *p-eval s* = llama.cpp's "
        "own prompt-evaluation time; *latency* = the whole turn (all its steps, generation included). "
        "Flags: (memory edit) = a memory edit changed the system message, (retry)/(error)/(summary) as emitted.",
        "",
        turns_table(runs),
        "",
        f"MemGPT layout / memagent: **{ratios['ratio']:.1f}x** the prompt tokens evaluated, "
        f"{ratios['time_ratio']:.1f}x the prompt-evaluation time, {ratios['latency_ratio']:.1f}x the total turn "
        "latency (both runs in one process, one after the other, on the same backend instance).",
    ]
    if resumes:
        body += [
            "",
            "**Resuming the agent** (new process state: a new backend instance, the same database):",
            "",
            resume_table(resumes),
            "",
            paragraphs(resume_notes(resumes)),
        ]
    section = Section("prompt_reuse", "Prompt reuse (KV cache)", command, targets=targets, body="\n".join(body))
    section.summary = [f"{ratios['ratio']:.1f}x prompt tokens evaluated (MemGPT layout / memagent)"]
    restored = [r for r in resumes if r["variant"] != "reread" and "error" not in r]
    if restored and resumes[0].get("evaluated"):
        best = min(restored, key=lambda r: r["evaluated"])
        section.summary.append(
            f"resume: {resumes[0]['evaluated']} -> {best['evaluated']} tokens evaluated with {best['variant']}"
        )
    section.targets += [
        Target(
            "resumed agent's first turn",
            "(measured)",
            f"{r.get('evaluated')} of {r.get('prompt_tokens')} tokens evaluated ({r['variant']})",
            None,
        )
        for r in resumes
        if "error" not in r
    ]
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--context-length", type=int, default=8192)
    parser.add_argument("--model-path", type=Path, default=None)
    parser.add_argument("--no-resume", action="store_true", help="skip the resume measurements")
    args = parser.parse_args()
    section = run(args.turns, args.context_length, args.model_path, resume=not args.no_resume)
    print(section.body)
    print()
    print(targets_table(section.targets))


if __name__ == "__main__":
    main()
