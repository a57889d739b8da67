"""The reliability benchmark's figures: kept, turned into a Section, and written to docs/RELIABILITY.md.

bench/results/reliability-figures.json holds two sets of figures, each part (soak, concurrent, faults) with the
commit, date, machine and command it was measured with: "baseline" (before the fixes of issue 16; replaced
only by a run with --baseline) and "latest" (replaced by every full run). The doc shows both side by side.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from bench.common import ROOT, Section, Target, machine_info, md_table, targets_table
from memagent.text import clean_text

FIGURES = ROOT / "bench" / "results" / "reliability-figures.json"
DOC = ROOT / "docs" / "RELIABILITY.md"
TITLE = "Reliability"


def commit() -> str:
    """The commit memagent/ was last changed in (what is measured); "+changes" when it differs from it."""
    try:
        head = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "memagent"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "memagent"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


def load() -> dict[str, dict[str, Any]]:
    if FIGURES.exists():
        return json.loads(FIGURES.read_text(encoding="utf-8"))
    return {"baseline": {}, "latest": {}}


def keep(
    figures: dict[str, Any], plan: Any, measured: str | None = None, started: str | None = None
) -> dict[str, dict[str, Any]]:
    """Store this run's parts under "baseline" or "latest", keeping the other parts and the other set."""
    kept = load()
    which = "baseline" if plan.baseline else "latest"
    stamp = {
        "commit": measured or commit(),
        "started": started or time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_info()["CPU"],
        "command": plan.command() + (" --baseline" if plan.baseline else ""),
    }
    for part, data in figures.items():
        kept.setdefault(which, {})[part] = {**stamp, "figures": data}
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(kept, indent=1) + "\n", encoding="utf-8")
    return kept if not plan.baseline else {**kept, "latest": kept.get("latest") or kept["baseline"]}


def _records(figures_or_records: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Accept both kept records ({part: {"figures": ...}}) and a quick run's bare figures."""
    return {
        part: value if "figures" in value else {"figures": value, "commit": commit(), "started": "", "command": ""}
        for part, value in figures_or_records.items()
    }


# -- the figures that matter, as (name, value, goal met) --------------------------------------------------


def soak_total(figures: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in figures["rows"].values():
        for key, value in row.items():
            total[key] = total.get(key, 0) + value
    return total


def headline(records: dict[str, dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = []
    if "soak" in records:
        t = soak_total(records["soak"]["figures"])
        at_reply = records["soak"]["figures"]["rows"].get("reply", {})
        rows += [
            ("kill -9: kills tried", str(t.get("tried", 0)), None),
            ("kill -9 right after a printed reply: that reply lost",
             f"{at_reply.get('lost replies', 0)} of {at_reply.get('tried', 0)}", at_reply.get("lost replies", 0) == 0),
            ("kill -9: printed replies lost", f"{t.get('lost replies', 0)} of {t.get('printed replies', 0)}",
             t.get("lost replies", 0) == 0),
            ("kill -9: OK'd edits lost", f"{t.get('lost edits', 0)} of {t.get('OK edits', 0)}",
             t.get("lost edits", 0) == 0),
            ("kill -9: half-applied steps", str(t.get("half-applied", 0) + t.get("edits without their step", 0)),
             t.get("half-applied", 0) + t.get("edits without their step", 0) == 0),
            ("kill -9: integrity_check failures", str(t.get("integrity failures", 0)),
             t.get("integrity failures", 0) == 0),
            ("kill -9: failed resumes", str(t.get("failed resumes", 0)), t.get("failed resumes", 0) == 0),
        ]  # fmt: skip
    if "concurrent" in records:
        figures = records["concurrent"]["figures"]
        for processes in sorted({r["processes"] for r in figures["rounds"]}):
            mine = [r for r in figures["rounds"] if r["processes"] == processes]
            lost, ok = sum(r.get("lost edits", 0) for r in mine), sum(r.get("OK edits", 0) for r in mine)
            bad = sum(r.get("not stored once", 0) + r.get("out of order", 0) for r in mine)
            rows.append((f"{processes} processes on one agent: OK'd edits lost", f"{lost} of {ok}", lost == 0))
            rows.append((f"{processes} processes: messages not stored once, in order", str(bad), bad == 0))
        pair = figures["side_by_side"]
        rows.append(("two agents side by side work", "yes" if pair["both worked"] else "no", pair["both worked"]))
    if "faults" in records:
        cases = [c for c in records["faults"]["figures"]["cases"] if "setup" not in c]
        slow = [c["fault"] for c in cases if c["trapped"] or (c["seconds"] or 0) > CONTROL_GOAL]
        unclear = [c["fault"] for c in cases if c["told"] != "one line" and not _handled(c)]
        silent_failures = [c["fault"] for c in cases if c["exit code"] == 0 and c["line"]]
        broken = [c["fault"] for c in cases if not c["intact"] or c["message stored"] is False]
        rows += [
            (f"server faults: control back after > {CONTROL_GOAL:g} s or trapped", _names(slow), not slow),
            ("server faults: no clean one-line message", _names(unclear), not unclear),
            ("server faults: exit code 0 after a failed turn", _names(silent_failures), not silent_failures),
            ("server faults: agent not intact after", _names(broken), not broken),
        ]
    return rows


CONTROL_GOAL = 60.0


def _names(names: list[str]) -> str:
    return f"{len(names)} ({', '.join(names)})" if names else "0"


# -- tables ---------------------------------------------------------------------------------------------

SOAK_COLUMNS = (
    "tried", "printed replies", "lost replies", "OK edits", "lost edits", "half-applied",
    "edits without their step", "integrity failures", "failed resumes", "missed",
)  # fmt: skip


def soak_table(figures: dict[str, Any]) -> str:
    rows = [(point, *(row.get(c, 0) for c in SOAK_COLUMNS)) for point, row in figures["rows"].items()]
    total = soak_total(figures)
    rows.append(("**all**", *(total.get(c, 0) for c in SOAK_COLUMNS)))
    return md_table(("kill point", *SOAK_COLUMNS), rows)


def concurrent_table(figures: dict[str, Any]) -> str:
    columns = ("messages", "OK edits", "lost edits", "not stored once", "out of order", "half-applied")
    rows = [
        (
            r["processes"],
            *(r.get(c, 0) for c in columns),
            r.get("exit non-zero", 0),
            clean_text("; ".join(r["lines"]))[:200],
        )
        for r in figures["rounds"]
    ]
    pair = figures["side_by_side"]
    text = md_table(("processes", *columns, "exit non-zero", "what they printed"), rows)
    verdict = "both worked" if pair["both worked"] else "**did not both work**"
    lines = "; ".join(pair["lines"])[:200]
    return text + f"\n\nTwo agents in one database side by side: {verdict}, {pair['lost edits']} edits lost. {lines}"


def _handled(case: dict[str, Any]) -> bool:
    """The fault was absorbed: the turn ended without an error (exit 0 now means that) and nothing was printed."""
    return case["exit code"] == 0 and case["told"] == "nothing"


def faults_table(figures: dict[str, Any]) -> str:
    rows = []
    for c in figures["cases"]:
        if "setup" in c:
            rows.append((c["fault"], "-", "-", "-", "-", "-", c["setup"]))
            continue
        seconds = f"trapped (> {figures['cap']:g})" if c["trapped"] else f"{c['seconds']:.1f}"
        code = "killed" if c["exit code"] is None else c["exit code"]
        stored = {None: "n/a", True: "yes", False: "**no**"}[c["message stored"]]
        intact = "yes" if c["intact"] else f"**no**: {c['why not intact'][:100]}"
        line = clean_text(c["line"]).replace("|", "\\|")[:160]
        told = "nothing to tell: the turn went through" if _handled(c) else c["told"]
        rows.append((c["fault"], code, told, seconds, intact, stored, line))
    return md_table(
        ("fault", "exit code", "user told", "s until control", "agent intact after", "message kept", "the line"), rows
    )


TABLES = {"soak": soak_table, "concurrent": concurrent_table, "faults": faults_table}
HEADINGS = {
    "soak": "kill -9 soak",
    "concurrent": "Processes side by side",
    "faults": "Server-fault matrix",
}


def body(records: dict[str, dict[str, Any]]) -> str:
    parts = []
    for part, record in records.items():
        parts += [f"**{HEADINGS[part]}** ({_stamp(record)}):", "", TABLES[part](record["figures"]), ""]
    return "\n".join(parts)


def _stamp(record: dict[str, Any]) -> str:
    bits = [f"commit {record.get('commit', '?')}", record.get("started", ""), record.get("machine", "")]
    seconds = record["figures"].get("seconds")
    bits.append(f"{seconds / 60:.1f} min" if seconds else "")
    return ", ".join(b for b in bits if b)


def section(figures_or_records: dict[str, Any], command: str) -> Section:
    records = _records(figures_or_records)
    rows = headline(records)
    targets = [Target(name, "0 / yes" if met is not None else "(measured)", value, met) for name, value, met in rows]
    summary = [f"{name.split(':', 1)[-1].strip()}: {value}" for name, value, met in rows if met is False][:4]
    result = Section("reliability", TITLE, command, targets=targets, body=body(records))
    result.summary = summary or ["nothing lost"]
    result.machine = next((r.get("machine") for r in records.values() if r.get("machine")), "")
    return result


# -- the doc ---------------------------------------------------------------------------------------------

INTRO = """# Reliability

What memagent promises is that it remembers. This page measures that promise the way a user's bad day would
attack it (issue 16), with real processes on 127.0.0.1 only: `memagent chat --backend llamacpp --json` against
a fake llama.cpp server (`bench/fake_server.py`) that scripts the model's replies (a `say:X` message is answered
with `send_message("reply X")`, an `append:X` message with `core_memory_append(human, X)`) and the server's
faults. Generated by `python -m bench.reliability` (about 17 minutes on the machine below; `--quick`, a smoke run
that writes nothing, about 4); `python -m bench.run_all --only reliability` runs it too. The figures are
measured and reported here, never asserted in tests.

* **kill -9 soak.** SIGKILL at random points of a scripted chat: right after a reply line was printed
  (`reply`), right after a core-memory edit returned OK (`edit`), during or just after a summarization request
  (`summary`; the agents run with a 3300-token context so they summarize every few turns), at a random time
  from the start (`random`; this includes start-up) - all to the child process that runs the chat
  (`memagent/cli/crash_guard.py` forks it) - and to the parent instead (`parent`; the kernel then sends the child
  SIGTERM). After each kill, from the SQLite file: every reply printed before the kill is stored (*lost
  replies*), every edit whose `function_return` said OK is in core memory (*lost edits*), no call is stored
  without its function result or the other way round (*half-applied*), no edit is in core memory without its
  stored call (*edits without their step*), `PRAGMA integrity_check` is ok; then `memagent chat --agent NAME`
  resumes and answers a message (*failed resumes*). *missed*: the chat ended before its kill point came.
* **Processes side by side.** 2 and 4 `memagent chat --agent same` at once, each piping messages whose
  replies are `core_memory_append` calls with unique markers; afterwards, edits that returned OK but are
  missing from core memory, user messages not stored exactly once, or stored out of the order one process
  sent them. And two agents in one database, one process each, at once.
* **Server-fault matrix.** One turn per fault, on an agent that worked before: *down* (nothing listens),
  *crash* (the server dies on the request), HTTP *500* and *404*, a *garbage* or *empty* body, *stall*
  (accepts, never answers), *drip* (a byte a second, forever), *reset* (TCP reset), *huge* (a 50 MB answer),
  *surrogate* (the model writes a lone `\\ud800` escape in its reply), *surrogate-raw* (the server's JSON
  carries one), *bigarg* (a 150 KB `archival_memory_insert` argument), and one case of hostile input
  rather than a fault, *user-surrogate* (the bytes of a lone surrogate in the user's line on stdin).
  Reported: the exit code, how the user was told (*one line*, *internal error*, *traceback*, *nothing*),
  seconds until the process gave control back (killed and counted *trapped* at the cap), and whether the
  agent is intact after (a resumed chat against a healthy server answers; no half-applied step; the DB checks
  ok) with the user's message kept.

The **before** column is the code before the fixes of issue 16 (the baseline, kept until a run with
`--baseline` replaces it); the **after** column is the latest full run: once the fixes are merged,
`python -m bench.reliability` measures it and rewrites this page (`--only soak` and the like replace one part;
`--rebuild` rewrites the page from `bench/results/reliability-figures.json` without running anything).
Seconds until control are from the moment the user's message was stored (from the start of the process when
it never was); the fixes aim for well under a minute.
"""


def write(kept: dict[str, dict[str, Any]]) -> None:
    before, after = kept.get("baseline") or {}, kept.get("latest") or {}
    names: dict[str, list[str]] = {}
    for column, records in enumerate((before, after)):
        for name, value, _met in headline(records):
            names.setdefault(name, ["not measured", "not measured"])[column] = value
    before_at = ", ".join(sorted({f"commit {r['commit']}, {r['started']}" for r in before.values()})) or "-"
    after_at = ", ".join(sorted({f"commit {r['commit']}, {r['started']}" for r in after.values()})) or "-"
    machine = machine_info()
    parts = [
        INTRO,
        "## Summary",
        "",
        f"Before: {before_at}. After: {after_at}.",
        "",
        md_table(("figure", "before fixes", "after"), [(n, b, a) for n, (b, a) in names.items()]),
        "",
    ]
    for part in TABLES:
        parts += [f"## {HEADINGS[part]}", ""]
        for label, records in (("Before fixes (baseline)", before), ("After (latest run)", after)):
            if part in records:
                parts += [f"{label}: {_stamp(records[part])}, `{records[part]['command']}`.", ""]
                parts += [TABLES[part](records[part]["figures"]), ""]
                notes = records[part]["figures"].get("notes")
                if notes:
                    shown = "; ".join(clean_text(n).replace("|", "\\|")[:200] for n in notes[:8])
                    parts += [f"Notes: {shown}.", ""]
            else:
                parts += [f"{label}: not measured yet.", ""]
    if after:
        parts += ["## Targets (latest run)", "", targets_table(section(after, "").targets), ""]
    parts += ["## Machine", "", md_table(("", ""), list(machine.items())), ""]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(parts), encoding="utf-8")
