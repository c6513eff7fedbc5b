"""Start-up of the CLI against a bare ``import click``, side by side and interleaved.

    .venv/bin/python bench/cli_start.py [ROUNDS]

Each round runs, in turn: ``python -c 'import click'``, ``reconciler --help``,
``reconciler --version`` and ``reconciler version`` (fresh processes, output discarded), so the
machine's load hits each alike. Prints the median wall time of each and its ratio to the bare
``import click`` (issue #18's target: --help and --version at most 2x). Not a timed test.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CASES: list[tuple[str, list[str]]] = [
    ("import click", [sys.executable, "-c", "import click"]),
    ("reconciler --help", [str(BIN / "reconciler"), "--help"]),
    ("reconciler --version", [str(BIN / "reconciler"), "--version"]),
    ("reconciler version", [str(BIN / "reconciler"), "version"]),
]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    times: dict[str, list[float]] = {name: [] for name, _ in CASES}
    for _name, argv in CASES:  # warm the page cache and .pyc files once
        timed(argv)
    for _ in range(rounds):
        for name, argv in CASES:
            times[name].append(timed(argv))
    base = statistics.median(times["import click"])
    print(f"{rounds} interleaved rounds, median wall time")
    for name, _ in CASES:
        median = statistics.median(times[name])
        print(f"  {name:24} {median * 1000:7.0f} ms  {median / base:5.2f}x import click")


if __name__ == "__main__":
    main()
