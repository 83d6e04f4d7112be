"""Benchmark: the whole feed set (bench/data/feeds) synced from local paths into one snapshot.

Usage: python bench/bench_snapshot.py [FEEDS_DIR] [--keep DIR]
FEEDS_DIR defaults to bench/data/feeds (shipped with the repository); the GitHub advisories
and CVE records come from bench/data/ghsa and bench/data/cve (real records, see
bench/data/SOURCES.md) and go through the same sync and build. Prints wall time, records
normalized per second and peak RSS (resource.getrusage ru_maxrss), each also per 400k
records, and one JSON line at the end. Target (2 cores): at most 20 s and 500 MB per 400k
records; a miss exits 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from mirror.config import MirrorConfig, SourceConfig, SourceKind  # noqa: E402
from mirror.sync import build_snapshot, sync  # noqa: E402
from mirror.workspace import Workspace  # noqa: E402

FILES = (
    ("osv-pypi", SourceKind.OSV, "pypi-osv.jsonl.gz"),
    ("osv-go", SourceKind.OSV, "go-osv.jsonl.gz"),
    ("osv-crates", SourceKind.OSV, "rustsec-osv.jsonl.gz"),
    ("debian", SourceKind.DEBIAN_TRACKER, "debian-security-tracker.tar.gz"),
    ("alpine", SourceKind.ALPINE_SECDB, "alpine-secdb.tar.gz"),
    ("kev", SourceKind.KEV, "kev.tar.gz"),
    ("epss", SourceKind.EPSS, "epss.tar.gz"),
    ("rubysec", SourceKind.RUBYSEC, "rubysec.tar.gz"),
    ("npm-legacy", SourceKind.NPM_LEGACY, "npm-nodejs-security-wg.jsonl.gz"),
)
#: Feeds shipped with the bench itself (bench/data), whatever FEEDS_DIR is.
BENCH_DATA = REPO / "bench" / "data"
OWN = (
    ("ghsa", SourceKind.GHSA, BENCH_DATA / "ghsa"),
    ("cve", SourceKind.CVE, BENCH_DATA / "cve"),
)
PER = 400_000
TARGET_SECONDS = 20.0
TARGET_MB = 500.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feeds", nargs="?", type=Path, default=REPO / "bench" / "data" / "feeds")
    parser.add_argument("--keep", type=Path, help="workspace directory to keep (default: temp)")
    args = parser.parse_args()
    feeds: Path = args.feeds.resolve()
    sources = tuple(
        SourceConfig(name=name, kind=kind, path=feeds / file)
        for name, kind, file in FILES
        if (feeds / file).exists()
    ) + tuple(SourceConfig(name=name, kind=kind, path=path) for name, kind, path in OWN)
    if not sources:
        print(f"no feed files in {feeds}", file=sys.stderr)
        return 1
    config = MirrorConfig(path=feeds / "bench.toml", sources=sources)
    with tempfile.TemporaryDirectory(prefix="stella-bench-") as tmp:
        ws = Workspace(args.keep or Path(tmp))
        started = time.perf_counter()
        outcomes = sync(config, ws)
        synced = time.perf_counter()
        result = build_snapshot(ws)
        done = time.perf_counter()
    records = sum(d.records for d in result.manifest.datasets)
    unknowns = result.manifest.unknowns
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for o in outcomes:
        print(
            f"  {o.name:12} {o.status.value:9} {o.records or 0:>8} records "
            f"{o.unknowns or 0:>5} unknowns"
        )
    total = done - started
    scale = PER / records if records else 0.0
    per_seconds, per_mb = total * scale, peak_mb * scale
    print(f"snapshot {result.digest}")
    print(
        f"per {PER:,} records: {per_seconds:.2f} s (target {TARGET_SECONDS:.0f} s), "
        f"{per_mb:.0f} MB peak RSS (target {TARGET_MB:.0f} MB)"
    )
    print(
        f"{records} records ({unknowns} unknowns) in {total:.2f} s "
        f"(sync {synced - started:.2f} s, build {done - synced:.2f} s): "
        f"{records / total:,.0f} records/s, peak RSS {peak_mb:.0f} MB"
    )
    print(
        json.dumps(
            {
                "records": records,
                "unknowns": unknowns,
                "seconds": round(total, 3),
                "records_per_second": round(records / total),
                "peak_rss_mb": round(peak_mb),
                "seconds_per_400k": round(per_seconds, 3),
                "peak_mb_per_400k": round(per_mb),
                "snapshot": str(result.digest),
            }
        )
    )
    failed = [o.name for o in outcomes if o.error]
    missed = per_seconds > TARGET_SECONDS or per_mb > TARGET_MB
    figures.record(
        "snapshot",
        [
            Figure(
                f"whole feed set with GHSA and CVE ({records:,} records) into a snapshot",
                f"{total:.1f} s, {peak_mb:.0f} MB ({per_seconds:.1f} s, {per_mb:.0f} MB "
                f"per {PER:,} records)",
                f"≤ {TARGET_SECONDS:.0f} s, ≤ {TARGET_MB:.0f} MB per {PER:,} records",
                not missed and not failed,
            )
        ],
    )
    if missed:
        print("target missed", file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
