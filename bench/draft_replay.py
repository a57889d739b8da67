"""How long a draft, after how many matching tokens: replaying recorded turns against draft policies.

Whether a draft token is kept depends only on the token sampled at its position, which drafting does not change. So
one chat with the real model (the default SmolLM2, its grammar, memagent's own turns) records each call's prompt
and generated tokens, and every policy is replayed on those tokens: how many batches it would evaluate and how many
draft tokens they would hold. The time of a batch is measured on this machine (evaluating 1 to 9 tokens after a
2,500-token prompt), so the replay gives each policy's generation time per turn without generating again.

    .venv/bin/python -m bench.draft_replay [--turns 11]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.turn_latency import FIRST_MESSAGE, MESSAGES
from memagent.app import open_agent
from memagent.llm.backends import lookup_decoding
from memagent.llm.backends.embedded import EmbeddedBackend
from memagent.memory.store import Store
from memagent.settings import Settings

POLICIES = [(n, limit) for n in (2, 3, 4) for limit in (4, 8, 12, 16)]


def record(turns: int) -> tuple[list[tuple[list[int], list[int]]], dict[int, float]]:
    """The (prompt, generated tokens) of every call in a chat of ``turns`` turns, and batch costs in seconds."""
    calls: list[tuple[list[int], list[int]]] = []
    original = lookup_decoding.generate

    def recording(llm: Any, prompt: list[int], sampler: Any, **options: Any) -> lookup_decoding.Generation:
        result = original(llm, prompt, sampler, **options)
        calls.append((list(prompt), list(result.tokens)))
        return result

    lookup_decoding.generate = recording  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="memagent-drafts-") as tmp:
            backend = EmbeddedBackend()
            store = Store(Path(tmp) / "memagent.db")
            agent, _ = open_agent(Settings(home=Path(tmp), agent="drafts", no_verify=True), store, backend)
            for message in (FIRST_MESSAGE, *MESSAGES)[:turns]:
                agent.run_turn(message, lambda _event: None)
            costs = batch_costs(backend, calls[-1][0])
            backend.close()
            store.close()
    finally:
        lookup_decoding.generate = original  # type: ignore[assignment]
    return calls, costs


def batch_costs(backend: EmbeddedBackend, prompt: list[int]) -> dict[int, float]:
    """Seconds to evaluate a batch of 1..17 tokens after ``prompt`` (median of 5)."""
    llm = backend._llm
    llm.reset()
    llm.eval(prompt)
    costs = {}
    for size in range(1, 18):
        times = []
        for _ in range(5):
            llm.keep_prefix(len(prompt))
            start = time.perf_counter()
            llm.eval_all(prompt[100 : 100 + size])
            times.append(time.perf_counter() - start)
        costs[size] = statistics.median(times)
    llm.keep_prefix(len(prompt))
    return costs


def replay(calls: list[tuple[list[int], list[int]]], costs: dict[int, float], n: int, limit: int) -> dict[str, float]:
    """Generation seconds per call, draft tokens kept and evaluated, if drafts followed ``n`` tokens, ``limit`` long."""
    seconds = kept = drafted = 0.0
    for prompt, generated in calls:
        if not generated:
            continue
        index = lookup_decoding.DraftIndex(prompt, n)
        index.append(generated[0])  # sampled from the prompt's own logits
        i = 1
        while i < len(generated):
            draft = index.draft(limit)
            agreed = 0
            while agreed < len(draft) and i + agreed < len(generated) and draft[agreed] == generated[i + agreed]:
                agreed += 1
            seconds += costs[1 + len(draft)]
            drafted += len(draft)
            kept += agreed
            for token in generated[i : i + agreed + 1]:
                index.append(token)
            i += agreed + 1
    return {"seconds": seconds / len(calls), "kept": kept, "drafted": drafted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=len(MESSAGES) + 1)
    args = parser.parse_args()
    calls, costs = record(args.turns)
    generated = statistics.mean(len(g) for _, g in calls)
    print(f"{len(calls)} calls, {generated:.0f} generated tokens each on average")
    print("batch ms: " + ", ".join(f"{size}: {costs[size] * 1000:.1f}" for size in (1, 2, 5, 9, 13, 17)))
    print(f"no drafts: {replay(calls, costs, 3, 0)['seconds'] * 1000:.0f} ms of generation a call")
    for n, limit in POLICIES:
        result = replay(calls, costs, n, limit)
        print(f"after {n} tokens, at most {limit}: {result['seconds'] * 1000:.0f} ms a call, "
              f"{result['kept']:.0f} of {result['drafted']:.0f} draft tokens kept")


if __name__ == "__main__":
    main()
