"""`python -m bench.instructions [--service consent|flow_executor]`: machine
instructions per message of a service's intake, counted by valgrind's callgrind.

Time on a shared machine moves with whatever else runs (CPU seconds per 1,000 messages of
the same code varied by a third between runs here); an instruction count does not. This
runs `python -m bench.intake` under callgrind twice, with one round of `--messages` and
with three, and divides the difference by the messages of the two extra rounds, so
start-up, imports and the warm-up pass cancel out. Two counts of the same code agreed
within 0.5 %. PostgreSQL runs in its own process and is not counted: compare its CPU
with `bench.intake`. Needs `valgrind` (Debian package); each count takes minutes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def count(service: str, messages: int, rounds: int, unmatched: int = 0) -> int:
    """callgrind's total instruction count of one `bench.intake` run."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.intake",
                "--service",
                service,
                "--messages",
                str(messages),
                "--rounds",
                str(rounds),
                "--unmatched",
                str(unmatched),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no summary")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--service", choices=["flow_executor", "consent"], default="consent")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--unmatched", type=int, default=0, help="see bench.intake")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    one = count(args.service, args.messages, 1, args.unmatched)
    three = count(args.service, args.messages, 3, args.unmatched)
    per = (three - one) / (2 * args.messages)
    print(f"{args.service}: {per:,.0f} instructions per message")


if __name__ == "__main__":
    main()
