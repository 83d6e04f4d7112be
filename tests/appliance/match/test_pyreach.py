"""Python reachability below the package, on real code: images holding the real requests,
urllib3, chardet, idna, certifi and PyYAML files of the app fixture image (the releases PyPI
published), each with a different /app/main.py, matched against the real PyPI records of
tests/data/feeds and the curated reachability records of examples/reachability (parsed by the
mirror's own source).

- main.py calls ``requests.get``: CVE-2018-18074's ``SessionRedirectMixin.rebuild_auth`` is
  reachable, with the chain main.py -> requests.get -> ... -> rebuild_auth;
- main.py imports idna and prints its version: CVE-2024-3651's ``idna.core.encode`` is
  present-not-reached; when main.py calls ``idna.encode`` it is reachable (through idna's star
  re-export); when main.py imports a module named on its command line and calls ``encode`` on
  it, unknown;
- main.py only dumps YAML (the fixture's own program): PyYAML's FullConstructor
  (CVE-2020-1747) is reachable through yaml's own top level, and since it imports modules by
  name, requests' rebuild_auth is unknown rather than not reached.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.match import Finding, MemoryAdvisories, match
from appliance.match.model import Reachability
from appliance.match.service import inventory_of
from appliance.scanner.cache import LayerCache
from appliance.scanner.service import scan_image
from bundles import canonical
from images.build import require_image
from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources import SOURCES
from tests.appliance.homes import OSV, install_knowledge
from tests.appliance.scanner.layouts import F, build_image

ROOT = Path(__file__).resolve().parents[3]
CURATED = ROOT / "examples" / "reachability" / "pypi-curated.json"
FEED = ROOT / "tests" / "data" / "feeds" / "pypi-osv.jsonl.gz"
SITE = "usr/local/lib/python3.11/dist-packages"
PACKAGES = ("requests", "urllib3", "chardet", "idna", "certifi", "yaml")
ENTRY = {"Entrypoint": ["/usr/bin/python3", "/app/main.py"], "WorkingDir": "/app"}

CALLS_GET = b"""import requests

def fetch(url):
    return requests.get(url, timeout=5)

if __name__ == "__main__":
    fetch("http://127.0.0.1:9/")
"""
DUMPS_YAML = (ROOT / "images" / "app" / "main.py").read_bytes()
USES_IDNA_VERSION = b"""import idna

print(idna.__version__)
"""
CALLS_IDNA_ENCODE = b"""import idna

print(idna.encode("example.com"))
"""
IMPORTS_BY_NAME = b"""import importlib
import sys
import idna

plugin = importlib.import_module(sys.argv[1])
print(plugin.encode(idna.__version__))
"""


def _fixture_files() -> list[F]:
    """The interpreter stand-in and the real package files of the app fixture image."""
    fixture = require_image("app")
    index = json.loads((fixture.layout / "index.json").read_text())
    blobs = fixture.layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    wanted = tuple(f"{SITE}/{p}/" for p in PACKAGES) + tuple(
        f"{SITE}/{p}-" for p in ("requests", "urllib3", "chardet", "idna", "certifi", "pyyaml")
    )
    out = [F("usr/bin/python3", b"\x7fELF stand-in", 0o755), F("usr/lib/python3.11/os.py")]
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1]) as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if member.isfile() and name.startswith(wanted) and "__pycache__" not in name:
                    data = tar.extractfile(member)
                    assert data is not None
                    out.append(F(name, data.read()))
    return out


@pytest.fixture(scope="module")
def files() -> list[F]:
    return _fixture_files()


def _records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    names = {"requests", "urllib3", "chardet", "idna", "certifi", "pyyaml", "jinja2"}
    with gzip.open(FEED) as feed:
        records = [json.loads(line) for line in feed]
    osv = [
        r for r in records if {a["package"]["name"].lower() for a in r.get("affected", ())} & names
    ]
    parsed = SOURCES[SourceKind.REACHABILITY_CURATED].parse(
        [Member(CURATED.name, CURATED.read_bytes())]
    )
    assert parsed.unknowns == []
    return osv, parsed.records


def _findings(tmp_path: Path, files: list[F], main: bytes) -> dict[str, Finding]:
    layout = tmp_path / "oci"
    build_image(layout, [files, [F("app/main.py", main, 0o755)]], tag="app:1", config=ENTRY)
    scan = scan_image(None, f"oci:{layout}:app:1", cache=False)
    osv, curated = _records()
    report = match(inventory_of(scan), MemoryAdvisories(osv, reach=curated, snapshot="s"))
    return {f.id: f for f in report.findings}


@pytest.mark.slow
def test_called_function_is_reachable_with_its_chain(tmp_path: Path, files: list[F]) -> None:
    found = _findings(tmp_path, files, CALLS_GET)
    redirect = found["CVE-2018-18074"]
    assert redirect.reachable is Reachability.REACHABLE
    chain = redirect.evidence.reachability_chain
    assert chain[0] == "/app/main.py"
    assert chain[1] == "fetch"  # main.py's own function that calls requests.get
    assert chain[2] == "requests.api.get"
    assert chain[-1] == "requests.sessions.SessionRedirectMixin.rebuild_auth"
    assert "curated record CVE-2018-18074" in redirect.evidence.reachability_note


@pytest.mark.slow
def test_function_not_called_is_present_not_reached(tmp_path: Path, files: list[F]) -> None:
    found = _findings(tmp_path, files, USES_IDNA_VERSION)
    encode = found["CVE-2024-3651"]
    assert encode.reachable is Reachability.PRESENT_NOT_REACHED
    assert encode.evidence.reachability_chain == ()
    assert "the package is imported, but no entrypoint reaches idna.core.encode" in (
        encode.evidence.reachability_note
    )


@pytest.mark.slow
def test_called_through_a_star_reexport_is_reachable(tmp_path: Path, files: list[F]) -> None:
    found = _findings(tmp_path, files, CALLS_IDNA_ENCODE)
    encode = found["CVE-2024-3651"]
    assert encode.reachable is Reachability.REACHABLE
    # idna/__init__.py re-exports encode with "from .core import *"
    assert encode.evidence.reachability_chain == ("/app/main.py", "idna.core.encode")


@pytest.mark.slow
def test_a_computed_import_makes_not_reached_unknown(tmp_path: Path, files: list[F]) -> None:
    found = _findings(tmp_path, files, IMPORTS_BY_NAME)
    encode = found["CVE-2024-3651"]
    assert encode.reachable is Reachability.UNKNOWN
    assert "a dynamic import or exec in the reached code" in encode.evidence.reachability_note
    assert "/app/main.py:5 (import importlib.import_module)" in encode.evidence.reachability_note


@pytest.mark.slow
def test_pyyaml_full_loader_leaves_other_findings_unknown(tmp_path: Path, files: list[F]) -> None:
    """The fixture's own program only dumps YAML, but PyYAML 5.3's top level names FullLoader,
    whose constructor imports modules named in the document (the vulnerability itself): from
    there any function may be called, so requests' rebuild_auth is unknown, not unreached."""
    found = _findings(tmp_path, files, DUMPS_YAML)
    full = found["CVE-2020-1747"]
    assert full.reachable is Reachability.REACHABLE
    assert full.evidence.reachability_chain[-1] == "yaml.constructor.FullConstructor"
    redirect = found["CVE-2018-18074"]
    assert redirect.reachable is Reachability.UNKNOWN
    assert "dist-packages/yaml/constructor.py" in redirect.evidence.reachability_note
    # an advisory no curated record names stays at the package level, and says so
    crlf = found["CVE-2019-11236"]
    assert crlf.reachable is Reachability.REACHABLE  # urllib3 is imported
    assert "names no vulnerable module or function" in crlf.evidence.reachability_note
    # Jinja2 is not installed in this image: no finding at all
    assert "CVE-2019-10906" not in found


@pytest.mark.slow
def test_suggest_proposes_not_in_execute_path(tmp_path: Path, files: list[F]) -> None:
    """Through the knowledge store and the real entry point: the curated dataset travels in
    the snapshot, and ``stella vex suggest`` proposes the justification for the finding whose
    function is not reached, signing nothing."""
    home = Home(tmp_path / "home")
    home.init()
    layers = [files, [F("app/main.py", USES_IDNA_VERSION, 0o755)]]
    build_image(home.oci, layers, tag="app:1", config=ENTRY)
    osv, curated = _records()
    install_knowledge(home, osv=osv, reach=curated)
    argv = ["--home", str(home.root), "--json", "vex", "suggest", "app:1"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["signed"] is False
    [only] = doc["suggestions"]
    assert only["vulnerability"] == "CVE-2024-3651"
    assert only["reachability"] == "present-not-reached"
    assert only["justification"] == "vulnerable_code_not_in_execute_path"
    assert "idna.core.encode" in only["impact"]


@pytest.mark.slow
def test_same_image_same_reachability_bytes_cold_and_cached(tmp_path: Path, files: list[F]) -> None:
    """The closures are computed at scan time and kept in the layer cache's image row: a scan
    from the cache and a cold one give the same findings, chains and notes, byte for byte."""
    layout = tmp_path / "oci"
    build_image(layout, [files, [F("app/main.py", CALLS_GET, 0o755)]], tag="app:1", config=ENTRY)
    osv, curated = _records()
    source = MemoryAdvisories(osv, reach=curated, snapshot="s")
    ref = f"oci:{layout}:app:1"

    def report_bytes(scan: Any) -> bytes:
        return canonical.dumps(match(inventory_of(scan), source).to_dict())

    cold = report_bytes(scan_image(None, ref, cache=False))
    with LayerCache.open(tmp_path / "cache.db") as cache:
        first = report_bytes(scan_image(None, ref, cache=cache))
        cached = scan_image(None, ref, cache=cache)
        assert cached.cached_layers  # the second scan read the cache
        assert cached.entry_trace.python is not None
        assert cached.entry_trace.python.closure is not None
        again = report_bytes(cached)
    assert cold == first == again
    assert b"requests.sessions.SessionRedirectMixin.rebuild_auth" in cold


@pytest.mark.slow
def test_the_chain_in_explain_and_the_rva_evidence(tmp_path: Path, files: list[F]) -> None:
    """Gate, then explain the signed verdict through the real entry point: the blocking
    finding's line is followed by its chain, and the RVA's reachability evidence blob holds
    the decision with its note and chain."""
    home = Home(tmp_path / "home")
    home.init()
    layers = [files, [F("app/main.py", CALLS_GET, 0o755)]]
    build_image(home.oci, layers, tag="app:1", config=ENTRY)
    _, curated = _records()
    install_knowledge(home, osv=[OSV], reach=curated)  # CVE-2018-18074, rated critical
    out = tmp_path / "rva.json"
    runner = CliRunner()
    gated = runner.invoke(cli, ["--home", str(home.root), "gate", "app:1", "--out", str(out)])
    assert gated.exit_code == 3, gated.output  # FAIL: a reachable critical
    explained = runner.invoke(cli, ["--home", str(home.root), "explain", str(out)])
    assert explained.exit_code == 0, explained.output
    text = explained.output
    assert "reached: /app/main.py -> fetch -> requests.api.get -> " in text
    assert "requests.sessions.SessionRedirectMixin.rebuild_auth" in text
    doc = json.loads(
        runner.invoke(cli, ["--home", str(home.root), "--json", "explain", str(out)]).output
    )
    [blocking] = doc["blockingFindings"]
    assert blocking["chain"][-1] == "requests.sessions.SessionRedirectMixin.rebuild_auth"
