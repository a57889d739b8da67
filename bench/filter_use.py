"""Filter use: what the tiny default model does with the search filters and archival tags when its preset offers them.

The default preset (``memgpt_chat``) is run twice with the embedded SmolLM2-135M under the grammar (chatml wrapper):
as bundled (the plain forms of the searches and of ``archival_memory_insert``), and with those functions swapped for
their "+filters"/"+tags" forms. The user messages and agent handling are ``valid_calls``' (one step a turn, one retry,
a fresh agent every ``--per-agent`` steps, the same pinned system message). Counted per run: valid calls (as in
``valid_calls``), calls of the filtered functions, and how many of those set a filter (tags, a date, a role), how many
of the filtered searches found nothing, and the same for the unfiltered ones.

    .venv/bin/python -m bench.filter_use [--steps 50] [--per-agent 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from bench.common import log
from bench.function_prompt_tokens import SMALL_TO_WHOLE
from bench.valid_calls import PINNED_TIME, USER_MESSAGES, classify
from memagent.agent import Agent
from memagent.agent.state import AgentConfig
from memagent.app import open_agent
from memagent.events import Event
from memagent.llm.backends.embedded import EmbeddedBackend, default_model_path
from memagent.llm.wrappers.registry import create_wrapper
from memagent.memory.store import Store
from memagent.prompts.presets import BUNDLED
from memagent.settings import Settings

FILTERS = ("tags", "role", "start_date", "end_date")
FILTERED = frozenset(SMALL_TO_WHOLE)


def _write_preset(home: Path, with_filters: bool) -> None:
    data = yaml.safe_load((BUNDLED / "presets" / "memgpt_chat.yaml").read_text(encoding="utf-8"))
    if with_filters:
        data["functions"] = [SMALL_TO_WHOLE.get(name, name) for name in data["functions"]]
    (home / "presets").mkdir(parents=True, exist_ok=True)
    (home / "presets" / "probe.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def _agent(home: Path, store: Store, backend: EmbeddedBackend, name: str) -> Agent:
    settings = Settings(home=home, agent=name, preset="probe", no_verify=True)
    agent, _ = open_agent(settings, store, backend, create_wrapper("chatml", constrained=True))
    agent.config = AgentConfig(max_steps_per_turn=1, max_parse_retries=1, verify_first_message=False)
    agent.state.memory_stats["edit_timestamp"] = PINNED_TIME
    agent.history.system_message = agent.history.render_system()
    return agent


def run_one(backend: EmbeddedBackend, with_filters: bool, steps: int, per_agent: int, home: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    _write_preset(home, with_filters)
    with Store(home / "memagent.db") as store:
        agent: Agent | None = None
        for step in range(steps):
            if step % per_agent == 0:
                agent = _agent(home, store, backend, f"probe-{step}")
            assert agent is not None
            events: list[Event] = []
            agent.run_turn(USER_MESSAGES[step % len(USER_MESSAGES)], events.append)
            counts[f"outcome: {classify(events)}"] += 1
            _count_calls(events, counts)
    return counts


def _count_calls(events: list[Event], counts: Counter[str]) -> None:
    calls = [e for e in events if e.type == "function_call"]
    returns = [e for e in events if e.type == "function_return"]
    for call, result in zip(calls, returns, strict=False):
        if call.text not in FILTERED:
            continue
        arguments = call.data.get("arguments", {})
        used = sorted(name for name in FILTERS if arguments.get(name) not in (None, [], ""))
        kind = "filtered" if used else "plain"
        counts[f"{call.text} {kind}"] += 1
        for name in used:
            counts[f"filter {name}"] += 1
        message = str(result.data.get("message") or "")
        if call.text != "archival_memory_insert" and message.startswith(("No results", "Failed")):
            counts[f"search {kind} found nothing"] += 1
        if result.data.get("status") == "Failed":
            counts[f"{call.text} {kind} failed"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--per-agent", type=int, default=10)
    options = parser.parse_args()
    backend = EmbeddedBackend(default_model_path(), context_length=8192)
    try:
        with tempfile.TemporaryDirectory(prefix="memagent-filters-") as tmp:
            for with_filters in (False, True):
                start = time.perf_counter()
                counts = run_one(backend, with_filters, options.steps, options.per_agent, Path(tmp) / str(with_filters))
                log(f"with filters: {with_filters} ({time.perf_counter() - start:.0f} s)")
                for key, value in sorted(counts.items()):
                    print(f"  {key}: {value}")
    finally:
        backend.close()


if __name__ == "__main__":
    main()
