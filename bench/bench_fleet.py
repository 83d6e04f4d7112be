"""Benchmark: two workers draining the queue in PostgreSQL, N stored images to gate.

Usage: python bench/bench_fleet.py [--images N (300)] [--workers W (2)] [--feeds DIR]
A home is made with the knowledge of bench/data/feeds (every OSV feed, the Debian tracker,
KEV, EPSS) as one snapshot, and the fixture images (.cache/images: app, appliance, minbase)
loaded and gated once (which fills the layer cache, as any image's first gate does). The N
stored images are variants of the three: each is its fixture's manifest with one annotation
more, so it has a digest, a tag and a verdict of its own while its layers (and so its package
set) are the fixture's; each gate reads them from the layer cache, as a re-gate does.

A PostgreSQL server is started for the run (Debian's postgresql, as the tests start it,
tests/postgres.py); the home's stores and the queue are both in it. Timed: ``stella rescan
--queue --all`` (the enqueue of N scan-gate jobs) and the drain: W ``stella worker --burst``
processes started together, until the last exits.
Reported: images per minute over the drain, jobs per worker, each worker's peak RSS (its
VmHWM, written by the worker process itself as it exits), and the mean time of a job in the
first and the last tenth of the drain (by the database's clock): a gate attaches three
referrers to the store, and what that costs grows with the referrers already there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from appliance.fleet.queue import conninfo  # noqa: E402
from appliance.home import Home  # noqa: E402
from appliance.imagestore.catalog import load  # noqa: E402
from appliance.rescan import rescan  # noqa: E402
from bench import figures  # noqa: E402
from bench.bench_rescan import FIXTURES, install, knowledge  # noqa: E402
from bench.figures import Figure  # noqa: E402
from bundles.oci import OCILayout  # noqa: E402

# One worker process with its peak resident set written to a file as it exits.
_WORKER = (
    "import atexit, sys\n"
    "def _hwm(path=sys.argv.pop(1)):\n"
    "    with open('/proc/self/status') as s, open(path, 'w') as out:\n"
    "        out.write(next(l.split()[1] for l in s if l.startswith('VmHWM:')))\n"
    "atexit.register(_hwm)\n"
    "sys.argv[0] = 'stella'\n"
    "from appliance.cli import main\n"
    "main()\n"
)


def variants(home: Home, names: list[str], count: int) -> None:
    """``count`` stored images, each a fixture's manifest with an annotation of its own."""
    layout = OCILayout.open(home.oci)
    tags = layout.tags()
    for n in range(count):
        base = tags[names[n % len(names)]]
        doc = json.loads(layout.get_manifest(base).raw)
        doc["annotations"] = {**doc.get("annotations", {}), "org.stella-ops.bench.variant": str(n)}
        raw = json.dumps(doc, separators=(",", ":")).encode()
        layout.tag(f"fleet/image-{n:05d}:1", layout.put_manifest(raw, base.media_type))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--feeds", type=Path, default=REPO / "bench" / "data" / "feeds")
    args = parser.parse_args()
    from tests.postgres import start_server

    world = knowledge(args.feeds)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            url = server.database()
            # the stores in the queue's database, from the start: a scale-out site's home
            os.environ["STELLA_DATABASE_URL"] = url
            home = Home(Path(tmp) / "home")
            home.init()
            install(home, world, 1)
            names = []
            for fixture in FIXTURES:
                layout = REPO / ".cache" / "images" / fixture / "oci"
                if not layout.is_dir():
                    print(f"fixture image {layout} is missing: run 'make images' first")
                    return 1
                names.append(load(home, f"oci:{layout}", tag=f"{fixture}:1").tag)
            rescan(home, at=datetime.now(UTC), images=names)  # the layer cache
            variants(home, names, args.images)
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "STELLA_DATABASE_URL": url,
                "STELLA_HOME": str(home.root),
            }
            stella = [sys.executable, "-m", "appliance.cli", "--home", str(home.root)]

            t0 = time.perf_counter()
            queued = subprocess.run(
                [*stella, "--json", "rescan", "--queue", "--all"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            t1 = time.perf_counter()
            jobs = json.loads(queued.stdout)["queued"]

            marks = [Path(tmp) / f"hwm-{w}" for w in range(args.workers)]
            worker = ["--home", str(home.root), "worker", "--burst"]
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", _WORKER, str(mark), *worker],
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
                for mark in marks
            ]
            codes = [p.wait() for p in procs]
            t2 = time.perf_counter()
            rss = [int(m.read_text()) * 1024 for m in marks]

            import psycopg

            with psycopg.connect(conninfo(url, home.queue_schema)) as conn:
                states: dict[str, int] = {
                    str(s): int(n)
                    for s, n in conn.execute(
                        "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
                    ).fetchall()
                }
                spans = [
                    float(d)
                    for (d,) in conn.execute(
                        "SELECT extract(epoch FROM finished - started) FROM stella_job_runs "
                        "WHERE outcome = 'gated' ORDER BY started"
                    ).fetchall()
                ]
                per_worker = [
                    int(n)
                    for (n,) in conn.execute(
                        "SELECT count(*) FROM stella_job_runs WHERE outcome = 'gated' "
                        "GROUP BY worker ORDER BY worker"
                    ).fetchall()
                ]
        finally:
            server.stop()

    drain = t2 - t1
    tenth = max(1, len(spans) // 10)
    first, last = sum(spans[:tenth]) / tenth, sum(spans[-tenth:]) / tenth
    per_minute = jobs / drain * 60 if drain > 0 else 0.0
    out: dict[str, Any] = {
        "images": args.images,
        "workers": args.workers,
        "queued": jobs,
        "enqueueSeconds": round(t1 - t0, 2),
        "drainSeconds": round(drain, 1),
        "imagesPerMinute": round(per_minute, 1),
        "jobsPerWorker": per_worker,
        # a job's time grows with what the store holds (every gate attaches referrers)
        "jobSecondsFirstTenth": round(first, 2),
        "jobSecondsLastTenth": round(last, 2),
        "peakRssMiB": [round(r / (1 << 20)) for r in rss],
        "jobStates": states,
        "exitCodes": codes,
    }
    print(
        f"{jobs} images, {args.workers} workers: enqueued in {t1 - t0:.1f} s, drained in "
        f"{drain:.1f} s = {per_minute:.0f} images/minute; jobs per worker {per_worker}; "
        f"a job took {first:.2f} s in the first tenth, {last:.2f} s in the last; "
        f"peak RSS per worker {', '.join(f'{r >> 20} MiB' for r in rss)}"
    )
    print(json.dumps(out))
    ok = states == {"succeeded": jobs} and all(c == 0 for c in codes)
    figures.record(
        "fleet",
        [
            Figure(
                f"queue drain, {jobs:,} stored images, {args.workers} workers "
                "(stores and queue in PostgreSQL)",
                f"{per_minute:,.0f} images/min; peak RSS per worker "
                f"{', '.join(f'{r >> 20} MB' for r in rss)}",
            )
        ],
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
