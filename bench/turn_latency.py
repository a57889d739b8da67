"""Turn latency on the embedded model: where a turn's time goes, and what the shared prompt prefix saves.

Every scenario builds a fresh backend, as a new process would, and runs in one process after the others:
- a new agent's first turn without the shared prefix cache, and with it (the prefix saved by an earlier agent);
- ordinary turns of one agent as memagent runs them (drafts looked up in the prompt, both CPUs generating), without
  the drafts, and as memagent ran them before both (one generating thread, llama-cpp-python's default on 2 CPUs);
- ordinary turns with MemGPT's layout (statistics and a timestamp rebuilt in the system message every step), for
  reference.

Before each turn the conversation so far is evaluated, as the terminal chat does while the user types, and timed
apart. A turn is split into prompt evaluation and generation (the generation loop's clocks around llama.cpp's batches),
sampling (the rest of the backend's call: token sampling with the grammar, detokenizing, Python), parsing (the
wrapper), the database (the step's transactions: the function, its rows, the commit) and everything else (the turn's
wall time minus those).
The grammar's share of sampling is measured apart: the same prompt generated with and without the grammar.

    .venv/bin/python -m bench.turn_latency [--turns 6] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Section, Target, Timer, log, md_table, paragraphs, targets_table
from memagent.agent import Agent
from memagent.app import open_agent
from memagent.events import Event
from memagent.llm.backends.embedded import EmbeddedBackend, available_cpus
from memagent.llm.types import Completion, CompletionRequest
from memagent.memory.store import Store
from memagent.settings import Settings

FIRST_MESSAGE = "Hi! My name is Brad and I live in Lisbon."
MESSAGES = (
    "I work as a nurse at the hospital.",
    "What is my name?",
    "I have a dog called Rex.",
    "What should I cook for dinner tonight?",
    "I started learning to play the guitar.",
    "Where do I live?",
    "My sister Ana is visiting next week.",
    "Thanks for the chat!",
)
FIRST_TURN_TARGET_S, ORDINARY_TURN_TARGET_S = 3.0, 1.2


@dataclass
class Split:
    """One turn's time, in seconds, by where it went."""

    wall: float = 0.0
    prompt_eval: float = 0.0
    prompt_tokens_evaluated: int = 0
    generation: float = 0.0
    generated_tokens: int = 0
    sampling: float = 0.0
    parsing: float = 0.0
    database: float = 0.0
    setup: float = 0.0  # before the turn: loading the model, the agent, the shared prefix (first turns only)
    ahead: float = 0.0  # before the turn, while the user types: the prompt so far evaluated (Agent.prefill)
    steps: int = 0
    drafted: int = 0  # draft tokens evaluated (lookup_decoding.py)
    accepted: int = 0  # of those, the ones the sampler agreed with

    @property
    def other(self) -> float:
        measured = self.prompt_eval + self.generation + self.sampling + self.parsing + self.database
        return max(self.wall - measured, 0.0)


class TimedBackend(EmbeddedBackend):
    """The embedded backend with the generation loop's own clocks read after every call."""

    def __init__(self, **kwargs: Any) -> None:
        self.split = Split()
        super().__init__(**kwargs)

    def generate(self, request: CompletionRequest) -> Completion:
        start = time.perf_counter()
        completion = super().generate(request)
        wall = time.perf_counter() - start
        generation = self.last_generation
        assert generation is not None
        split = self.split
        split.prompt_eval += generation.prompt_seconds
        split.generation += generation.decode_seconds
        split.sampling += max(wall - generation.prompt_seconds - generation.decode_seconds, 0.0)
        split.prompt_tokens_evaluated += completion.prompt_tokens_evaluated or 0
        split.generated_tokens += completion.completion_tokens or 0
        split.steps += 1
        split.drafted += generation.drafted
        split.accepted += generation.accepted
        return completion


    def prepare_prefix(self, prompt: str, shared_chars: int, on_evaluate: Callable[[int], None] | None = None) -> int:
        start = time.perf_counter()
        try:
            return super().prepare_prefix(prompt, shared_chars, on_evaluate)
        finally:
            self.split.prompt_eval += time.perf_counter() - start  # the shared prefix, loaded or evaluated


class NoDrafts(TimedBackend):
    draft_tokens = 0


class Before(NoDrafts):
    """memagent before drafts and two generating threads: one thread generates, both evaluate prompts."""

    def _use_threads(self) -> None:
        self._llm.n_threads, self._llm.n_threads_batch = 1, available_cpus()
        self._llm._ctx.set_n_threads(1, available_cpus())

    def _after_batch(self, seconds: float, tokens: int) -> None:
        pass  # one thread throughout


def timed(fn: Callable[..., Any], add: Callable[[float], None]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            add(time.perf_counter() - start)

    return wrapper


def instrument(agent: Agent, store: Store, backend: TimedBackend) -> None:
    """Parsing and the database are timed where the agent reaches them: the wrapper's parse, the store's writes."""
    wrapper = agent.wrapper

    def add_parse(seconds: float) -> None:
        backend.split.parsing += seconds

    object.__setattr__(wrapper, "parse", timed(wrapper.parse, add_parse))
    transaction = store.transaction

    @contextmanager
    def timed_transaction() -> Iterator[Any]:
        start = time.perf_counter()
        try:
            with transaction() as tx:
                yield tx
        finally:
            backend.split.database += time.perf_counter() - start

    object.__setattr__(store, "transaction", timed_transaction)


@dataclass
class Run:
    """A session: the first turn (with what it took to get there) and the ordinary turns after it."""

    name: str
    first: Split
    turns: list[Split] = field(default_factory=list)
    kv_save_s: float = 0.0
    threads_ms_per_token: dict[int, float] = field(default_factory=dict)  # ThreadChoice's averages at the end


def run_session(
    home: Path, name: str, backend_class: type[TimedBackend], *, share: bool, turns: int, layout: str = "memagent"
) -> Run:
    start = time.perf_counter()
    backend = backend_class(prefix_cache=home / "cache" / "prefix" if share else None)
    store = Store(home / "memagent.db")
    agent, _ = open_agent(Settings(home=home, agent=name, no_verify=True), store, backend)
    if layout == "memgpt":
        from bench.prompt_reuse import MemGPTLayoutAgent

        agent.__class__ = MemGPTLayoutAgent
    instrument(agent, store, backend)
    prompt = agent.prompt()
    backend.prepare_prefix(prompt, agent.shared_prefix(prompt))  # as Session.prepare_prefix
    setup = time.perf_counter() - start
    events: list[Event] = []
    run = Run(name, one_turn(agent, backend, FIRST_MESSAGE, events))
    run.first.setup = setup
    for message in MESSAGES[:turns]:
        run.turns.append(one_turn(agent, backend, message, events))
    start = time.perf_counter()
    backend.save_cache(home / "cache" / f"{name}.kv")
    run.kv_save_s = time.perf_counter() - start
    choice = getattr(backend, "_threads", None)
    run.threads_ms_per_token = {n: s * 1000 for n, s in (choice.seconds_per_token if choice else {}).items()}
    backend.close()
    store.close()
    return run


def one_turn(agent: Agent, backend: TimedBackend, message: str, events: list[Event]) -> Split:
    backend.split = Split()
    ahead = time.perf_counter()
    agent.prefill()()  # what the terminal chat does while the user types the message (repl/loop.py)
    backend.split.ahead = time.perf_counter() - ahead
    start = time.perf_counter()
    agent.run_turn(message, events.append)
    backend.split.wall = time.perf_counter() - start
    return backend.split


def grammar_overhead(home: Path) -> dict[str, float]:
    """Sampling time per generated token with the call grammar and without it, on the same ordinary-turn prompt."""
    backend = TimedBackend()
    store = Store(home / "memagent.db")
    agent, _ = open_agent(Settings(home=home, agent="grammar", no_verify=True), store, backend)
    from memagent.llm.constraint import build_constraint

    prompt = agent.prompt()
    schema = agent.wrapper.output_schema(agent.schemas)
    if schema is None:
        raise RuntimeError(f"the {agent.wrapper.name} wrapper has no output schema to constrain")
    constraint = build_constraint(schema)
    per_token: dict[str, list[float]] = {"with grammar": [], "without": []}
    for _ in range(3):
        for label, chosen in (("with grammar", constraint), ("without", None)):
            backend.split = Split()
            backend.generate(CompletionRequest(prompt, agent.wrapper.stop, 64, chosen))
            tokens = max(backend.split.generated_tokens, 1)
            per_token[label].append(backend.split.sampling / tokens * 1000)
    backend.close()
    store.close()
    return {label: statistics.median(values) for label, values in per_token.items()}


def median_split(splits: list[Split]) -> dict[str, float]:
    keys = ("wall", "prompt_eval", "prompt_tokens_evaluated", "generation", "generated_tokens", "sampling", "parsing",
            "database", "drafted", "accepted", "ahead")
    medians = {key: statistics.median(getattr(s, key) for s in splits) for key in keys}
    medians["other"] = statistics.median(s.other for s in splits)
    return medians


def first_total(split: Split | dict[str, float]) -> float:
    """A new agent's first reply if the message is sent at once: the setup, the readying behind the prompt, the turn."""
    values = asdict(split) if isinstance(split, Split) else split
    return float(values["wall"] + values["setup"] + values.get("ahead", 0.0))


def median_run(runs: list[Split]) -> Split:
    """The run whose first reply took the median time (the lower middle one of an even count)."""
    return sorted(runs, key=first_total)[(len(runs) - 1) // 2]


def measure(turns: int, repeat: int = 1) -> dict[str, Any]:
    """Every scenario once; memagent's own (a new agent from the shared prefix, ordinary turns) ``repeat`` times, for
    medians that a noisy machine moves less."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="memagent-latency-") as tmp:
        home = Path(tmp)
        log("new agent without the shared prefix cache")
        cold = run_session(home, "cold", TimedBackend, share=False, turns=turns)
        log("first agent with the cache: evaluates and saves the shared prefix")
        seeding = run_session(home, "seeding", TimedBackend, share=True, turns=0)
        log("new agent starting from the saved shared prefix")
        warm = run_session(home, "warm", TimedBackend, share=True, turns=0)
        log("ordinary turns without drafts")
        no_drafts = run_session(home, "no-drafts", NoDrafts, share=True, turns=turns)
        log("ordinary turns as before: one generating thread, no drafts")
        before = run_session(home, "before", Before, share=True, turns=turns)
        log("ordinary turns with MemGPT's layout")
        # Not sharing: MemGPT's layout rebuilds the system message every step, so each call would save a prefix
        # file of its own and push memagent's out of the home's few (MAX_PREFIX_FILES): the next new agent here
        # evaluated its prefix again (12.7 s of setup; the 16-18 s first replies of the repeats).
        memgpt = run_session(home, "memgpt", TimedBackend, share=False, turns=turns, layout="memgpt")
        log("grammar overhead")
        results["grammar_ms_per_token"] = grammar_overhead(home)
        ordinary_runs, warm_runs = [cold.turns], [warm.first]
        for again in range(1, repeat):
            log(f"again ({again + 1} of {repeat}): a new agent from the shared prefix, then ordinary turns")
            warm_runs.append(run_session(home, f"warm-{again}", TimedBackend, share=True, turns=0).first)
            ordinary_runs.append(run_session(home, f"again-{again}", TimedBackend, share=True, turns=turns).turns)
    warm_first = median_run(warm_runs)
    results["first_turn"] = {
        "without shared prefix": asdict(cold.first) | {"other": cold.first.other},
        "first agent (saves the prefix)": asdict(seeding.first) | {"other": seeding.first.other},
        "with shared prefix": asdict(warm_first) | {"other": warm_first.other},
    }
    results["runs"] = {
        "first reply with shared prefix": [first_total(split) for split in warm_runs],
        "ordinary turn (median of the run)": [median_split(run)["wall"] for run in ordinary_runs],
    }
    results["ordinary_turn"] = {
        "memagent": median_split([split for run in ordinary_runs for split in run]),
        "without drafts": median_split(no_drafts.turns),
        "before: one generating thread, no drafts": median_split(before.turns),
        "MemGPT layout": median_split(memgpt.turns),
    }
    results["kv_save_s"] = cold.kv_save_s
    results["threads_ms_per_token"] = cold.threads_ms_per_token
    return results


def row(name: str, split: dict[str, float]) -> list[str]:
    generated = split["generated_tokens"]
    rate = f"{generated / split['generation']:.0f}" if split["generation"] else "-"
    return [
        name,
        f"{split['wall'] + split.get('setup', 0.0):.2f}",
        f"{split.get('setup', 0.0):.2f}",
        f"{split['prompt_eval']:.2f} ({split['prompt_tokens_evaluated']:.0f} tok)",
        f"{split['generation']:.2f} ({generated:.0f} tok, {rate} tok/s)",
        f"{split['sampling']:.2f}",
        f"{split['parsing'] * 1000:.1f} ms",
        f"{split['database'] * 1000:.1f} ms",
        f"{split['other']:.2f}",
        f"{split.get('accepted', 0):.0f} / {split.get('drafted', 0):.0f}",
        f"{split.get('ahead', 0.0):.2f}",
    ]


HEADERS = ("", "total s", "setup s", "prompt eval s", "generation s", "sampling s", "parsing", "database", "other s",
           "drafts kept / evaluated", "while typing s")


def build_section(results: dict[str, Any], turns: int, seconds: float, load: Any, repeat: int = 1) -> Section:
    first, ordinary = results["first_turn"], results["ordinary_turn"]
    warm = first["with shared prefix"]
    cold = first["without shared prefix"]
    warm_total, cold_total = first_total(warm), first_total(cold)
    runs = results.get("runs", {})
    turn = ordinary["memagent"]["wall"]
    before = ordinary["before: one generating thread, no drafts"]["wall"]
    no_drafts = ordinary["without drafts"]["wall"]
    memgpt = ordinary["MemGPT layout"]["wall"]
    grammar = results["grammar_ms_per_token"]
    targets = [
        Target("new agent's first turn, shared prefix saved", f"<= {FIRST_TURN_TARGET_S} s", f"{warm_total:.2f} s",
               warm_total <= FIRST_TURN_TARGET_S,
               "from the start, the message sent at once: loading the model and agent, the prefix file, the agent's "
               "own prompt (readied while typing), the first turn"),
        Target("ordinary turn (median)", f"<= {ORDINARY_TURN_TARGET_S} s", f"{turn:.2f} s",
               turn <= ORDINARY_TURN_TARGET_S),
    ]
    body = paragraphs([
        f"Model: the default SmolLM2-135M-Instruct (Q4_1), context 8192, chatml wrapper under its grammar, "
        f"`--no-verify`; {turns} ordinary turns per session after the first (median shown). Times in seconds "
        "unless marked; *setup* is what came before a first turn (loading the model, opening the agent, the shared "
        "prefix: loaded from its file or evaluated).",
        targets_table(targets),
        "**A new agent's first turn:**\n\n" + md_table(HEADERS, [row(k, v) for k, v in first.items()]),
        "**An ordinary turn** (median):\n\n" + md_table(HEADERS, [row(k, v) for k, v in ordinary.items()]),
        *(
            [f"memagent's own scenarios ran {len(next(iter(runs.values())))} times; the tables show the median first "
             "reply's run and the median of every ordinary turn of all runs. Each run: "
             + "; ".join(f"{name} " + ", ".join(f"{value:.2f}" for value in values) + " s"
                         for name, values in runs.items()) + "."]
            if runs and len(next(iter(runs.values()))) > 1 else []
        ),
        f"Ratios: a new agent's first turn without / with the shared prefix cache: **{cold_total / warm_total:.1f}x**; "
        f"an ordinary turn before / now: **{before / turn:.2f}x** (without drafts / with them: "
        f"{no_drafts / turn:.2f}x); MemGPT's layout / memagent: **{memgpt / turn:.1f}x**.",
        "*while typing*: evaluated before the turn, as the terminal chat does while the user types (the conversation "
        "so far, Agent.prefill): not part of *total*, which runs from the message sent to the turn's end. "
        "*generation* is llama.cpp's time for the batches after the prompt: a sampled token with the draft after "
        "it (lookup_decoding.py), so its tok/s counts the tokens kept; *drafts kept / evaluated*: draft tokens the "
        "sampler agreed with, of those evaluated.",
        f"Sampling per generated token: {grammar['with grammar']:.1f} ms with the call grammar, "
        f"{grammar['without']:.1f} ms without (the grammar's share: "
        f"{grammar['with grammar'] - grammar['without']:.1f} ms a token). Saving the KV state at the end of a "
        f"session: {results['kv_save_s']:.2f} s. Generating threads (thread_choice.py), the moving average of "
        "generation time per token at the end of the ordinary turns: "
        + (", ".join(f"{n} thread{'s' if n > 1 else ''} {ms:.1f} ms" for n, ms in
                     sorted(results.get("threads_ms_per_token", {}).items())) or "not measured") + ".",
    ])
    section = Section(
        "turn_latency", "Turn latency", f".venv/bin/python -m bench.turn_latency --turns {turns} --repeat {repeat}",
        summary=[f"first turn {cold_total:.1f} -> {warm_total:.1f} s with the shared prefix", f"turn {turn:.2f} s"],
        targets=targets, body=body,
    )
    section.seconds, section.load = seconds, load
    return section


def run(turns: int = 6, repeat: int = 3) -> Section:
    with Timer() as timer:
        results = measure(turns, repeat)
    section = build_section(results, turns, 0.0, ((), ()), repeat)
    return timer.stamp(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=6, help="ordinary turns per session (default 6)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of memagent's own scenarios (default 3)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args()
    with Timer() as timer:
        results = measure(args.turns, args.repeat)
    section = timer.stamp(build_section(results, args.turns, 0.0, ((), ()), args.repeat))
    print(section.body)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
