"""Reliability: nothing lost, whatever happens (issue 16): kill -9, processes side by side, a faulty server.

Every run is real processes on 127.0.0.1: `memagent chat --backend llamacpp --json` against the fake
llama.cpp server (bench/fake_server.py), which scripts the model's replies (`say:X` -> send_message, `append:X`
-> core_memory_append) and the server's faults. Three parts:

* soak: `--kills` SIGKILLs at random points (right after a printed reply, right after an edit returned OK,
  during summarization, at a random time, and the parent process instead of the chat's child). After each:
  every printed reply is in the database, every OK'd edit is in core memory, no call is stored without its
  result, `PRAGMA integrity_check` is ok, and a resumed chat answers.
* concurrent: 2 and 4 `memagent chat --agent same` at once, each appending unique markers; then edits that
  returned OK but are missing, and messages not stored exactly once or out of order; and two agents in one
  database side by side.
* faults: one scripted turn per server fault (down, crash, 500, 404, garbage, empty, stall, drip, reset, 50 MB
  body, lone surrogate, 150 KB argument): exit code, the line the user got, seconds until control came back
  (capped: "trapped"), and whether the agent resumes with the user's message kept.

    python -m bench.reliability [--quick] [--only soak,concurrent,faults] [--kills 100] [--baseline]

A run that is not --quick keeps its figures in bench/results/reliability-figures.json ("latest", or
"baseline" with --baseline, which is kept until replaced the same way) and bench/results/reliability.json, and
rewrites docs/RELIABILITY.md from both.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Section, Timer, log, targets_table
from bench.reliability_proc import STOP_TIMEOUT, Chat, FakeServer, check_agent, closed_port

PARTS = ("soak", "concurrent", "faults")
KILL_POINTS = {"reply": 30, "edit": 20, "summary": 20, "random": 20, "parent": 10}  # shares of the kills
SOAK_CONTEXT = 3300  # tokens: small enough that the soak's agents summarize every few turns
SOAK_MESSAGES = 14
SOAK_MARKER = re.compile(r"k\d{3}\.\d{2}")
KILLS_PER_AGENT = 8
STEP_DELAY, SUMMARY_DELAY = 0.05, 0.3  # the fake model's latency, seconds
RUN_CAP = 90.0  # seconds any one chat may take before it is killed and counted as stuck
FAULTS = (
    "down", "crash", "500", "404", "garbage", "empty", "stall", "drip", "reset", "huge", "surrogate",
    "surrogate-raw", "bigarg", "user-surrogate",
)  # fmt: skip
USER_SURROGATE = "say:typed \ud800 text"  # not a server fault: the bytes of a lone surrogate on stdin


@dataclass
class Plan:
    kills: int = 100
    processes: tuple[int, ...] = (2, 4)
    messages: int = 12  # per process, concurrent part
    rounds: int = 2  # per process count
    fault_cap: float = 120.0
    seed: int = 16
    only: tuple[str, ...] = PARTS
    quick: bool = False
    baseline: bool = False

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(kills=10, processes=(2,), messages=5, rounds=1, fault_cap=30.0, quick=True)

    def command(self) -> str:
        parts = ["python -m bench.reliability"] + (["--quick"] if self.quick else [])
        if not self.quick:
            parts.append(f"--kills {self.kills} --rounds {self.rounds} --fault-cap {self.fault_cap:g}")
        if tuple(self.only) != PARTS:
            parts.append(f"--only {','.join(self.only)}")
        return " ".join(parts)


def verify_resume(home: Path, agent: str, url: str, token: str, context: int = 8192) -> tuple[bool, str]:
    """A resumed chat answers a normal message: (ok, why not)."""
    chat = Chat(home, agent, url, [f"say:{token}"], context).start()
    finished = chat.finish(RUN_CAP)
    errors = [str(e.get("text")) for e in chat.of_type("error")]
    if not finished:
        return False, f"no exit within {RUN_CAP:g} s"
    if chat.exit_code != 0 or f"reply {token}" not in chat.replies() or errors:
        why = (errors or chat.stderr or [f"exit {chat.exit_code}, no reply"])[-1]
        return False, why[:200]
    return True, ""


# -- kill -9 soak ---------------------------------------------------------------------------------------


def soak_messages(kill: int) -> list[str]:
    verbs = ("say", "append")
    return [f"{verbs[j % 2]}:k{kill:03d}.{j:02d}" for j in range(SOAK_MESSAGES)]


def kill_point(chat: Chat, server: FakeServer, point: str, rng: random.Random) -> str:
    """Drive the chat until the point comes, then SIGKILL: what was hit ("" if the chat ended first)."""
    target = rng.randint(1, 3) if point in ("reply", "edit") else 0
    at = time.monotonic() + rng.uniform(0.2, 3.0)
    summary_at: float | None = None
    deadline = chat.started + RUN_CAP
    while time.monotonic() < deadline:
        if point == "summary":
            while not server.events.empty():
                _, when, event = server.events.get_nowait()
                if summary_at is None and event.get("event") == "request" and event.get("kind") == "summary":
                    summary_at = when + rng.uniform(0.0, SUMMARY_DELAY + 0.2)
            if summary_at is not None and time.monotonic() >= summary_at:
                return "summary"
        if point in ("random", "parent") and time.monotonic() >= at:
            return point
        item = chat.next(0.01)
        if item is None and chat.open_streams == 0:
            return ""
        if item and item[0] == "out" and isinstance(item[2], dict):
            kind = item[2].get("type")
            if point == "reply" and kind == "assistant_message" and len(chat.replies()) >= target:
                return "reply"
            if point == "edit" and kind == "function_return" and len(chat.ok_edits()) >= target:
                return "edit"
    return ""


def soak(plan: Plan, work: Path) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    points = [p for p, share in KILL_POINTS.items() for _ in range(max(1, round(plan.kills * share / 100)))]
    rng.shuffle(points)
    points = points[: plan.kills]
    rows: dict[str, Counter[str]] = {p: Counter() for p in KILL_POINTS}
    notes: list[str] = []
    with FakeServer(delay=STEP_DELAY, summary_delay=SUMMARY_DELAY) as server:
        home = work / "soak"
        for number, point in enumerate(points):
            agent = f"soak{number // KILLS_PER_AGENT:02d}"
            if number % KILLS_PER_AGENT == 0:  # a fresh agent now and then: core memory has a size limit
                ok, why = verify_resume(home, agent, server.url, f"new{number:03d}", SOAK_CONTEXT)
                if not ok:
                    notes.append(f"creating {agent} failed: {why}")
            server.clear()
            chat = Chat(home, agent, server.url, soak_messages(number), SOAK_CONTEXT).start()
            hit = kill_point(chat, server, point, rng)
            row = rows[point]
            if not hit:
                chat.finish(RUN_CAP)
                row["missed"] += 1  # the chat ended (or stuck) before the kill point came
                continue
            child, landed = chat.kill("parent" if point == "parent" else "child")
            if not chat.wait_gone(child):
                row["child outlived parent"] += 1
            row["tried"] += 1
            row["landed"] += landed
            check = check_agent(home / "memagent.db", agent)
            printed, edits = chat.replies(), chat.ok_edits()
            row["printed replies"] += len(printed)
            row["lost replies"] += sum(1 for text in printed if check.sent[text] == 0)
            row["OK edits"] += len(edits)
            row["lost edits"] += sum(1 for marker in edits if marker not in check.core_lines)
            row["edits without their step"] += sum(
                1 for line in check.core_lines if SOAK_MARKER.fullmatch(line) and line not in check.appended
            )
            row["half-applied"] += check.half_applied
            row["integrity failures"] += check.integrity != "ok" and check.integrity != "no database"
            ok, why = verify_resume(home, agent, server.url, f"v{number:03d}", SOAK_CONTEXT)
            row["failed resumes"] += not ok
            if not ok:
                notes.append(f"kill {number} ({point}): resume failed: {why}")
            if (number + 1) % 10 == 0:
                log(f"soak: {number + 1}/{len(points)} kills")
    outlived = sum(row["child outlived parent"] for row in rows.values())
    if outlived:
        notes.insert(0, f"{outlived} times the chat's child outlived its SIGKILLed parent by {STOP_TIMEOUT:g} s")
    return {"rows": {p: dict(c) for p, c in rows.items()}, "notes": notes[:20], "kills": len(points)}


# -- processes side by side -----------------------------------------------------------------------------


def run_together(chats: list[Chat]) -> None:
    for chat in chats:
        chat.start()
    for chat in chats:
        chat.finish(RUN_CAP * 2)


def one_agent_round(server: FakeServer, home: Path, processes: int, messages: int, tag: str) -> dict[str, Any]:
    agent = f"same-{tag}"
    verify_resume(home, agent, server.url, f"init-{tag}")
    chats = [
        Chat(home, agent, server.url, [f"append:{tag}p{p}n{j:02d}" for j in range(messages)]) for p in range(processes)
    ]
    run_together(chats)
    check = check_agent(home / "memagent.db", agent)
    result: Counter[str] = Counter(processes=processes, messages=processes * messages)
    lines: list[str] = []
    for chat in chats:
        edits = chat.ok_edits()
        result["OK edits"] += len(edits)
        result["lost edits"] += sum(1 for marker in edits if marker not in check.core_lines)
        sent = [str(e.get("text")) for e in chat.of_type("user_message")]
        ids = [check.user_ids.get(text, []) for text in sent]
        result["messages stored"] += len(sent)
        result["not stored once"] += sum(1 for found in ids if len(found) != 1)
        firsts = [found[0] for found in ids if found]
        result["out of order"] += sum(1 for a, b in zip(firsts, firsts[1:], strict=False) if b < a)
        result["replies stored twice"] += sum(1 for text in chat.replies() if check.sent[text] > 1)
        result["exit non-zero"] += chat.exit_code != 0
        lines += [str(e.get("text")) for e in chat.of_type("error")] + [s for s in chat.stderr if s.strip()]
    result["half-applied"] += check.half_applied
    result["integrity failures"] += check.integrity != "ok"
    return {**result, "lines": sorted(set(lines))[:5]}


def side_by_side(server: FakeServer, home: Path, messages: int) -> dict[str, Any]:
    agents = ("left", "right")
    for agent in agents:
        verify_resume(home, agent, server.url, f"init-{agent}")
    chats = [Chat(home, a, server.url, [f"append:{a}{j:02d}" for j in range(messages)]) for a in agents]
    run_together(chats)
    result: dict[str, Any] = {"agents": len(agents), "both worked": True, "lost edits": 0, "lines": []}
    for agent, chat in zip(agents, chats, strict=True):
        check = check_agent(home / "memagent.db", agent)
        edits = chat.ok_edits()
        worked = chat.exit_code == 0 and len(edits) == messages and not chat.of_type("error")
        result["both worked"] = result["both worked"] and worked
        result["lost edits"] += sum(1 for marker in edits if marker not in check.core_lines)
        result["lines"] += [str(e.get("text"))[:200] for e in chat.of_type("error")][:2]
    return result


def concurrent(plan: Plan, work: Path) -> dict[str, Any]:
    rounds = []
    with FakeServer(delay=STEP_DELAY) as server:
        for processes in plan.processes:
            for number in range(plan.rounds):
                log(f"concurrent: {processes} processes, round {number + 1}/{plan.rounds}")
                home = work / f"concurrent-{processes}-{number}"
                rounds.append(one_agent_round(server, home, processes, plan.messages, f"r{processes}{number}"))
        log("concurrent: two agents side by side")
        pair = side_by_side(server, work / "side-by-side", plan.messages)
    return {"rounds": rounds, "side_by_side": pair}


# -- the server-fault matrix ----------------------------------------------------------------------------


def readable(chat: Chat) -> tuple[str, str]:
    """How the user was told: (kind, the line). Kinds: one line, internal error, traceback, nothing."""
    errors = [str(e.get("text")) for e in chat.of_type("error")]
    said = [s for s in chat.stderr if s.strip()]
    everything = "\n".join(said + [str(e.get("text")) for e in chat.events])
    if "Traceback (most recent call last)" in everything:
        return "traceback", next((s for s in reversed(said) if s.strip()), "")
    internal = [s for s in said if "internal error" in s]
    if internal:
        return "internal error", internal[-1]
    lines = errors + [s for s in said if s.startswith("memagent: error")]
    if lines:
        return "one line", lines[0]
    return "nothing", ""


def fault_case(name: str, cap: float, work: Path) -> dict[str, Any]:
    home, agent = work / f"fault-{name}", "faulty"
    result: dict[str, Any] = {"fault": name}
    with FakeServer() as server:
        ok, why = verify_resume(home, agent, server.url, "before")
        if not ok:
            return {**result, "setup": f"creating the agent failed: {why}"}
        url = f"http://127.0.0.1:{closed_port()}" if name == "down" else server.url
        message = USER_SURROGATE if name == "user-surrogate" else f"fault:{name} please"
        chat = Chat(home, agent, url, [message]).start()
        finished = chat.finish(cap)
    start = chat.message_stored_at or chat.started  # from the message being stored: start-up is not the fault's
    result["exit code"] = chat.exit_code if finished else None
    result["seconds"] = round((chat.ended or time.monotonic()) - start, 1) if finished else None
    result["trapped"] = not finished
    result["told"], result["line"] = readable(chat)
    result["line"] = result["line"][:240]
    with FakeServer() as server:  # a healthy server again: is the agent intact?
        ok, why = verify_resume(home, agent, server.url, "after")
    check = check_agent(home / "memagent.db", agent)
    result["intact"] = ok and check.half_applied == 0 and check.integrity == "ok"
    result["why not intact"] = why or ("" if check.integrity == "ok" else check.integrity)
    result["message stored"] = None if name == "down" else any(text.startswith(message[:9]) for text in check.user_ids)
    return result


def faults(plan: Plan, work: Path) -> dict[str, Any]:
    cases = []
    for name in FAULTS:
        log(f"faults: {name}")
        cases.append(fault_case(name, plan.fault_cap, work))
    return {"cases": cases, "cap": plan.fault_cap}


# -- the run ---------------------------------------------------------------------------------------------

JOBS = {"soak": soak, "concurrent": concurrent, "faults": faults}


def run(plan: Plan) -> Section:
    from bench import reliability_doc

    figures: dict[str, Any] = {}
    measured, started = reliability_doc.commit(), time.strftime("%Y-%m-%d %H:%M %Z")
    with Timer() as timer:
        work = Path(tempfile.mkdtemp(prefix="memagent-reliability-"))
        try:
            for part in plan.only:
                part_start = time.perf_counter()
                figures[part] = JOBS[part](plan, work)
                figures[part]["seconds"] = round(time.perf_counter() - part_start, 1)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    kept = {"latest": figures, "baseline": {}}
    if not plan.quick:
        kept = reliability_doc.keep(figures, plan, measured, started)
    section = timer.stamp(reliability_doc.section(kept["latest"], plan.command()))
    if not plan.quick:
        reliability_doc.write(kept)
    return section


def rebuild() -> None:
    """docs/RELIABILITY.md and bench/results/reliability.json again, from the kept figures."""
    from bench import reliability_doc
    from bench.run_all import save_result

    kept = reliability_doc.load()
    records = kept.get("latest") or kept.get("baseline") or {}
    if not records:
        raise SystemExit(f"no figures kept in {reliability_doc.FIGURES}: run the benchmark first")
    reliability_doc.write(kept)
    first = next(iter(records.values()))
    section = reliability_doc.section(records, first["command"])
    section.seconds = sum(r["figures"].get("seconds", 0.0) for r in records.values())
    save_result(section, first["started"])
    print(f"wrote {reliability_doc.DOC}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 kills, 2 processes once, the matrix capped at 30 s")
    parser.add_argument("--only", default="", help=f"comma-separated, from: {', '.join(PARTS)}")
    parser.add_argument("--kills", type=int, help="kill -9 points in the soak (100)")
    parser.add_argument("--rounds", type=int, help="rounds per process count (2)")
    parser.add_argument("--messages", type=int, help="messages per concurrent process (12)")
    parser.add_argument("--fault-cap", type=float, help="seconds before a faulted chat counts as trapped (120)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--baseline", action="store_true", help="keep these figures as the before-fixes baseline")
    parser.add_argument("--rebuild", action="store_true", help="only rewrite the doc from the kept figures")
    args = parser.parse_args()
    if args.rebuild:
        rebuild()
        return
    plan = Plan.quick_plan() if args.quick else Plan()
    only = tuple(p for p in args.only.split(",") if p) or PARTS
    if set(only) - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(set(only) - set(PARTS)))}")
    plan.only, plan.seed, plan.baseline = only, args.seed, args.baseline
    plan.kills = args.kills or plan.kills
    plan.rounds = args.rounds or plan.rounds
    plan.messages = args.messages or plan.messages
    plan.fault_cap = args.fault_cap or plan.fault_cap
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    section = run(plan)
    if not plan.quick:
        from bench.run_all import save_result

        save_result(section, started)
    print(section.body)
    print()
    print(targets_table(section.targets))


if __name__ == "__main__":
    main()
