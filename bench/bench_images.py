"""Benchmark: ``stella-mirror images add`` vs ``skopeo copy`` of the same ~100 MB image.

Starts Debian's ``docker-registry`` on loopback, builds a four-layer image of pseudo-random
(incompressible) bytes, pushes it with skopeo, then times, alternately and into fresh
directories, ``stella-mirror images add`` (into a fresh workspace) and ``skopeo copy`` from the
registry into an OCI layout. Prints the medians and their ratio (target: <= 1.2).

    .venv/bin/python bench/bench_images.py [--size-mb 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import shutil
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
from bundles.oci import OCILayout  # noqa: E402
from tests.mirror.registry_fixture import DockerRegistry, build_image, clean_env  # noqa: E402

TARGET = 1.2


def pseudo_random(seed: bytes, size: int) -> bytes:
    """Incompressible bytes, fast and reproducible (SHAKE-256 in 1 MiB blocks)."""
    block = 1 << 20
    return b"".join(
        hashlib.shake_256(seed + i.to_bytes(4, "big")).digest(block) for i in range(size // block)
    )


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    mirror_bin = shutil.which("stella-mirror", path=str(Path(sys.executable).parent))
    # As an installed package is: byte-compiled (a working tree under
    # PYTHONDONTWRITEBYTECODE would otherwise compile every edited module on every run).
    for package in ("bundles", "mirror"):
        compileall.compile_dir(ROOT / package, quiet=1)
    if mirror_bin is None:
        raise SystemExit("stella-mirror is not installed next to this python")
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        work = Path(tmp)
        layout = OCILayout.init(work / "src")
        per_layer = args.size_mb // 4 << 20
        layers = [{f"data/{i}.bin": pseudo_random(b"layer%d" % i, per_layer)} for i in range(4)]
        build_start = time.perf_counter()
        layout.tag("bench", build_image(layout, layers, level=1))
        print(f"built a {args.size_mb} MB image in {time.perf_counter() - build_start:.1f}s")
        with DockerRegistry(work / "registry") as reg:
            reg.skopeo_copy(layout.path, "bench", "bench/big:1")
            ref = f"{reg.host}/bench/big:1"
            ours: list[float] = []
            theirs: list[float] = []
            startup = statistics.median(
                timed([mirror_bin, "images", "add", "--help"]) for _ in range(3)
            )
            for n in range(-1, args.rounds):  # round -1 warms caches and is not counted
                home = work / f"home{n}"
                mine = timed([mirror_bin, "--home", str(home), "images", "add", ref])
                dest = work / f"skopeo{n}"
                other = timed(
                    [
                        "skopeo",
                        "--insecure-policy",
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"oci:{dest}:bench",
                    ]
                )
                shutil.rmtree(home)
                shutil.rmtree(dest)
                if n < 0:
                    continue
                ours.append(mine)
                theirs.append(other)
                print(f"round {n + 1}: stella-mirror {mine:.2f}s, skopeo {other:.2f}s")
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"median: stella-mirror images add {a:.2f}s, skopeo copy {b:.2f}s")
    print(f"ratio stella-mirror/skopeo = {a / b:.2f} (target <= {TARGET})")
    print(
        f"of which start-up and imports (images add --help): {startup:.2f}s; "
        f"ratio without it = {(a - startup) / b:.2f}"
    )
    figures.record(
        "images",
        [
            Figure(
                f"`images add` vs `skopeo copy` ({args.size_mb} MB, loopback)",
                f"{a / b:.2f} × ({a:.2f} s vs {b:.2f} s; start-up {startup:.2f} s)",
                f"≤ {TARGET} ×",
                a / b <= TARGET,
            )
        ],
    )
    if a / b > TARGET:
        print(f"bench_images: ratio {a / b:.2f} is over the {TARGET} target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
