"""`python -m bench.stacks FILE [--top N] [--match TEXT] [--under FUNCTION]`: where the
samples of one py-spy collapsed-stacks file (`python -m bench --stacks`) go, per
function: its own samples (the frame on top) and its inclusive samples (anywhere on the
stack, counted once per stack), as shares of all samples, or of those under `--under`.
`--match` keeps functions whose name or file contains TEXT."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def tally(lines: list[str], under: str = "") -> tuple[Counter[str], Counter[str], int]:
    """Own and inclusive samples per frame, and the total; with `under`, only the
    frames called (at any depth) from the first frame containing it."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if under:
            at = next((i for i, f in enumerate(frames) if under in f), None)
            if at is None:
                continue
            frames = frames[at:]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return own, inclusive, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="")
    parser.add_argument("--under", default="", help="only what runs under this function")
    parser.add_argument("--inclusive", action="store_true", help="sort by inclusive share")
    args = parser.parse_args()
    own, inclusive, total = tally(Path(args.file).read_text().splitlines(), args.under)
    ranked = inclusive if args.inclusive else own
    shown = [f for f, _ in ranked.most_common() if args.match in f][: args.top]
    print(f"{total} samples")
    print(f"{'own %':>6} {'incl %':>6}  function")
    for frame in shown:
        print(f"{100 * own[frame] / total:6.1f} {100 * inclusive[frame] / total:6.1f}  {frame}")


if __name__ == "__main__":
    main()
