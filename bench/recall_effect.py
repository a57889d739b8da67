"""Recall effect: does auto recall let an agent on the embedded SmolLM2 answer from memory after a restart?

A dozen personal facts (name, city, pet, job, sister, ...) reach an agent's memory in one of two ways:
- *told*: session one tells each fact as a user turn (the model answers as it will: a reply, a memory edit),
  then the conversation moves on: the session is summarized out of the context window by the agent's own
  summarizer, as on overflow (the messages stay in recall memory; the model's summary stays in context);
- *archival*: the facts are loaded into archival memory as passages (as `/attach` or `memagent load` would).
Then, for each, the database is copied and a new backend and a new Agent open it (as a new process would):
once with the default preset as it is (auto recall off) and once with `--auto-recall` (3 hits, 200 tokens).
Session two asks about each fact in turn; a reply scores when what the agent said in that turn (send_message)
contains the expected answer word. Also counted: turns where the model searched memory itself, turns whose
retrieved memory held the answer, and the tokens retrieved memory added to the prompt.

    .venv/bin/python -m bench.recall_effect [--facts 12] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Section, Target, Timer, log, md_table, paragraphs, targets_table
from memagent.agent import Agent
from memagent.app import open_agent
from memagent.events import Event
from memagent.functions.memory import SEARCH_FUNCTIONS
from memagent.llm.backends.embedded import EmbeddedBackend
from memagent.memory.auto_recall import AutoRecall
from memagent.memory.store import Store
from memagent.messages import UserMessage
from memagent.settings import Settings

AGENT = "bench"
FACTS = (  # (told in session one, asked in session two, the answer word)
    ("Hi! My name is Brad.", "What is my name?", "Brad"),
    ("I live in Lisbon.", "Which city do I live in?", "Lisbon"),
    ("I have a dog called Rex.", "What is my dog called?", "Rex"),
    ("I work as a nurse at the hospital.", "What is my job?", "nurse"),
    ("My sister is called Ana.", "What is my sister called?", "Ana"),
    ("My favourite food is sushi.", "What is my favourite food?", "sushi"),
    ("I drive a red Volvo.", "What car do I drive?", "Volvo"),
    ("I was born in Toronto.", "Where was I born?", "Toronto"),
    ("I play the cello in an orchestra.", "Which instrument do I play?", "cello"),
    ("My favourite colour is green.", "What is my favourite colour?", "green"),
    ("I am allergic to peanuts.", "What am I allergic to?", "peanut"),
    ("My son is named Leo.", "What is my son's name?", "Leo"),
)
MOVING_ON = ("Thanks, that's all about me for now.",)
SCENARIOS = ("told", "archival")
VARIANTS = {"default preset": None, "default preset + auto recall": True}


@dataclass
class Ask:
    question: str
    answer: str
    reply: str
    correct: bool
    searched: bool  # the model called a search function in this turn
    retrieved_has_answer: bool
    retrieved_lines: int
    retrieved_tokens: int  # what retrieved memory added to the prompt


@dataclass
class Run:
    scenario: str
    variant: str
    asks: list[Ask] = field(default_factory=list)

    @property
    def correct(self) -> int:
        return sum(a.correct for a in self.asks)


def has_word(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}", text, re.IGNORECASE) is not None


@contextmanager
def session(home: Path, auto_recall: bool | None = None) -> Iterator[tuple[Agent, EmbeddedBackend]]:
    """A new backend and the agent opened on ``home``'s database, as a new process would (`memagent chat`): the
    agent's KV cache restored if it has one and saved at the end, the preset's shared prompt start from its cache."""
    backend = EmbeddedBackend(prefix_cache=home.parent.parent / "prefix")
    store = Store(home / "memagent.db")
    kv = home / "cache" / f"{AGENT}.kv"
    try:
        settings = Settings(home=home, agent=AGENT, no_verify=True, auto_recall=auto_recall)
        agent, _ = open_agent(settings, store, backend)
        if kv.is_file():
            backend.load_cache(kv)
        prompt = agent.prompt()
        backend.prepare_prefix(prompt, agent.shared_prefix(prompt))
        yield agent, backend
        kv.parent.mkdir(parents=True, exist_ok=True)
        backend.save_cache(kv)
    finally:
        backend.close()
        store.close()


def turn(agent: Agent, text: str) -> list[Event]:
    events: list[Event] = []
    agent.run_turn(text, events.append)
    return events


def session_one(home: Path, scenario: str, facts: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    """The facts into memory; what stayed in the context window about them afterwards."""
    with session(home) as (agent, _):
        if scenario == "archival":
            agent.add_passages([f"The user told me: {told}" for told, _, _ in facts])
        else:
            for number, (told, _, _) in enumerate(facts, 1):
                log(f"  told {number}/{len(facts)}")
                turn(agent, told)
            for text in MOVING_ON:
                turn(agent, text)
            summaries = 0
            while summaries < 3 and agent.summarize():
                summaries += 1
        window = " ".join(json.dumps(m, ensure_ascii=False) for _, m in agent.messages)
        return {
            "summaries": 0 if scenario == "archival" else summaries,
            "answers_in_window": sum(has_word(window, answer) for _, _, answer in facts),
            "answers_in_core_memory": sum(has_word(agent.system_message, answer) for _, _, answer in facts),
        }


def session_two(home: Path, scenario: str, variant: str, facts: tuple[tuple[str, str, str], ...]) -> Run:
    run = Run(scenario, variant)
    with session(home, VARIANTS[variant]) as (agent, backend):
        for number, (_, question, answer) in enumerate(facts, 1):
            events = turn(agent, question)
            said = " ".join(getattr(e, "text", "") for e in events if e.type == "assistant_message")
            searched = any(getattr(e, "name", "") in SEARCH_FUNCTIONS for e in events if e.type == "function_call")
            asked = next(m for _, m in reversed(agent.history.messages) if isinstance(m, UserMessage))
            plain = UserMessage(asked.text, asked.time)
            added = backend.count_tokens(asked.to_dict()["content"]) - backend.count_tokens(plain.to_dict()["content"])
            lines = asked.retrieved_memory
            run.asks.append(Ask(question, answer, said, has_word(said, answer), searched,
                                any(has_word(line, answer) for line in lines), len(lines), added))
            log(f"  {scenario} / {variant}: {number}/{len(facts)} {'ok' if run.asks[-1].correct else '--'} {said!r}")
    return run


def copy_home(source: Path, target: Path) -> Path:
    """The database and the agent's KV cache, as they were when session one ended."""
    shutil.copytree(source, target)
    return target


def measure(count: int) -> dict[str, Any]:
    facts = FACTS[:count]
    results: dict[str, Any] = {"facts": len(facts), "auto_recall": asdict(AutoRecall()), "runs": [], "session_one": {}}
    with tempfile.TemporaryDirectory(prefix="memagent-recall-") as tmp:
        work = Path(tmp)
        for scenario in SCENARIOS:
            log(f"session one: {scenario}")
            home = work / scenario / "one"
            home.mkdir(parents=True)
            results["session_one"][scenario] = session_one(home, scenario, facts)
            for index, variant in enumerate(VARIANTS):
                log(f"session two: {scenario}, {variant}")
                run = session_two(copy_home(home, work / scenario / f"two-{index}"), scenario, variant, facts)
                asks = [asdict(a) for a in run.asks]
                results["runs"].append({"scenario": scenario, "variant": variant, "asks": asks})
    return results


def summarize_run(record: dict[str, Any]) -> dict[str, Any]:
    asks = record["asks"]
    with_memory = [a for a in asks if a["retrieved_lines"]]
    return {
        "correct": sum(a["correct"] for a in asks),
        "searched": sum(a["searched"] for a in asks),
        "retrieved_has_answer": sum(a["retrieved_has_answer"] for a in asks),
        "tokens": sum(a["retrieved_tokens"] for a in with_memory) / len(with_memory) if with_memory else 0.0,
        "n": len(asks),
    }


def build_section(results: dict[str, Any], count: int) -> Section:
    n = results["facts"]
    rows, scores = [], {}
    for record in results["runs"]:
        s = summarize_run(record)
        scores[(record["scenario"], record["variant"])] = s["correct"]
        retrieved = f"{s['retrieved_has_answer']}/{n}" if VARIANTS[record["variant"]] else "-"
        tokens = f"{s['tokens']:.0f}" if VARIANTS[record["variant"]] else "-"
        rows.append([record["scenario"], record["variant"], f"**{s['correct']}/{n}**", f"{s['searched']}/{n}",
                     retrieved, tokens])
    one = results["session_one"]
    told = one.get("told", {})
    settings = results["auto_recall"]
    targets = [
        Target(f"answers after a restart, {scenario}: auto recall vs off", "measured",
               f"{scores.get((scenario, 'default preset + auto recall'), 0)}/{n} vs "
               f"{scores.get((scenario, 'default preset'), 0)}/{n}", None)
        for scenario in SCENARIOS
    ]
    headers = ("facts", "agent", "replies with the answer", "model searched", "retrieved memory held it",
               "tokens added per turn")
    body = paragraphs([
        f"Model: the default SmolLM2-135M-Instruct (Q4_1), context 8192, its wrapper under the grammar, `--no-verify`. "
        f"{n} personal facts (name, city, pet, job, sister, food, car, birthplace, instrument, colour, allergy, son), "
        "each asked about once after a restart (a new backend and Agent on the same database); a reply counts when "
        "what the agent said in that turn contains the answer word. *told*: said in session one, one user turn "
        f"each, then {len(MOVING_ON)} more turn{'s' if len(MOVING_ON) > 1 else ''} and the agent's own summarizer "
        "moved them out of the context "
        f"window ({told.get('summaries', 0)} summaries; afterwards the window still named "
        f"{told.get('answers_in_window', 0)}/{n} answers, in the model's summary or the last turns, and core memory "
        f"{told.get('answers_in_core_memory', 0)}/{n}). *archival*: loaded as passages, never said. Auto recall: "
        f"`--auto-recall` on the same copy of the database, {settings['hits']} hits, {settings['max_tokens']} "
        "tokens at most (counted by the model's tokenizer); *tokens added* is the mean over the turns that got "
        "retrieved memory, measured as the envelope with it minus without.",
        md_table(headers, rows),
        "*model searched*: turns in which the model called conversation_search or archival_memory_search itself. "
        "*retrieved memory held it*: turns whose retrieved memory contained the answer word (full-text search of "
        "the question); the gap between that and the replies is the model not using what it was given.",
    ])
    section = Section(
        "recall_effect", "Recall effect (auto recall)", f".venv/bin/python -m bench.recall_effect --facts {count}",
        summary=[f"{scenario}: {scores.get((scenario, 'default preset'), 0)}/{n} -> "
                 f"{scores.get((scenario, 'default preset + auto recall'), 0)}/{n} with auto recall"
                 for scenario in SCENARIOS],
        targets=targets, body=body,
    )
    return section


def run(count: int = len(FACTS)) -> Section:
    with Timer() as timer:
        results = measure(count)
    return timer.stamp(build_section(results, count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts", type=int, default=len(FACTS), help=f"facts told and asked (default {len(FACTS)})")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args()
    with Timer() as timer:
        results = measure(args.facts)
    section = timer.stamp(build_section(results, args.facts))
    print(section.body)
    print(targets_table(section.targets))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
