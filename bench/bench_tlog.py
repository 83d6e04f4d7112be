"""Benchmark: the transparency log: appends, and inclusion proofs in a big log.

Usage: python bench/bench_tlog.py [--entries N] [--batch B] [--big M] [--proofs P]
Appends N entries (about the size of a DSSE entry body) to a fresh log in batches of B, each
batch durable (entry bundles, hash tiles and the signed checkpoint synced) before the next;
also times single-entry appends, which is what one gate does twice. Then builds a log of M
entries (in batches of 100,000: the same code path, only fewer checkpoints) and times P
inclusion proofs at random indices under its latest checkpoint, each checked, as
``stella log prove`` makes them. Targets (2 cores): >= 2,000 appends/s batched; a proof in
<= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from bundles.keys import KeyType, PrivateKey  # noqa: E402
from bundles.tlog.log import TileLog  # noqa: E402
from bundles.tlog.merkle import leaf_hash, verify_inclusion  # noqa: E402
from bundles.tlog.note import NoteSigner  # noqa: E402

APPEND_TARGET = 2000
PROOF_TARGET_MS = 5.0
ENTRY_SIZE = 700  # bytes: a dsse 0.0.2 body with one ECDSA signature and its public key


def entries(n: int, start: int = 0) -> list[bytes]:
    pad = os.urandom(ENTRY_SIZE - 16)
    return [i.to_bytes(16, "big") + pad for i in range(start, start + n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--singles", type=int, default=50)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=1000)
    args = parser.parse_args()
    signer = NoteSigner("bench.example/log", PrivateKey.generate(KeyType.ED25519))
    with tempfile.TemporaryDirectory(prefix="stella-bench-tlog-") as tmp:
        log = TileLog(Path(tmp) / "appends", signer.verifier, signer)
        data = entries(args.entries)
        started = time.perf_counter()
        for i in range(0, len(data), args.batch):
            log.append(data[i : i + args.batch])
        batched = time.perf_counter() - started
        rate = args.entries / batched
        singles = []
        for entry in entries(args.singles, args.entries):
            t0 = time.perf_counter()
            log.append([entry])
            singles.append(time.perf_counter() - t0)
        single_ms = statistics.median(singles) * 1000
        log.verify()

        big = TileLog(Path(tmp) / "big", signer.verifier, signer)
        t0 = time.perf_counter()
        for i in range(0, args.big, 100_000):
            big.append(entries(min(100_000, args.big - i), i))
        build = time.perf_counter() - t0
        reader = TileLog(Path(tmp) / "big", signer.verifier)  # a fresh process's view
        assert reader.head is not None
        root = reader.head.checkpoint.root
        rng = random.Random(6962)
        times = []
        for _ in range(args.proofs):
            index = rng.randrange(args.big)
            t0 = time.perf_counter()
            proof = reader.prove_inclusion(index)
            times.append(time.perf_counter() - t0)
            verify_inclusion(index, args.big, leaf_hash(reader.entry(index)), proof, root)
        proof_ms = statistics.median(times) * 1000
        p99_ms = sorted(times)[int(len(times) * 0.99) - 1] * 1000
    append_ok = rate >= APPEND_TARGET
    proof_ok = proof_ms <= PROOF_TARGET_MS
    print(
        f"append {args.entries:,} entries in batches of {args.batch}: {rate:,.0f} entries/s "
        f"(target >= {APPEND_TARGET:,}); one entry per append: {single_ms:.1f} ms median"
    )
    print(
        f"inclusion proof in a log of {args.big:,} entries (built in {build:.1f} s): median "
        f"{proof_ms:.2f} ms, p99 {p99_ms:.2f} ms (target <= {PROOF_TARGET_MS} ms)"
    )
    print(
        json.dumps(
            {
                "bench": "tlog",
                "appends_per_s": round(rate),
                "single_append_ms": round(single_ms, 2),
                "proof_ms": round(proof_ms, 3),
                "proof_p99_ms": round(p99_ms, 3),
                "ok": append_ok and proof_ok,
            }
        )
    )
    figures.record(
        "tlog",
        [
            Figure(
                f"transparency log: append {args.entries:,} entries, batches of {args.batch}",
                f"{rate:,.0f} entries/s",
                f"≥ {APPEND_TARGET:,} entries/s",
                append_ok,
            ),
            Figure(
                "transparency log: one durable append (entry, tiles, checkpoint)",
                f"{single_ms:.1f} ms",
            ),
            Figure(
                f"transparency log: inclusion proof in a log of {args.big:,} entries",
                f"{proof_ms:.2f} ms",
                f"≤ {PROOF_TARGET_MS:g} ms",
                proof_ok,
            ),
        ],
    )
    return 0 if append_ok and proof_ok else 1


if __name__ == "__main__":
    sys.exit(main())
