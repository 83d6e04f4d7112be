"""Benchmark: the peak memory of each command on the hostile inputs of tests/hostile.

Usage: python bench/bench_hostile.py [--only SUITE ...]
Runs every case of each registered hostile suite the way its tests do (one capped child per
command, tests/hostile/harness.py), and reports per command the worst peak RSS and the case
that caused it, and how many cases were refused cleanly (the exact line, the exit code, no
traceback, the home unchanged). Target: peak RSS <= 512 MiB for every command on every input;
every case refused cleanly.

A document suite is a module of tests/hostile that defines ``CASES``, ``EXPECTED`` and
``execute(case, tmp, template, home)`` (:data:`DOCUMENT_SUITES`); the bundle suite (``stella
import`` and ``stella-mirror verify``) and the scan suite are played by their own kits
(:data:`SUITES`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Final

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from tests.hostile.bundleplay import check_import, check_verify, make_world, play  # noqa: E402
from tests.hostile.cases_bundles import CASES as BUNDLE_CASES  # noqa: E402
from tests.hostile.documents import (  # noqa: E402
    assert_case_refused,
    copy_home,
    run_cases,
    template,
)
from tests.hostile.harness import RSS_CEILING, Run  # noqa: E402
from tests.hostile.imagekit import run_all  # noqa: E402
from tests.hostile.test_scan import CASES as SCAN_CASES  # noqa: E402

#: The document suites (module names under tests.hostile), played by :func:`measure`.
DOCUMENT_SUITES: Final = (
    "test_documents_vex",
    "test_documents_trust",
    "test_documents_verify",
    "test_documents_audit_package",
    "test_documents_policy",
)


@dataclass(frozen=True, slots=True)
class Measured:
    suite: str
    case: str
    command: str
    peak: int  # bytes
    clean: bool
    why: str


def command_of(run: Run) -> str:
    """``vex import``, ``verify``, ``gate --policy``...: the command a case ran, for grouping."""
    words = [w for w in run.argv[3:] if not w.startswith("/")]
    if words[:1] in (["vex"], ["trust"]):
        return " ".join(words[:3] if words[1:2] == ["upstream"] else words[:2])
    return words[0] + (" --policy" if "--policy" in words else "")


def measure(name: str, base: Path) -> list[Measured]:
    module: ModuleType = importlib.import_module(f"tests.hostile.{name}")
    made = template(base / "template")
    home = copy_home(made, base / f"{name}-home")
    outcomes = run_cases(
        module.CASES, home, base / name, lambda c, tmp: module.execute(c, tmp, made, home)
    )
    out = []
    for case in module.CASES:
        result = outcomes[1][case.id][0]
        code = getattr(case, "code", 1)
        expected = module.EXPECTED[case.id]
        why = _why(partial(assert_case_refused, outcomes, case.id, expected, code=code))
        out.append(Measured(name, case.id, command_of(result), result.peak_rss, not why, why))
    return out


def _why(check: Callable[[], object]) -> str:
    try:
        check()
    except AssertionError as e:
        return (str(e).splitlines() or ["assertion failed"])[0][:200]
    return ""


def measure_bundles(base: Path) -> list[Measured]:
    """tests/hostile/cases_bundles.py: ``stella import`` and ``stella-mirror verify`` of each
    hostile bundle, checked as its tests check them."""
    (base / "bundles").mkdir(parents=True)
    world = make_world(base / "bundles")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        played = list(pool.map(lambda c: (c, play(world, c)), BUNDLE_CASES))
    out = []
    for case, o in played:
        why = _why(partial(check_import, case, world, o))
        out.append(Measured("bundles", case.id, "import", o.imported.peak_rss, not why, why))
        why = _why(partial(check_verify, case, o))
        peak = o.verified.peak_rss
        out.append(Measured("bundles", case.id, "stella-mirror verify", peak, not why, why))
    return out


def measure_scans(base: Path) -> list[Measured]:
    """tests/hostile/test_scan.py: ``stella scan`` of each hostile image. A scan reports a bomb
    as an unknown and goes on, so a clean run here is one without a traceback and with an exit
    code of 0 or 1 (the unknowns themselves are the tests' to check)."""
    runs = run_all(SCAN_CASES, base / "scan")
    out = []
    for case in SCAN_CASES:
        result = runs[case.name]
        why = "traceback" if "Traceback" in result.err else ""
        why = why or ("" if result.code in (0, 1) else f"exit {result.code}")
        out.append(Measured("scan", case.name, "scan", result.peak_rss, not why, why))
    return out


#: Every suite, by name: the document suites and the bundle and scan kits.
SUITES: Final[dict[str, Callable[[Path], list[Measured]]]] = {
    **{name: partial(measure, name) for name in DOCUMENT_SUITES},
    "bundles": measure_bundles,
    "scan": measure_scans,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(SUITES), help="run only these suites")
    args = parser.parse_args()
    started = time.monotonic()
    measured: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        for name in args.only or SUITES:
            measured.extend(SUITES[name](Path(tmp)))
    wall = time.monotonic() - started
    worst: dict[str, Measured] = {}
    for m in measured:
        if m.command not in worst or m.peak > worst[m.command].peak:
            worst[m.command] = m
    clean = sum(m.clean for m in measured)
    print(f"{len(measured)} hostile cases in {wall:.1f} s on {os.cpu_count()} CPUs")
    print(f"{'command':24} {'cases':>5} {'peak RSS':>10}  worst case")
    for command in sorted(worst):
        count = sum(1 for m in measured if m.command == command)
        w = worst[command]
        print(f"{command:24} {count:>5} {w.peak >> 20:>6} MiB  {w.suite}::{w.case}")
    for m in measured:
        if not m.clean:
            print(f"NOT CLEAN  {m.suite}::{m.case}: {m.why}")
    top = max(measured, key=lambda m: m.peak)
    checks = [
        (
            f"worst peak RSS {top.peak >> 20} MiB ({top.command}, {top.case})",
            all(m.peak <= RSS_CEILING for m in measured),
        ),
        (f"{clean} of {len(measured)} cases refused cleanly", clean == len(measured)),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")

    def program(command: str) -> str:
        return command if command.startswith("stella-mirror") else f"stella {command}"

    per_command = ", ".join(
        f"{program(c)} {worst[c].peak >> 20}" for c in sorted(worst, key=lambda c: -worst[c].peak)
    )
    figures.record(
        "hostile",
        [
            Figure(
                f"hostile inputs: {len(measured)} cases over {len(worst)} commands, "
                "refused cleanly",
                f"{clean} of {len(measured)}",
                "all",
                checks[1][1],
            ),
            Figure(
                "hostile inputs: worst peak RSS per command (MiB)",
                per_command,
                f"≤ {RSS_CEILING >> 20} MiB each",
                checks[0][1],
            ),
        ],
    )
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
