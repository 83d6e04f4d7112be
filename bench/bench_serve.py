"""Benchmark: ``stella serve`` pull throughput with skopeo as the client.

Usage: python bench/bench_serve.py [--image-mb N] [--runs R]

Builds an appliance home holding one image of N MB (default 256) of incompressible gzip
layers, starts the real ``stella serve`` command on a free loopback port, and times
``skopeo copy docker://127.0.0.1:PORT/app:1 oci:DIR:app`` (the best of R runs, default 3,
each into a fresh directory). For scale it times the same pull from Debian's docker-registry
(distribution 2.8, Go) holding the same image, and a plain read of the blobs (the disk and
page-cache limit). Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from bundles.oci import OCILayout  # noqa: E402
from tests.mirror.registry_fixture import (  # noqa: E402
    DockerRegistry,
    build_image,
    clean_env,
    free_port,
)

BIN = Path(sys.executable).parent


def _stella(home: Path, *argv: str) -> list[str]:
    return [str(BIN / "stella"), "--home", str(home), *argv]


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"stella serve exited early with {proc.returncode}")
        try:
            if requests.get(url, timeout=1, proxies={"http": "", "https": ""}).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit("stella serve did not answer within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        home = work / "home"
        subprocess.run(_stella(home, "init"), check=True, capture_output=True, env=clean_env())
        layout = OCILayout.init(home / "oci", exist_ok=True)
        per_layer = 32 << 20
        layers = [
            {f"data/{i}.bin": os.urandom(min(per_layer, (args.image_mb << 20) - i * per_layer))}
            for i in range(max(1, (args.image_mb << 20) // per_layer))
        ]
        layout.tag("app:1", build_image(layout, layers, level=1))
        blob_bytes = sum(p.stat().st_size for p in (layout.path / "blobs" / "sha256").iterdir())

        port = free_port()
        proc = subprocess.Popen(
            _stella(home, "serve", "--listen", f"127.0.0.1:{port}"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_env(),
        )
        _wait(f"http://127.0.0.1:{port}/v2/", proc)

        start = time.perf_counter()
        for path in (layout.path / "blobs" / "sha256").iterdir():
            with open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass
        cat_seconds = time.perf_counter() - start

        def pull(host: str) -> list[float]:
            times = []
            for run in range(args.runs):
                out = work / f"pulled-{run}"
                start = time.perf_counter()
                subprocess.run(
                    [
                        "skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                        f"docker://{host}/app:1", f"oci:{out}:app",
                    ],
                    check=True, env=clean_env(), timeout=600,
                )  # fmt: skip
                times.append(time.perf_counter() - start)
                shutil.rmtree(out)
            return times

        times = pull(f"127.0.0.1:{port}")
        with DockerRegistry(work / "registry") as registry:
            registry.skopeo_copy(layout.path, "app:1", "app:1")
            reference = pull(registry.host)
        mb = blob_bytes / 1e6
        best, best_ref = min(times), min(reference)
        result = {
            "bench": "serve",
            "client": "skopeo copy docker:// -> oci:",
            "imageMB": round(mb, 1),
            "pullSeconds": [round(t, 3) for t in times],
            "pullMBps": round(mb / best, 1),
            "dockerRegistryMBps": round(mb / best_ref, 1),
            "readMBps": round(mb / cat_seconds, 1),
        }
        print(
            f"stella serve -> skopeo: {mb:.0f} MB in {best:.2f} s = {mb / best:.0f} MB/s; "
            f"docker-registry 2.8 -> skopeo: {mb / best_ref:.0f} MB/s "
            f"(reading the blobs alone: {mb / cat_seconds:.0f} MB/s)"
        )
        print(json.dumps(result))
        figures.record(
            "serve",
            [
                Figure(
                    f"`stella serve` pull with skopeo ({mb:.0f} MB)",
                    f"{mb / best:.0f} MB/s (docker-registry 2.8: {mb / best_ref:.0f} MB/s)",
                )
            ],
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
