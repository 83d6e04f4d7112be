"""Benchmark: match 1,000 components against the full knowledge set of bench/data/feeds.

Usage: python bench/bench_match.py [FEEDS_DIR] [--no-store]
FEEDS_DIR defaults to bench/data/feeds (shipped with the repository). The feeds are
normalized by the mirror's parsers, indexed in memory and loaded into a knowledge.db (not
timed; ``--no-store`` skips the database). An inventory of 1,000 components (PyPI, Go, npm,
RubyGems from the records' own packages, and Debian 11 source packages from the DSA/DLA
lists; versions taken from the records' events so the ranges are really compared) is matched
against each, cold (empty parse caches and, for the store, a new connection and a fresh
source, as each scan has; the median of five such runs) and warm.
Prints components/s and one JSON line. Target: <= 0.3 s for the 1,000 components, cold,
checked on the process's CPU time (wall time on a shared machine also counts other
processes) for the product path, ``match_inventory`` over the knowledge.db, and for the
in-memory index; exits 1 when either is over.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from appliance.match import Inventory, MemoryAdvisories, match  # noqa: E402
from appliance.match.model import FindingsReport  # noqa: E402
from appliance.match.service import match_inventory  # noqa: E402
from appliance.scanner.model import OSInfo, Package, PackageType  # noqa: E402
from appliance.store.knowledge import KnowledgeStore, install_snapshot  # noqa: E402
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from bundles.snapshot import DatasetType, build_dataset  # noqa: E402
from mirror.config import SourceKind  # noqa: E402
from mirror.inputs import unpack  # noqa: E402
from mirror.sources import source_for  # noqa: E402

FILES = (
    (SourceKind.OSV, "pypi-osv.jsonl.gz"),
    (SourceKind.OSV, "go-osv.jsonl.gz"),
    (SourceKind.OSV, "rustsec-osv.jsonl.gz"),
    (SourceKind.DEBIAN_TRACKER, "debian-security-tracker.tar.gz"),
    (SourceKind.ALPINE_SECDB, "alpine-secdb.tar.gz"),
    (SourceKind.RUBYSEC, "rubysec.tar.gz"),
    (SourceKind.NPM_LEGACY, "npm-nodejs-security-wg.jsonl.gz"),
)
TABLES = ((SourceKind.KEV, "kev.tar.gz"), (SourceKind.EPSS, "epss.tar.gz"))
TYPES = {
    "PyPI": PackageType.PYPI,
    "Go": PackageType.GOLANG,
    "npm": PackageType.NPM,
    "RubyGems": PackageType.GEM,
}
COMPONENTS = 1000
COLD_ROUNDS = 5
TARGET = 0.3


def records(feeds: Path, kind: SourceKind, name: str) -> list[dict[str, Any]]:
    members = unpack(name, (feeds / name).read_bytes(), limit=8 << 30)
    return source_for(kind).parse(members).records


def candidate_version(entry: dict[str, Any]) -> str | None:
    for rng in entry.get("ranges") or ():
        if rng.get("type") == "GIT":
            continue
        for event in rng.get("events", ()):
            for kind in ("fixed", "introduced", "last_affected"):
                if event.get(kind) not in (None, "0"):
                    return str(event[kind])
    for v in entry.get("versions") or ():
        return str(v)
    return None


def inventory(osv: list[dict[str, Any]], rng: random.Random) -> Inventory:
    pool: dict[tuple[str, str], str] = {}
    for rec in osv:
        for entry in rec.get("affected") or ():
            pkg = entry.get("package") or {}
            eco, name = pkg.get("ecosystem"), pkg.get("name")
            version = candidate_version(entry)
            if (
                version
                and isinstance(eco, str)
                and isinstance(name, str)
                and (eco in TYPES or eco == "Debian:11")
            ):
                pool.setdefault((eco, name), version)
    keys = sorted(pool)
    chosen = rng.sample(keys, COMPONENTS)
    packages = []
    for eco, name in chosen:
        version = pool[(eco, name)]
        if eco == "Debian:11":
            packages.append(
                Package(
                    PackageType.DEB, f"lib{name}", version, source_name=name, source_version=version
                )
            )
        else:
            packages.append(Package(TYPES[eco], name, version))
    return Inventory.of(packages, OSInfo("debian", "11", "bullseye"))


def build_store(
    path: Path, osv: list[dict[str, Any]], kev: list[dict[str, Any]], epss: list[dict[str, Any]]
) -> KnowledgeStore:
    """A knowledge.db holding one active snapshot of the same records (as an import does)."""
    store = KnowledgeStore.open(path)
    datasets = [
        build_dataset(name, dtype, {str(r["id"]): r for r in recs}.values())
        for name, dtype, recs in (
            ("osv", DatasetType.OSV, osv),
            ("kev", DatasetType.KEV, kev),
            ("epss", DatasetType.EPSS, epss),
        )
    ]
    install_snapshot(store, datasets, sequence=1, channel="bench", created="2026-01-01T00:00:00Z")
    return store


def timed(run: Callable[[], FindingsReport], cold_state: Callable[[], None]) -> dict[str, Any]:
    """:data:`COLD_ROUNDS` cold runs, each from a cold state (``cold_state``: empty parse
    caches and, for the store, a new connection), then three warm runs. One run on this
    shared two-core machine swings by a third either way; the median cold run is the figure.
    """
    cold_wall: list[float] = []
    cold_cpu: list[float] = []
    for _ in range(COLD_ROUNDS):
        cold_state()
        t1, c1 = time.perf_counter(), time.process_time()
        cold = run()
        cold_wall.append(time.perf_counter() - t1)
        cold_cpu.append(time.process_time() - c1)
    warm = []
    for _ in range(3):
        t2 = time.perf_counter()
        run()
        warm.append(time.perf_counter() - t2)
    cold_s = statistics.median(cold_wall)
    return {
        "findings": len(cold.findings),
        "unknowns": len(cold.unknowns),
        "cold_s": round(cold_s, 4),
        "cold_cpu_s": round(statistics.median(cold_cpu), 4),
        "cold_cpu_range_s": [round(min(cold_cpu), 4), round(max(cold_cpu), 4)],
        "warm_s": round(min(warm), 4),
        "components_per_s": round(COMPONENTS / cold_s),
    }


def clear_caches() -> None:
    """Empty every memo of the project's modules (version parses, prepared ranges, ...), so
    the next run is as cold as the first."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("appliance", "bundles"):
            for value in vars(module).values():
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feeds", nargs="?", type=Path, default=REPO / "bench" / "data" / "feeds")
    parser.add_argument("--no-store", action="store_true", help="skip the knowledge.db run")
    args = parser.parse_args()
    t0 = time.perf_counter()
    osv = [r for kind, name in FILES for r in records(args.feeds, kind, name)]
    kev = records(args.feeds, *TABLES[0])
    epss = records(args.feeds, *TABLES[1])
    source = MemoryAdvisories(osv, kev=kev, epss=epss, snapshot="sha256:" + "0" * 64)
    inv = inventory(osv, random.Random(20260101))
    with tempfile.TemporaryDirectory() as tmp:
        store = None if args.no_store else build_store(Path(tmp) / "knowledge.db", osv, kev, epss)
        # The loaded knowledge is long-lived: keep the collector from re-walking its millions
        # of objects during the timed runs (what a resident service does after loading).
        gc.collect()
        gc.freeze()
        load = time.perf_counter() - t0
        print(
            f"knowledge: {len(osv)} OSV records, {len(kev)} KEV, {len(epss)} EPSS "
            f"(loaded{'' if store is None else ' and stored'} in {load:.1f} s, not timed)"
        )
        results = {"memory": timed(lambda: match(inv, source), clear_caches)}
        if store is not None:
            path = Path(store.db.where)
            store.close()
            opened: list[KnowledgeStore] = []

            def reopen() -> None:
                clear_caches()
                while opened:
                    opened.pop().close()
                opened.append(KnowledgeStore.open(path))

            # the real path: match_inventory over the store (a fresh source, as each scan has)
            results["knowledge.db"] = timed(lambda: match_inventory(opened[-1], inv), reopen)
            opened.pop().close()
    for name, r in results.items():
        print(
            f"{name}: {COMPONENTS} components, {r['findings']} findings, {r['unknowns']} unknowns; "
            f"cold (median of {COLD_ROUNDS}) {r['cold_s']:.3f} s wall, {r['cold_cpu_s']:.3f} s CPU "
            f"[{r['cold_cpu_range_s'][0]:.3f}-{r['cold_cpu_range_s'][1]:.3f}] "
            f"({r['components_per_s']:,} components/s); warm {r['warm_s']:.3f} s"
        )
    print(
        json.dumps({"components": COMPONENTS, "records": len(osv), "target_s": TARGET, **results})
    )
    figures.record(
        "match",
        [
            Figure(
                f"match {COMPONENTS:,} components ({name}; {len(osv):,} records)",
                f"{r['cold_cpu_s']:.2f} s CPU",
                f"≤ {TARGET} s",
                r["cold_cpu_s"] <= TARGET,
            )
            for name, r in results.items()
        ],
    )
    # CPU time decides: on a shared machine wall time also counts other processes' turns.
    over = [name for name, r in results.items() if r["cold_cpu_s"] > TARGET]
    for name in over:
        print(
            f"bench_match: {name} cold {results[name]['cold_cpu_s']:.3f} s CPU is over the "
            f"{TARGET} s target",
            file=sys.stderr,
        )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
