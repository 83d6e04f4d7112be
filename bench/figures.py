"""The figures the benchmarks measured, and the README's table made from them.

Each benchmark ends with :func:`record`: its figures (what, the figure, the target, whether the
target was met) go to ``bench/results/NAME.json``. ``make bench`` then runs this file, which
rewrites the table between the ``figures`` markers in README.md from every result file, in a
fixed order, with the missed targets listed under it. The result files are committed with the
README, so the table always says what the last run on this kind of machine measured;
``python bench/figures.py --check`` (run by the tests) fails when the two differ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]
RESULTS: Final = REPO / "bench" / "results"
README: Final = REPO / "README.md"
BEGIN: Final = "<!-- figures:begin (made by bench/figures.py from bench/results; do not edit) -->"
END: Final = "<!-- figures:end -->"
#: The order of the benchmarks in the table; a result file not named here comes last.
ORDER: Final = (
    "snapshot",
    "bundle",
    "scan",
    "match",
    "gate",
    "images",
    "serve",
    "tui",
    "hostile",
    "postgres",
    "fleet",
)


@dataclass(frozen=True, slots=True)
class Figure:
    what: str  # "whole feed set (388,265 records) into a snapshot"
    figure: str  # "7.2 s, 368 MB"
    target: str = "—"  # "≤ 20 s, ≤ 500 MB"
    met: bool | None = None  # None: no target


def record(bench: str, figures: list[Figure]) -> Path:
    """Write one benchmark's figures (call it after they are measured, pass or miss)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}.json"
    document = {
        "bench": bench,
        "measured": datetime.now(UTC).date().isoformat(),
        "cores": os.cpu_count(),
        "figures": [asdict(f) for f in figures],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path


def _results() -> list[dict[str, object]]:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    rank = {name: n for n, name in enumerate(ORDER)}
    return [found[k] for k in sorted(found, key=lambda k: (rank.get(k, len(ORDER)), k))]


def render() -> str:
    """The README section: the table, then the targets missed."""
    rows = ["| what | figure | target |", "| --- | --- | --- |"]
    missed: list[str] = []
    dates: set[str] = set()
    for result in _results():
        dates.add(str(result["measured"]))
        for raw in result["figures"]:  # type: ignore[attr-defined]
            f = Figure(**raw)
            mark = " (missed)" if f.met is False else ""
            rows.append(f"| {f.what} | {f.figure} | {f.target}{mark} |")
            if f.met is False:
                missed.append(f"{f.what} ({f.figure}; target {f.target})")
    lines = [BEGIN, *rows, ""]
    when = ", ".join(sorted(dates)) or "never"
    lines.append(f"Measured {when} by `make bench`.")
    if missed:
        lines.append(f"Targets missed ({len(missed)}): " + "; ".join(missed) + ".")
    else:
        lines.append("Every target was met.")
    lines.append(END)
    return "\n".join(lines)


def updated(text: str) -> str:
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"{README}: the figures markers are missing")
    return text[:start] + render() + text[stop + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print("README.md's figures differ from bench/results: run bench/figures.py")
            return 1
        return 0
    if new != text:
        README.write_text(new)
        print(f"updated the figures in {README.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
