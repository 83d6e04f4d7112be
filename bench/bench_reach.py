"""Benchmark: symbol-level reachability of a real Go binary (Debian's docker-registry).

Usage: python bench/bench_reach.py [BINARY]
BINARY defaults to /usr/bin/docker-registry (go1.19.8, stripped). Measured: the go-binary
analyzer on the binary (build information, the whole function table, the per-package symbol
sets and the call graph: what a layer's first scan pays, the median of three runs), and the
warm path, the median of five runs: the layer cache's record of the binary decoded (what a
later scan reads instead of the binary) and its packages matched against every Go stdlib
record of bench/data/feeds/go-osv.jsonl.gz, each finding judged against the symbol set and
placed in the call tree. Prints the figures and one JSON line. Target: <= 0.5 s warm; exits 1
when over. Then the Python part (bench/bench_reach_python.py): a program of 1,000+ modules
from real packages, scanned cold and warm (target <= 0.5 s warm).
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
from appliance.match import Inventory, MemoryAdvisories, match, symbols  # noqa: E402
from appliance.scanner import cache  # noqa: E402
from appliance.scanner.analyzers.gobinary import GoBinaryAnalyzer  # noqa: E402
from appliance.scanner.analyzers.interface import AnalyzerInput  # noqa: E402
from appliance.scanner.collect import run_analyzer  # noqa: E402
from appliance.scanner.layers import LayerRecord  # noqa: E402
from appliance.scanner.model import AnalysisResult, Package  # noqa: E402
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402

TARGET_S = 0.5
FEED = REPO / "bench" / "data" / "feeds" / "go-osv.jsonl.gz"


def _analyze(binary: Path) -> tuple[Package, ...]:
    size = binary.stat().st_size
    inp = AnalyzerInput(binary.name, 0o100755, size, lambda: binary.open("rb"))
    return run_analyzer(GoBinaryAnalyzer(), inp).packages


def _median(run: Any, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
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
    cold = _median(lambda: _analyze(args.binary), 3)
    packages = _analyze(args.binary)
    source = MemoryAdvisories(records)
    blob = cache.encode(LayerRecord(results={"bin": {"go-binary": AnalysisResult(packages)}}))

    def warm_path() -> Any:
        for decoded in (symbols._symbol_set, symbols._tree, symbols._reaches):
            decoded.cache_clear()  # what a new process pays: the set and the tree parsed
        cached = cache.decode(blob).results["bin"]["go-binary"].packages
        return match(Inventory.of(cached), source)

    warm_path()  # warm the source's parse caches
    warm = _median(warm_path)
    report = warm_path()
    states = Counter(f.reachable.value for f in report.findings)
    size = sum(len(p.symbols) for p in packages)
    tree = sum(len(p.calls) for p in packages)
    shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    print(f"{args.binary}: analyzer with call graph {cold:.3f} s; symbol set {size:,} bytes;")
    print(f"call tree {tree:,} bytes ({len(blob):,} bytes compressed in the layer cache)")
    print(f"{len(report.findings)} findings ({shown}); cached record + match {warm:.3f} s warm")
    met = warm <= TARGET_S
    figures.record(
        "reach",
        [
            Figure(
                f"{args.binary.name}: function table, symbol sets and call graph (first scan)",
                f"{cold:.1f} s",
            ),
            Figure(
                f"{args.binary.name}: {len(report.findings)} stdlib findings judged by symbol"
                f" and call chain ({shown})",
                f"{warm:.3f} s warm",
                f"≤ {TARGET_S} s",
                met,
            ),
        ],
    )
    print(
        json.dumps(
            {
                "analyzer_s": cold,
                "warm_s": warm,
                "states": states,
                "bytes": size,
                "tree_bytes": tree,
                "cached_bytes": len(blob),
            }
        )
    )
    from bench import bench_reach_python

    python_met = bench_reach_python.main() == 0
    return 0 if met and python_met else 1


if __name__ == "__main__":
    sys.exit(main())
