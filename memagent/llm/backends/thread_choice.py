"""How many threads generate: chosen by measuring, a few tokens at a time.

On a quiet 2-CPU machine two generating threads are 1.55x faster than one (SmolLM2: 59 against 38 tokens a second).
But llama.cpp's threads wait for each other after every operation of every layer, so when other work holds one of
the CPUs two threads can be many times slower than one (measured here: 4 against 13 tokens a second with two other
busy processes; one first reply took 15 s instead of 2). Neither choice is right on every machine and at every
moment, so the embedded backend times every batch it generates, keeps a moving average of the time per token for
each choice, and decides again after every ``SEGMENT_TOKENS`` tokens, in the middle of a reply too: it generates with
the faster choice, and every ``RETRY_EVERY`` segments tries the other once more, in case the machine's load changed.
A try that is ``GIVE_UP`` times slower than the faster choice ends after its first batch, so a busy machine pays for
one slow batch, not for a whole reply.

The first choice is used until the first try (``RETRY_EVERY`` segments in: on SmolLM2 in the second reply), so a
new agent's first reply runs on it whole: the embedded backend puts two threads first (starting with one thread
made a new agent's first reply ~0.3 s slower on a quiet machine), and tries one thread then.

Trying is not free on a busy machine: one batch of two threads took up to 2 s there. So before each segment, and
before a prompt is evaluated, ``OtherLoad`` reads how many CPUs other processes kept busy since the last look
(Linux's /proc/stat, less this process's own CPU time): when they and the most threads would not fit on the CPUs,
the fewest threads generate, and nothing is tried until the others are done.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

SEGMENT_TOKENS = 8  # generated tokens measured together before the choice is made again
RETRY_EVERY = 8  # segments between tries of the choice that was slower
GIVE_UP = 2.0  # a try this many times slower per token than the faster choice ends after one batch
WEIGHT = 0.5  # of a new measurement in the moving average
MIN_WINDOW = 0.1  # seconds: a shorter look at the other processes' load keeps the last one


class OtherLoad:
    """CPUs that other processes kept busy since the last call, from /proc/stat's CPU times less this process's own
    (steal time counts as busy: a virtual machine's neighbours take the CPU as surely). None where it can't be read."""

    def __init__(
        self,
        stat: Path = Path("/proc/stat"),
        clock: Callable[[], float] = time.monotonic,
        own: Callable[[], float] = time.process_time,
        ticks_per_second: float | None = None,
    ) -> None:
        self._stat, self._clock, self._own = stat, clock, own
        self._hz = ticks_per_second or _clock_ticks()
        self._last = self._read()
        self._load: float | None = None

    def _read(self) -> tuple[float, float, float] | None:
        """(wall seconds, busy CPU seconds of every process, this process's CPU seconds), or None."""
        try:
            fields = self._stat.read_text().split("\n", 1)[0].split()
            # cpu user nice system idle iowait irq softirq steal ...
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        except (OSError, ValueError):
            return None
        busy = (user + nice + system + irq + softirq + steal) / self._hz
        return self._clock(), busy, self._own()

    def __call__(self) -> float | None:
        now = self._read()
        if now is None or self._last is None:
            self._last = now
            return None
        wall = now[0] - self._last[0]
        if wall >= MIN_WINDOW:
            others = (now[1] - self._last[1]) - (now[2] - self._last[2])
            self._load = max(others / wall, 0.0)
            self._last = now
        return self._load


def _clock_ticks() -> float:
    """The unit of /proc/stat's times (USER_HZ: 100 on nearly every Linux)."""
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


class ThreadChoice:
    def __init__(
        self, choices: tuple[int, ...], *, others: Callable[[], float | None] | None = None, cpus: int = 1
    ) -> None:
        self.choices = tuple(dict.fromkeys(choices))  # the first is tried first
        self.seconds_per_token: dict[int, float] = {}
        self.current = self.choices[0]
        self._others, self._cpus = others, cpus
        self._spent, self._made = 0.0, 0  # the current choice's segment so far: seconds and tokens
        self._segments = 0

    def start(self) -> int:
        """The thread count for a call's prompt and first tokens: the fewest while other processes hold CPUs, else the
        best (``_best``), never a try of the slower one."""
        self.current = self._contended() or self._best()
        return self.current

    def batch(self, seconds: float, tokens: int) -> int:
        """The current choice generated ``tokens`` (drafts kept included) in a batch of ``seconds``: returns the thread
        count for the next batch (the current one until its segment is measured)."""
        self._spent += seconds
        self._made += tokens
        if self._made >= SEGMENT_TOKENS or self._given_up():
            self._record(self.current, self._spent, self._made)
            self._spent, self._made = 0.0, 0
            self._segments += 1
            self.current = self._next()
        return self.current

    def _given_up(self) -> bool:
        """Whether the current choice is a try of the slower one that is going badly."""
        others = [s for n, s in self.seconds_per_token.items() if n != self.current]
        return bool(others) and self._made > 0 and self._spent / self._made > GIVE_UP * min(others)

    def _next(self) -> int:
        contended = self._contended()
        if contended:
            return contended
        best = self._best()
        others = [n for n in self.choices if n != best]
        if others and self._segments % RETRY_EVERY == 0:  # time to try another: one not measured yet, else the next
            untried = [n for n in others if n not in self.seconds_per_token]
            return (untried or sorted(others, key=self.seconds_per_token.__getitem__))[0]
        return best

    def _best(self) -> int:
        """The fastest measured choice; the first choice until it is measured (not only the fewest threads, while
        other processes held the CPUs)."""
        if self.choices[0] not in self.seconds_per_token:
            return self.choices[0]
        known = [n for n in self.choices if n in self.seconds_per_token]
        return min(known, key=self.seconds_per_token.__getitem__)

    def _contended(self) -> int | None:
        """The fewest threads if other processes' load and the most threads don't fit on the CPUs, else None."""
        load = self._others() if self._others is not None else None
        if load is not None and len(self.choices) > 1 and load + max(self.choices) > self._cpus + 0.5:
            return min(self.choices)
        return None

    def _record(self, threads: int, seconds: float, tokens: int) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        measured = seconds / tokens
        before = self.seconds_per_token.get(threads)
        self.seconds_per_token[threads] = measured if before is None else before + WEIGHT * (measured - before)
