"""Benchmark: the findings screen with 10,000 findings, headless at 80x24.

Usage: python bench/bench_tui.py [--findings N] [--rounds R]
Per round: push the findings screen of an image with N findings (the fake service answers at
once, so this times the UI: building the view-model, mounting, first paint), then apply
each filter (severity, VEX status, KEV, a search) to all N findings, the filter cleared
(untimed) before each, and time each until it is painted; last, time clearing the search's
filter. Prints the best and median and one JSON line.
Targets (2 cores): mount + first paint <= 1 s; each filter <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from textual.widgets import Input  # noqa: E402

from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from tests.tui.fakes import FakeService  # noqa: E402
from tui.app import StellaApp  # noqa: E402
from tui.screens.findings import FindingsScreen  # noqa: E402
from tui.widgets.findings_table import FindingsTable  # noqa: E402

MOUNT_TARGET = 1.0
FILTER_TARGET = 0.150


async def one_round(service: FakeService) -> tuple[float, dict[str, float]]:
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        start = time.perf_counter()
        screen = FindingsScreen("app:1")
        await app.push_screen(screen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        mount = time.perf_counter() - start
        table = screen.query_one(FindingsTable)
        assert len(table.rows) == len(service.rows), "the findings did not load"
        steps = {
            "severity": screen.action_severity,
            "status": screen.action_status,
            "kev": lambda: screen.action_flag("kev"),
            "search": lambda: screen.query_one("#findings-search", Input).insert_text_at_cursor(
                "lib07"
            ),
            "clear": screen.action_clear,
        }
        filters: dict[str, float] = {}
        for name, step in steps.items():
            if name != "clear":  # each filter starts from all N; clear, from the search
                screen.action_clear()
                await pilot.pause()
                assert len(table.rows) == len(service.rows), "clear did not restore every finding"
            t = time.perf_counter()
            step()
            await pilot.pause()
            filters[name] = time.perf_counter() - t
            if name != "clear":  # painted a real subset: not an empty table, not the whole
                shown = len(table.rows)
                assert 0 < shown < len(service.rows), f"filter {name} shows {shown} findings"
        assert len(table.rows) == len(service.rows), "clear did not restore every finding"
    return mount, filters


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    service = FakeService(count=args.findings)
    mounts: list[float] = []
    worst: list[float] = []
    per_filter: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        mount, filters = asyncio.run(one_round(service))
        mounts.append(mount)
        worst.append(max(filters.values()))
        for name, dt in filters.items():
            per_filter.setdefault(name, []).append(dt)
    print(f"findings screen, {args.findings} findings, 80x24, {args.rounds} rounds")
    print(
        f"  mount + first paint: best {min(mounts):.3f} s, median {statistics.median(mounts):.3f} s"
    )
    for name, times in per_filter.items():
        print(
            f"  filter {name:<9} best {min(times) * 1000:6.1f} ms, median "
            f"{statistics.median(times) * 1000:6.1f} ms"
        )
    ok = statistics.median(mounts) <= MOUNT_TARGET and statistics.median(worst) <= FILTER_TARGET
    print(
        json.dumps(
            {
                "bench": "tui",
                "findings": args.findings,
                "mount_s": round(statistics.median(mounts), 4),
                "filter_worst_ms": round(statistics.median(worst) * 1000, 1),
                "filters_ms": {
                    k: round(statistics.median(v) * 1000, 1) for k, v in per_filter.items()
                },
                "targets": {"mount_s": MOUNT_TARGET, "filter_ms": FILTER_TARGET * 1000},
                "ok": ok,
            }
        )
    )
    figures.record(
        "tui",
        [
            Figure(
                f"TUI: {args.findings:,} findings mount and paint / worst filter",
                f"{statistics.median(mounts):.2f} s / {statistics.median(worst) * 1000:.0f} ms",
                f"≤ {MOUNT_TARGET} s / ≤ {FILTER_TARGET * 1000:.0f} ms",
                ok,
            )
        ],
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
