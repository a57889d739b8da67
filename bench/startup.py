"""Start-up and memory: `memagent --help`, time to the first prompt without a model, peak RSS with the model.

* `memagent --help`: wall time of the subprocess, median of `--runs` runs after one warm-up.
* Time to the first prompt without loading a model: `memagent chat --backend human --agent startup`, which does
  everything a chat does before the model would matter (imports, settings, opening and migrating the database,
  loading or creating the agent, starting the REPL). Measured two ways: in a pseudo-terminal until the `> `
  prompt is drawn (what a user waits for), and with stdin at end of file (start-up plus a clean exit).
* Peak RSS of a scripted `memagent chat --json` on the embedded model with two messages, from `wait4()`'s
  rusage of that one child, at the default context length and at a smaller one.

    .venv/bin/python -m bench.startup [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import re
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Section, Target, Timer, log, mb, md_table, median, paragraphs, targets_table
from memagent.llm.backends.embedded import default_model_path

MEMAGENT = str(Path(PYTHON).parent / "memagent")
HELP_TARGET_S, PROMPT_TARGET_S, RSS_MARGIN = 0.3, 0.6, 150e6
CLOSE_NOISE = 5e6  # bytes: a smaller difference between the peaks with and without closing is not the close's
CHAT_MESSAGES = "Hi, my name is Brad.\nWhat is my name?\n"
CPR_REQUEST, CPR_ANSWER = b"\x1b[6n", b"\x1b[1;1R"
PROMPT_DRAWN = re.compile(rb"\x1b\[\?2004h.*?>(?:\x1b\[[0-9;]*m)*[ \r]", re.DOTALL)  # paste mode on, then "> "


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMAGENT_", "BACKEND_TYPE", "OPENAI_"))}
    return {**env, "MEMAGENT_HOME": str(home), "NO_COLOR": "1"}


def timed_run(args: list[str], home: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [MEMAGENT, *args],
        env=environment(home),
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def median_run(args: list[str], home: Path, runs: int) -> tuple[float, list[float]]:
    timed_run(args, home)  # warm-up: page cache, .pyc files, and the agent exists afterwards
    times = [timed_run(args, home) for _ in range(runs)]
    return median(times), times


def time_to_prompt(args: list[str], home: Path, timeout: float = 30.0) -> float:
    """Seconds until the REPL draws its `> ` prompt in a pseudo-terminal (answering cursor-position queries)."""
    master, slave = os.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [MEMAGENT, *args],
        env={**environment(home), "TERM": "xterm"},
        cwd=home,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen, elapsed = b"", None
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            seen += os.read(master, 65536)
            if CPR_REQUEST in seen:
                os.write(master, CPR_ANSWER)
                seen = seen.replace(CPR_REQUEST, b"")
            if PROMPT_DRAWN.search(seen):
                elapsed = time.perf_counter() - start
                break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    if elapsed is None:
        raise RuntimeError(f"no prompt within {timeout} s; output: {seen[-300:]!r}")
    return elapsed


def peak_rss(home: Path, args: list[str], stdin_text: str = CHAT_MESSAGES) -> tuple[int, float]:
    """Peak RSS in bytes (and wall seconds) of one `memagent` run, from its own rusage."""
    with tempfile.TemporaryFile() as stdin:
        stdin.write(stdin_text.encode())
        stdin.seek(0)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [MEMAGENT, *args],
            env=environment(home),
            cwd=home,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"memagent {' '.join(args)} exited with {proc.returncode}")
    return usage.ru_maxrss * 1024, time.perf_counter() - start


STEADY_PEAK = """
import os, re, sys
from pathlib import Path
from memagent.app import open_session
from memagent.settings import Settings
session = open_session(Settings(home=Path(sys.argv[1]), agent="rss-steady", no_verify=True))
for line in sys.argv[2].splitlines():
    session.agent.run_turn(line, lambda event: None)
print(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1), flush=True)
os._exit(0)  # skip Session.close(), i.e. the KV-cache save
"""


def steady_peak(home: Path) -> int:
    """Peak RSS of the same two turns in process, read before exit: without what closing the session costs."""
    out = subprocess.run(
        [PYTHON, "-c", STEADY_PEAK, str(home), CHAT_MESSAGES],
        env=environment(home),
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[-1]) * 1024


LAYERS = """
import re, sys
from llama_cpp import Llama
from memagent.llm.backends.embedded import default_model_path
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
before = rss()
llm = Llama(model_path=str(default_model_path()), n_ctx=8192, verbose=False, **eval(sys.argv[1]))
loaded = rss()
llm.create_completion("hello world, this is a test. " * 300, max_tokens=1)
print(before, loaded, rss(), flush=True)
"""
LAYER_OPTIONS = {  # llama.cpp's defaults, what memagent uses, then options that shrink the KV cache further
    "llama-cpp-python defaults (f16 KV cache)": "{}",
    "8-bit keys, f16 values (type_k=8: kv_cache_type q8_0-k)": "dict(type_k=8)",
    "8-bit keys, f16 values, prompts 128 tokens a step (n_ubatch=128: memagent)": "dict(type_k=8, n_ubatch=128)",
    "flash_attn=True": "dict(flash_attn=True)",
    "flash_attn=True, q8_0 KV cache (type_k=type_v=8: kv_cache_type q8_0)": "dict(flash_attn=True, type_k=8, type_v=8)",
}


def memory_layers(home: Path) -> dict[str, tuple[int, int, int]]:
    """RSS before loading, after loading, and after evaluating a ~2,400-token prompt, in a fresh process each."""
    layers = {}
    for name, options in LAYER_OPTIONS.items():
        out = subprocess.run(
            [PYTHON, "-c", LAYERS, options], env=environment(home), cwd=home, capture_output=True, text=True, check=True
        ).stdout
        before, loaded, evaluated = (int(x) for x in out.split()[-3:])
        layers[name] = (before, loaded, evaluated)
    return layers


def chat_args(context_length: int | None) -> list[str]:
    args = ["chat", "--agent", f"rss-{context_length or 'default'}", "--json", "--no-verify"]
    return args + (["--context-length", str(context_length)] if context_length else [])


PLAIN_HELP = (  # the proposed change, applied from outside: typer's help without rich
    "import functools, sys, typer; "
    "typer.Typer.__init__ = functools.partialmethod(typer.Typer.__init__, rich_markup_mode=None); "
    "sys.argv = ['memagent', '--help']; from memagent.cli import main; main()"
)
HUMAN = ["chat", "--backend", "human", "--agent", "startup"]


def importtime(args: list[str]) -> list[tuple[str, int, int, int]]:
    """(module, nesting level, cumulative us, self us) for every import of `memagent ARGS`."""
    code = f"import sys; sys.argv = ['memagent', *{args!r}]; from memagent.cli import main; main()"
    env = environment(Path(tempfile.gettempdir()) / "memagent-importtime")
    result = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if match:
            rows.append((match.group(4), len(match.group(3)) // 2, int(match.group(2)), int(match.group(1))))
    return rows


def offenders(rows: list[tuple[str, int, int, int]], limit: int = 10) -> list[tuple[str, int, int]]:
    """The slowest imports by cumulative time, down to three levels below the script."""
    return [(m, c, s) for m, _, c, s in sorted((r for r in rows if r[1] <= 2), key=lambda r: -r[2])[:limit]]


def measure_times(home: Path, runs: int) -> dict[str, Any]:
    """Medians; `--help` today and with the proposed plain help alternate, so both see the same load."""
    timed_run(["--help"], home)
    today, plain = [], []
    for _ in range(runs):
        today.append(timed_run(["--help"], home))
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", PLAIN_HELP], env=environment(home), stdout=subprocess.DEVNULL, check=True)
        plain.append(time.perf_counter() - start)
    piped, _ = median_run(HUMAN, home, runs)
    new = median([timed_run(["chat", "--backend", "human", "--agent", f"new-{i}"], home) for i in range(3)])
    prompt_runs = [time_to_prompt(HUMAN, home) for _ in range(runs)]
    return {
        "help": median(today),
        "help_runs": today,
        "plain_help": median(plain),
        "piped": piped,
        "new": new,
        "prompt": median(prompt_runs),
        "prompt_runs": prompt_runs,
    }


def run(runs: int = 7, rss_contexts: tuple[int | None, ...] = (None, 4096)) -> Section:
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="memagent-startup-") as tmp:
        home = Path(tmp)
        log("start-up times")
        numbers = measure_times(home, runs)
        numbers["baseline"], _ = peak_rss(home, HUMAN, "")
        rss = {}
        for context in rss_contexts:
            log(f"peak RSS, context {context or 'default'}")
            rss[context] = peak_rss(home, chat_args(context))
        numbers["steady"] = steady_peak(home) if rss_contexts else 0
        numbers["layers"] = memory_layers(home) if rss_contexts else {}
        imports = {"--help": importtime(["--help"]), "chat": importtime(HUMAN)}
    return timer.stamp(build_section(numbers, rss, imports, runs))


def kv_bytes_per_token() -> int:
    """f16 K and V for every layer, from the GGUF's metadata (the vocabulary-only load reads no weights)."""
    from llama_cpp import Llama

    meta = Llama(str(default_model_path()), vocab_only=True, verbose=False).metadata
    arch = meta["general.architecture"]
    layers, heads = int(meta[f"{arch}.block_count"]), int(meta[f"{arch}.attention.head_count"])
    kv_heads, width = int(meta[f"{arch}.attention.head_count_kv"]), int(meta[f"{arch}.embedding_length"])
    return 2 * layers * kv_heads * (width // heads) * 2


def rss_notes(n: dict[str, Any], rss: dict[int | None, tuple[int, float]], model_bytes: int) -> list[str]:
    if None not in rss:
        return []
    kv = kv_bytes_per_token()
    kv_today = kv / 2 * 34 / 64 + kv / 2  # q8_0 keys (34 bytes per 32 values) and f16 values
    notes = [
        f"Where the memory goes: Python with memagent's imports {mb(n['baseline'])}; the model file, mapped, "
        f"{mb(model_bytes)}; llama.cpp's KV cache, allocated for the whole context: 8-bit keys and 16-bit values, "
        f"{kv_today / 1024:.1f} KiB per token = {mb(kv_today * 8192)} at the default 8192 tokens (f16: "
        f"{mb(kv * 8192)}); the rest appears with the first evaluation: llama.cpp's compute buffers (the table "
        "below: a prompt step holds its tokens' attention scores against the whole cache, so memagent evaluates "
        "prompts 128 tokens a step instead of 512), and the e5 embedding model when the background worker first "
        "embeds a row (the embeddings extra)."
    ]
    if n.get("steady"):
        closing = rss[None][0] - n["steady"]
        notes.append(
            (f"Closing the session adds {mb(closing)} to the peak" if closing > CLOSE_NOISE else
             f"Closing the session adds nothing measurable to the peak (the run that closed peaked {mb(-closing)} "
             "lower than the one that did not, within the spread below)")
            + ": the KV cache is saved with llama.cpp's `llama_state_save_file`, which streams it from C (memagent "
            "used llama-cpp-python's `Llama.save_state()` before, which held several copies of the state and of the "
            "logits buffer at once and added ~270 MB here). Runs of the same chat differ by up to ~25 MB: when the "
            "grammar refuses the token the model would pick, sampling checks the whole vocabulary against it, and "
            "llama.cpp's allocations for that grow the heap, by how much depends on where in the call it happens."
        )
    notes.append(
        "The target (model + 150 MB) is below what Python, the model and the 8192-token cache need before any "
        f"compute buffer ({mb(n['baseline'] + model_bytes + kv_today * 8192)}). Quantized values (kv_cache_type "
        "q8_0 or q4_0) would save more, but llama.cpp needs flash attention for them, and on this CPU that evaluated "
        "prompts 2.3-2.7x slower and generated about half as fast (14.5 against 29 tokens/s, one thread, after a "
        "2,800-token prompt): memagent keeps the faster cache by default. A smaller context scales the cache down "
        "(see the 4096 row); `--context-length` and the `kv_cache_type` backend setting are there for a machine "
        "short of memory."
    )
    return notes


def layer_rows(layers: dict[str, tuple[int, int, int]]) -> list[tuple[str, str, str, str]]:
    return [
        (name, mb(loaded), mb(evaluated), mb(evaluated - loaded))
        for name, (_before, loaded, evaluated) in layers.items()
    ]


def import_note(imports: dict[str, list[tuple[str, int, int, int]]]) -> str:
    def cost(what: str, module: str | None) -> float:
        rows = imports.get(what, [])
        return max((c for m, level, c, _ in rows if module is None and level == 0 or m == module), default=0) / 1000

    chat_total = sum(c for _, level, c, _ in imports.get("chat", []) if level == 0) / 1000
    return (
        f"`memagent chat` spends {chat_total:.0f} ms importing, {cost('chat', 'sqlalchemy'):.0f} ms of it in "
        "SQLAlchemy (imported by `memagent.memory.store`, which uses it as a thin layer over one sqlite3 "
        f"connection with hand-written SQL); `memagent --help` spends {cost('--help', 'typer.rich_utils'):.0f} ms "
        "in typer's rich help formatting (`typer.rich_utils`; memagent's Typer apps set `rich_markup_mode=None`, "
        "which skips it)."
    )


def _runs(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def time_rows(n: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        ("`memagent --help`", f"{n['help']:.3f}", _runs(n["help_runs"])),
        ("`memagent --help`, rich_markup_mode=None forced on every Typer", f"{n['plain_help']:.3f}", "alternating"),
        (
            "`chat --backend human`, pty, until `> ` is drawn (resumed agent)",
            f"{n['prompt']:.3f}",
            _runs(n["prompt_runs"]),
        ),
        ("`chat --backend human`, stdin at EOF (resumed agent, start + exit)", f"{n['piped']:.3f}", ""),
        ("`chat --backend human`, stdin at EOF (a new agent each run, median of 3)", f"{n['new']:.3f}", ""),
    ]


def rss_rows(n: dict[str, Any], rss: dict[int | None, tuple[int, float]]) -> list[tuple[str, str, str]]:
    rows = [("`chat --backend human` (no model), stdin at EOF", mb(n["baseline"]), "")]
    if n.get("steady"):
        rows.append(("the same 2 turns in process, read before exit (no `Session.close()`)", mb(n["steady"]), ""))
    return rows + [
        (f"`chat --json`, embedded SmolLM2, 2 messages, context {ctx or 'default (8192)'}", mb(b), f"{s:.0f}")
        for ctx, (b, s) in rss.items()
    ]


def build_section(
    n: dict[str, Any],
    rss: dict[int | None, tuple[int, float]],
    imports: dict[str, list[tuple[str, int, int, int]]],
    runs: int,
) -> Section:
    model_bytes = default_model_path().stat().st_size
    body = [
        f"Median of {runs} runs after a warm-up run; the pseudo-terminal run answers prompt_toolkit's cursor-position "
        f"query at once. Model file: {default_model_path().name}, {mb(model_bytes)}.",
        "",
        md_table(("what", "median s", "runs (s)"), time_rows(n)),
        "",
        md_table(("peak RSS of", "peak RSS", "wall s"), rss_rows(n, rss)),
        "",
        paragraphs(rss_notes(n, rss, model_bytes)),
    ]
    if n.get("layers"):
        body += [
            "",
            "RSS of llama-cpp-python alone, a fresh process each, context 8192, one ~2,400-token prompt:",
            "",
            md_table(
                ("llama.cpp options", "after loading", "after the prompt", "added by the prompt"),
                layer_rows(n["layers"]),
            ),
        ]
    for what, rows in imports.items():
        table = [(m, f"{c / 1000:.0f}", f"{own / 1000:.0f}") for m, c, own in offenders(rows)]
        body += [
            "",
            f"Slowest imports of `memagent {what}` (`python -X importtime`, cumulative, three levels):",
            "",
            md_table(("module", "cumulative ms", "self ms"), table),
        ]
    body += ["", import_note(imports)]
    section = Section(
        "startup",
        "Start-up and memory",
        f".venv/bin/python -m bench.startup --runs {runs}",
        targets=startup_targets(n, rss, model_bytes),
        body="\n".join(body),
    )
    default_rss = rss.get(None, (0, 0.0))[0]
    section.summary = [f"--help {n['help']:.2f} s", f"first prompt {n['prompt']:.2f} s", f"RSS {mb(default_rss)}"]
    return section


def startup_targets(n: dict[str, Any], rss: dict[int | None, tuple[int, float]], model_bytes: int) -> list[Target]:
    default_rss = rss.get(None, (0, 0.0))[0]
    notes = [f"without a model: {mb(n['baseline'])}"]
    notes += (
        [f"the same turns read before exit, without the KV-cache save: {mb(n['steady'])}"] if n.get("steady") else []
    )
    notes += [f"context {c}: {mb(b)}" for c, (b, _) in rss.items() if c]
    return [
        Target(
            "`memagent --help`",
            f"<= {HELP_TARGET_S} s",
            f"{n['help']:.3f} s",
            n["help"] <= HELP_TARGET_S,
            f"with `rich_markup_mode=None`: {n['plain_help']:.3f} s",
        ),
        Target(
            "time to the first prompt (no model)",
            f"<= {PROMPT_TARGET_S} s",
            f"{n['prompt']:.3f} s (pty)",
            n["prompt"] <= PROMPT_TARGET_S,
            f"stdin at EOF: {n['piped']:.3f} s",
        ),
        Target(
            "peak RSS, chat on the embedded model",
            f"<= model file + 150 MB = {mb(model_bytes + RSS_MARGIN)}",
            mb(default_rss) if default_rss else "not measured",
            default_rss <= model_bytes + RSS_MARGIN if default_rss else None,
            "; ".join(notes),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-rss", action="store_true", help="skip the runs with the model")
    args = parser.parse_args()
    section = run(args.runs, () if args.no_rss else (None, 4096))
    print(section.body)
    print()
    print(targets_table(section.targets))


if __name__ == "__main__":
    main()
