"""Benchmark: module- and function-level reachability of a Python program of 1,000+ modules.

Usage: python bench/bench_reach_python.py (also run by bench/bench_reach.py)
The image: whole real packages copied from this interpreter's site-packages (their sources as
published: requests, urllib3, idna, certifi, charset_normalizer, jinja2, markupsafe, click,
rich, pygments, packaging, jsonschema and more, until at least 1,000 modules), each with its
dist-info, and /app/main.py, an entrypoint that imports several of them and calls a few of
their functions. Measured, each the median of five runs: the cold scan (every layer walked,
the files the entrypoint reaches parsed with ast; what the first scan pays) and the warm
path the gate takes: the scan from the layer cache plus the match, with the program analysed
and each finding on a package of the tree judged against a curated record naming one
function of that package. Target: <= 0.5 s warm; exits 1 when over.
"""

from __future__ import annotations

import json
import statistics
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from appliance.match import MemoryAdvisories, match  # noqa: E402
from appliance.match.service import inventory_of  # noqa: E402
from appliance.scanner.cache import LayerCache  # noqa: E402
from appliance.scanner.pyfacts import python_facts  # noqa: E402
from appliance.scanner.service import scan_image  # noqa: E402
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from tests.appliance.scanner.layouts import F, build_image  # noqa: E402

TARGET_S = 0.5
MODULES = 1000
SITE = "usr/local/lib/python3.11/dist-packages"
#: Packages copied whole, in this order, until the tree holds MODULES modules.
PACKAGES = (
    "requests", "urllib3", "idna", "certifi", "charset_normalizer", "jinja2", "markupsafe",
    "click", "packaging", "attr", "attrs", "jsonschema", "referencing", "rpds", "pygments",
    "rich", "markdown_it", "mdurl", "dateutil", "yaml", "cryptography", "textual",
)  # fmt: skip
MAIN = b"""import json
import sys

import click
import jinja2
import requests
import yaml
from rich.console import Console
from packaging.version import Version


@click.command()
@click.argument("url")
def main(url):
    response = requests.get(url, timeout=5)
    template = jinja2.Environment(autoescape=True).from_string("{{ v }}")
    Console().print(template.render(v=Version("1.0")), yaml.safe_load(response.text))
    json.dump({}, sys.stdout)


if __name__ == "__main__":
    main()
"""


def _tree() -> tuple[list[F], dict[str, str], int]:
    """The package files, the version of each package (by dist-info), and the module count."""
    site = Path(sysconfig.get_paths()["purelib"])
    files: list[F] = [F("usr/bin/python3", b"\x7fELF stand-in", 0o755)]
    versions: dict[str, str] = {}
    modules = 0
    for name in PACKAGES:
        root = site / name
        if not root.is_dir() or modules >= MODULES:
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(site).as_posix()
                files.append(F(f"{SITE}/{rel}", path.read_bytes()))
                modules += rel.endswith(".py")
        for info in sorted(site.glob("*.dist-info")):
            meta = info / "METADATA"
            record = info / "RECORD"
            if not meta.is_file() or not record.is_file():
                continue
            text = record.read_text(errors="replace")
            if f"{name}/__init__.py," not in text:
                continue
            fields = dict(
                line.split(": ", 1) for line in meta.read_text().splitlines()[:10] if ": " in line
            )
            versions[fields.get("Name", name)] = fields.get("Version", "0")
            for member in ("METADATA", "RECORD", "top_level.txt"):
                if (info / member).is_file():
                    files.append(F(f"{SITE}/{info.name}/{member}", (info / member).read_bytes()))
    return files, versions, modules


def _records(
    files: list[F], versions: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One advisory per package of the tree, and a curated record naming the first function
    of the package's first module that defines one."""
    osv: list[dict[str, Any]] = []
    curated: list[dict[str, Any]] = []
    for index, (name, version) in enumerate(sorted(versions.items())):
        rid = f"BENCH-{index:04d}"
        osv.append(
            {
                "id": rid,
                "modified": "2026-01-01T00:00:00Z",
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": name},
                        "versions": [version],
                    }
                ],
            }
        )
        top = name.lower().replace("-", "_")
        for f in files:
            rel = f.path.removeprefix(SITE + "/")
            if not rel.startswith(top + "/") or not rel.endswith(".py"):
                continue
            scopes = [s for s in python_facts(f.data).get("s", {}) if s and "." not in s]
            if scopes:
                module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
                curated.append(
                    {
                        "id": rid,
                        "source": "bench",
                        "affected": [
                            {
                                "package": {"ecosystem": "PyPI", "name": name},
                                "imports": [{"path": module, "symbols": [sorted(scopes)[0]]}],
                            }
                        ],
                    }
                )
                break
    return osv, curated


def _median(run: Callable[[], Any], times: int = 5) -> float:
    taken = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        taken.append(time.perf_counter() - start)
    return statistics.median(taken)


def measure() -> tuple[list[Figure], dict[str, Any], bool]:
    files, versions, modules = _tree()
    osv, curated = _records(files, versions)
    source = MemoryAdvisories(osv, reach=curated)
    with tempfile.TemporaryDirectory() as tmp:
        layout = Path(tmp) / "oci"
        config = {"Entrypoint": ["/usr/bin/python3", "/app/main.py"], "WorkingDir": "/app"}
        build_image(layout, [files, [F("app/main.py", MAIN, 0o755)]], tag="py:1", config=config)
        ref = f"oci:{layout}:py:1"
        cold = _median(lambda: scan_image(None, ref, cache=False), 3)
        with LayerCache.open(Path(tmp) / "cache.db") as cache:
            scan_image(None, ref, cache=cache)  # fills the cache

            def warm_run() -> Any:
                return match(inventory_of(scan_image(None, ref, cache=cache)), source)

            warm_run()
            warm = _median(warm_run)
            report = warm_run()
            program = scan_image(None, ref, cache=cache).entry_trace.python
            parsed = len(program.facts) if program is not None else 0
    states = Counter(f.reachable.value for f in report.findings)
    shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    print(
        f"python tree: {modules} modules, {len(versions)} packages; cold scan {cold:.2f} s "
        f"({parsed} files reached and parsed)"
    )
    print(f"{len(report.findings)} findings ({shown}); scan + match {warm:.3f} s warm")
    met = warm <= TARGET_S
    found = [
        Figure(
            f"{modules} Python modules: first scan (walk; the {parsed} files reached parsed)",
            f"{cold:.2f} s",
        ),
        Figure(
            f"{modules} Python modules: scan from the layer cache + match with function-level"
            f" judgements ({shown})",
            f"{warm:.3f} s warm",
            f"≤ {TARGET_S} s",
            met,
        ),
    ]
    numbers = {"modules": modules, "parsed": parsed, "cold_s": cold, "warm_s": warm}
    return found, {**numbers, "states": states}, met


def main() -> int:
    found, numbers, met = measure()
    figures.record("reach-python", found)
    print(json.dumps(numbers))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
