"""Benchmark: symbol-level reachability of a real Go binary (Debian's docker-registry).

Usage: python bench/bench_reach.py [BINARY]
BINARY defaults to /usr/bin/docker-registry (go1.19.8, stripped). Measured, each the median of
five runs: the go-binary analyzer on the binary (build information, the whole function table,
the per-package symbol sets: what a layer's first scan pays; later scans take it from the layer
cache), and the warm path: matching the binary's packages against every Go stdlib record of
bench/data/feeds/go-osv.jsonl.gz with each finding judged against the symbol set. Prints the
figures and one JSON line. Target: <= 0.5 s warm (the match with its symbol judgements);
exits 1 when over. Then the Python part (bench/bench_reach_python.py): a program of 1,000+
modules from real packages, scanned cold and warm (target <= 0.5 s warm).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from appliance.match import Inventory, MemoryAdvisories, match  # noqa: E402
from appliance.scanner.analyzers.gobinary import GoBinaryAnalyzer  # noqa: E402
from appliance.scanner.analyzers.interface import AnalyzerInput  # noqa: E402
from appliance.scanner.collect import run_analyzer  # noqa: E402
from appliance.scanner.model import Package  # noqa: E402
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402

TARGET_S = 0.5
FEED = REPO / "bench" / "data" / "feeds" / "go-osv.jsonl.gz"


def _analyze(binary: Path) -> tuple[Package, ...]:
    size = binary.stat().st_size
    inp = AnalyzerInput(binary.name, 0o100755, size, lambda: binary.open("rb"))
    return run_analyzer(GoBinaryAnalyzer(), inp).packages


def _median(run: Any) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", nargs="?", type=Path, default=Path("/usr/bin/docker-registry"))
    args = parser.parse_args()
    with gzip.open(FEED) as f:
        records = [
            r
            for r in map(json.loads, f)
            if any(a.get("package", {}).get("name") == "stdlib" for a in r.get("affected", ()))
        ]
    cold = _median(lambda: _analyze(args.binary))
    packages = _analyze(args.binary)
    source = MemoryAdvisories(records)
    inventory = Inventory.of(packages)
    match(inventory, source)  # warm the source's parse caches
    warm = _median(lambda: match(inventory, source))
    report = match(inventory, source)
    states = Counter(f.reachable.value for f in report.findings)
    size = sum(len(p.symbols) for p in packages)
    shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    print(f"{args.binary}: analyzer {cold:.3f} s; symbol set {size:,} bytes")
    print(f"{len(report.findings)} findings ({shown}); match with judgements {warm:.3f} s warm")
    met = warm <= TARGET_S
    figures.record(
        "reach",
        [
            Figure(
                f"{args.binary.name}: function table and symbol sets (first scan)", f"{cold:.2f} s"
            ),
            Figure(
                f"{args.binary.name}: {len(report.findings)} stdlib findings judged by symbol"
                f" ({shown})",
                f"{warm:.3f} s warm",
                f"≤ {TARGET_S} s",
                met,
            ),
        ],
    )
    print(json.dumps({"analyzer_s": cold, "warm_s": warm, "states": states, "bytes": size}))
    from bench import bench_reach_python

    python_met = bench_reach_python.main() == 0
    return 0 if met and python_met else 1


if __name__ == "__main__":
    sys.exit(main())
