"""Benchmark: the knowledge store on PostgreSQL against the embedded SQLite file.

Usage: python bench/bench_postgres.py [FEEDS_DIR]

Syncs the whole feed set (FEEDS_DIR, default bench/data/feeds) into a mirror workspace and
exports a full bundle of it (no images), then times, through the real command lines:

1. ``stella import BUNDLE`` on a fresh embedded home (SQLite files);
2. ``stella import BUNDLE`` on a fresh home with ``STELLA_DATABASE_URL`` pointing at a
   PostgreSQL server started for the run (Debian's server from a temporary ``initdb`` on a
   loopback port, as the tests start it; note: with ``fsync=off``, as the tests run it);
3. ``stella scan`` of the ``app`` fixture image on both homes, its layers already cached
   (the best of 3): what matching an image against the store costs on each backend;
4. ``stella migrate --to URL`` of the embedded home into another database of that server.

Target: the PostgreSQL import takes at most 3x the SQLite one (the store batches its inserts
with COPY). Prints one JSON line at the end and records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import figures  # noqa: E402
from bench.bench_bundle import FEEDS  # noqa: E402
from bench.figures import Figure  # noqa: E402

# The installed programs, run on this tree's code (PYTHONPATH comes first).
STELLA = (str(Path(sys.executable).parent / "stella"),)
MIRROR = (str(Path(sys.executable).parent / "stella-mirror"),)
TARGET_RATIO = 3.0


def _env(env: dict[str, str] | None) -> dict[str, str]:
    return {**(env if env is not None else os.environ), "PYTHONPATH": str(REPO)}


def run(*argv: str | Path, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, env=_env(env)
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed:\n{done.stderr}")
    return json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}


def timed(*argv: str | Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KB) of a command."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(env)
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        sys.exit(f"{' '.join(map(str, argv))} failed: {err}")
    if proc.stderr:
        proc.stderr.close()
    return elapsed, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feeds", nargs="?", type=Path, default=REPO / "bench" / "data" / "feeds")
    args = parser.parse_args()
    feeds = args.feeds.resolve()
    if not (feeds / "pypi-osv.jsonl.gz").exists():
        print(f"no feed data in {feeds}", file=sys.stderr)
        return 1
    from images.build import FixtureMissingError, require_image
    from tests.postgres import start_server

    try:
        fixture = require_image("app")
    except FixtureMissingError as e:
        print(f"not timing scans: {e.message}", file=sys.stderr)
        fixture = None

    with tempfile.TemporaryDirectory(prefix="stella-bench-pg-") as tmp:
        work = Path(tmp)
        server = start_server(work / "postgres")
        try:
            mhome, keys = work / "mirror", work / "keys"
            run(*MIRROR, "--json", "--home", mhome, "keys", "generate", "--out", keys)
            cfg = work / "mirror.toml"
            cfg.write_text(
                "\n".join(
                    f'[[source]]\nname = "{name}"\nkind = "{kind}"\npath = "{feeds / file}"\n'
                    for name, kind, file in FEEDS
                    if (feeds / file).exists()
                )
            )
            run(*MIRROR, "--json", "--home", mhome, "sync", "--config", cfg)
            snap = run(*MIRROR, "--json", "--home", mhome, "snapshot", "build")
            bundle = work / "full.stella.tar.zst"
            run(
                *MIRROR, "--json", "--home", mhome, "export", "--out", bundle,
                "--key", keys / "signing.key", "--snapshot", str(snap["digest"]),
                "--sequence", "1",
            )  # fmt: skip
            trust = keys / "history" / "trust-root.v1.json"
            shown = run(*MIRROR, "--json", "--home", mhome, "snapshot", "show", str(snap["digest"]))
            manifest = shown["manifest"]
            assert isinstance(manifest, dict)
            records = sum(int(d["records"]) for d in manifest["datasets"])

            def home(name: str, env: dict[str, str]) -> Path:
                path = work / name
                run(*STELLA, "--json", "--home", path, "init", env=env)
                run(*STELLA, "--json", "--home", path, "trust", "add", trust, env=env)
                return path

            plain = {k: v for k, v in os.environ.items() if k != "STELLA_DATABASE_URL"}
            embedded = home("embedded", plain)
            sqlite_s, sqlite_rss = timed(*STELLA, "--home", embedded, "import", bundle, env=plain)
            url = server.database()
            on_pg = {**plain, "STELLA_DATABASE_URL": url}
            scaled = home("scaled", on_pg)
            pg_s, pg_rss = timed(*STELLA, "--home", scaled, "import", bundle, env=on_pg)
            scans: dict[str, float] = {}
            if fixture is not None:
                ref = f"oci:{fixture.layout}"
                for name, path, env in (("sqlite", embedded, plain), ("postgres", scaled, on_pg)):
                    run(*STELLA, "--json", "--home", path, "scan", ref, env=env)  # fill the cache
                    scans[name] = min(
                        timed(*STELLA, "--json", "--home", path, "scan", ref, env=env)[0]
                        for _ in range(3)
                    )
            target = server.database()
            migrate_s, _ = timed(*STELLA, "--home", embedded, "migrate", "--to", target, env=plain)
        finally:
            server.stop()
    ratio = pg_s / sqlite_s
    met = ratio <= TARGET_RATIO
    what = f"import of the whole feed set ({records:,} records)" if records else "import"
    figures.record(
        "postgres",
        [
            Figure(f"{what}, SQLite", f"{sqlite_s:.1f} s, {sqlite_rss // 1024} MB"),
            Figure(
                f"{what}, PostgreSQL",
                f"{pg_s:.1f} s ({ratio:.1f}× SQLite), {pg_rss // 1024} MB",
                f"≤ {TARGET_RATIO:.0f}× SQLite",
                met,
            ),
            *(
                [
                    Figure(
                        "stella scan of the app image against that store (layers cached), "
                        "SQLite / PostgreSQL",
                        f"{scans['sqlite']:.2f} s / {scans['postgres']:.2f} s",
                    )
                ]
                if scans
                else []
            ),
            Figure("stella migrate of that home into PostgreSQL", f"{migrate_s:.1f} s"),
        ],
    )
    print(
        json.dumps(
            {
                "records": records,
                "sqlite_s": round(sqlite_s, 2),
                "sqlite_rss_mb": sqlite_rss // 1024,
                "postgres_s": round(pg_s, 2),
                "postgres_rss_mb": pg_rss // 1024,
                "ratio": round(ratio, 2),
                "migrate_s": round(migrate_s, 2),
                "scan_s": {k: round(v, 2) for k, v in scans.items()},
            }
        )
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
