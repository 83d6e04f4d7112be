"""Symbol-level state of Go findings: real Go vulndb records against real binaries (a program
built here that links ``html/template.(*Template).Execute`` and no ``net/http``, and Debian's
``docker-registry``)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from appliance.match import Inventory, MemoryAdvisories, match
from appliance.match.model import Finding, Reachability
from appliance.match.symbols import judge, wanted
from appliance.scanner.analyzers.gobinary import GoBinaryAnalyzer
from appliance.scanner.analyzers.gosymbols import encode, function_names, split_name
from appliance.scanner.analyzers.interface import AnalyzerInput
from appliance.scanner.collect import run_analyzer
from appliance.scanner.model import Package, PackageType
from tests.appliance.gobuild import GO_DATA, build_hello
from tests.appliance.match.data import MATCH, SNAPSHOT
from tests.conftest import require_tools

TEMPLATE = "GO-2023-1753"  # html/template Template.Execute: linked by hello
HOST_HEADER = "GO-2023-1878"  # net/http client: hello has no net/http
PEM = "GO-2025-4009"  # encoding/pem Decode: hello links it, reached only through reflect
REGISTRY = Path("/usr/bin/docker-registry")
# the states of a finding whose vulnerable function the binary links
LINKED = {Reachability.REACHABLE, Reachability.PRESENT, Reachability.PRESENT_NOT_REACHED}


def _record(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GO_DATA / f"{name}.json").read_text())
    return data


@cache
def stdlib_records() -> tuple[dict[str, Any], ...]:
    with gzip.open(MATCH / "go-stdlib-osv.jsonl.gz") as f:
        return tuple(json.loads(line) for line in f)


@pytest.fixture(scope="session")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello(tmp_path_factory.mktemp("go"))


def _packages(path: Path) -> tuple[Package, ...]:
    size = path.stat().st_size
    inp = AnalyzerInput(str(path).lstrip("/"), 0o100755, size, lambda: path.open("rb"))
    return run_analyzer(GoBinaryAnalyzer(), inp).packages


def _states(packages: tuple[Package, ...], records: Any) -> dict[str, Finding]:
    report = match(Inventory.of(packages), MemoryAdvisories(records, snapshot=SNAPSHOT))
    out = {}
    for f in report.findings:  # by Go vulndb id (the finding's id is its CVE)
        if f.component.name == "stdlib":
            out.update({i: f for i in f.ids if i.startswith("GO-")})
    return out


def test_linked_function_is_present_and_absent_one_is_not(hello: Path) -> None:
    found = _states(_packages(hello), [_record(TEMPLATE), _record(HOST_HEADER)])
    assert set(found) == {TEMPLATE, HOST_HEADER}  # go1.19.8 is in both ranges
    assert found[TEMPLATE].reachable is Reachability.REACHABLE
    note = found[TEMPLATE].evidence.reachability_note
    assert "/hello links html/template.Template.Execute" in note
    assert note.endswith("; call chain: main.main -> html/template.Template.Execute")
    assert found[HOST_HEADER].reachable is Reachability.NOT_PRESENT
    assert (
        "links none of net/http.Client.CloseIdleConnections"
        in found[HOST_HEADER].evidence.reachability_note
    )
    assert found[HOST_HEADER].to_dict()["evidence"]["reachability"] == "not-present"


def test_linked_but_reached_only_through_reflection_stays_present(hello: Path) -> None:
    """hello hands a ``Block`` to its template: the template may call ``Block.Decode``
    (reflect), nothing calls it directly. encoding/pem.Decode is linked and reached from that
    method's entry in the type's method table, not from main: ``present``, never
    ``present-not-reached``, and the chain says why."""
    found = _states(_packages(hello), [r for r in stdlib_records() if r["id"] == PEM])
    assert found[PEM].reachable is Reachability.PRESENT
    note = found[PEM].evidence.reachability_note
    assert "links encoding/pem.Decode" in note
    assert note.endswith(
        "no chain from main reaches them, only an indirect call could: [in a type's method "
        "table (interface or reflect call)] main.Block.Decode -> encoding/pem.Decode"
    )


def test_unread_function_table_is_unknown_never_not_present(hello: Path) -> None:
    packages = tuple(
        Package(p.type, p.name, p.version, locations=p.locations) for p in _packages(hello)
    )  # as a binary whose table could not be read: no symbol set
    found = _states(packages, [_record(TEMPLATE), _record(HOST_HEADER)])
    assert {f.reachable for f in found.values()} == {Reachability.UNKNOWN}
    assert "was not read" in found[HOST_HEADER].evidence.reachability_note


def test_corrupt_symbol_set_is_unknown() -> None:
    package = Package(PackageType.GOLANG, "stdlib", "v1.19.8", symbols="gosym1:!!")
    verdict = judge(package, _record(HOST_HEADER)["affected"])
    assert verdict is not None
    assert verdict.state is Reachability.UNKNOWN


def test_records_without_imports_stay_at_package_level() -> None:
    package = Package(PackageType.GOLANG, "stdlib", "v1.19.8", symbols="gosym1:")
    assert judge(package, [{"package": {"name": "stdlib"}}]) is None
    pypi = Package(PackageType.PYPI, "x", "1", symbols="gosym1:")
    assert judge(pypi, _record(HOST_HEADER)["affected"]) is None


def test_a_path_without_symbols_means_the_whole_path(hello: Path) -> None:
    stdlib = next(p for p in _packages(hello) if p.name == "stdlib")
    whole = [{"ecosystem_specific": {"imports": [{"path": "html/template"}]}}]
    assert wanted(whole) == [("html/template", "")]
    verdict = judge(stdlib, whole)
    assert verdict is not None
    assert verdict.state is Reachability.REACHABLE
    gone = [{"ecosystem_specific": {"imports": [{"path": "net/http"}]}}]
    verdict = judge(stdlib, gone)
    assert verdict is not None
    assert verdict.state is Reachability.NOT_PRESENT


def test_docker_registry_against_every_stdlib_record() -> None:
    """Each stdlib finding of Debian's docker-registry (go1.19.8), checked against a reading
    of the binary's own function names: present exactly when one named function or path is
    among them; not-present otherwise."""
    require_tools("docker-registry")
    found = _states(_packages(REGISTRY), stdlib_records())
    names = function_names(REGISTRY.read_bytes())
    assert names is not None
    linked: set[str] = set()
    for name in names:
        split = split_name(name)
        if split is not None:
            linked.update((split[0], f"{split[0]}.{split[1]}"))
    by_record = {r["id"]: r for r in stdlib_records()}
    states = {}
    for vid, finding in found.items():
        merged = [by_record[i] for i in finding.ids if i in by_record]
        pairs = wanted([e for r in merged for e in r["affected"]], "linux", "amd64")
        if not pairs:  # imports only for other platforms (or none)
            assert finding.reachable not in LINKED
            continue
        expect = any((f"{p}.{s}" if s else p) in linked for p, s in pairs)
        states[vid] = finding.reachable
        assert (finding.reachable in LINKED) is expect, vid
        assert expect or finding.reachable is Reachability.NOT_PRESENT, vid
    assert states[HOST_HEADER] in LINKED  # the registry is an HTTP client too
    assert states[TEMPLATE] is Reachability.NOT_PRESENT
    assert sum(s is Reachability.NOT_PRESENT for s in states.values()) >= 10


def test_same_verdicts_as_govulncheck(hello: Path, tmp_path: Path) -> None:
    """Debian's govulncheck (a February 2023 snapshot) in binary mode, offline against a local
    copy of every stdlib record in the database layout that version reads (``index.json`` and
    one ``MODULE.json`` array). It reports the records whose symbols the binary links; those
    must be exactly our ``present`` findings. (It cannot read a stripped binary such as
    Debian's docker-registry: it needs the symbol table to find the inline trees.)"""
    require_tools("govulncheck")
    db = tmp_path / "vulndb"
    db.mkdir()
    (db / "index.json").write_text(json.dumps({"stdlib": "2023-07-01T00:00:00Z"}))
    (db / "stdlib.json").write_text(json.dumps(list(stdlib_records())))
    done = subprocess.run(
        ["govulncheck", "-json", str(hello)],
        env={**os.environ, "GOVULNDB": db.as_uri(), "GOFLAGS": "", "GOPROXY": "off"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    reported = {v["OSV"]["id"] for v in json.loads(done.stdout)["Vulns"]}
    found = _states(_packages(hello), stdlib_records())
    present = {i for i, f in found.items() if f.reachable in LINKED}
    assert TEMPLATE in reported
    assert reported == present
    assert {f.reachable for i, f in found.items() if i not in present} == {Reachability.NOT_PRESENT}


def test_imports_for_other_platforms_do_not_apply() -> None:
    windows = [{"ecosystem_specific": {"imports": [{"path": "os", "goos": ["windows"]}]}}]
    linux = Package(PackageType.GOLANG, "stdlib", "v1.19.8", symbols=encode(["os.Open"], "linux"))
    verdict = judge(linux, windows)
    assert verdict is not None
    assert verdict.state is Reachability.NOT_PRESENT
    assert "built for linux/" in verdict.note
    # a binary whose platform is not recorded gets every import
    unsure = Package(PackageType.GOLANG, "stdlib", "v1.19.8", symbols=encode(["os.Open"]))
    verdict = judge(unsure, windows)
    assert verdict is not None
    assert verdict.state is Reachability.PRESENT
    assert verdict.note.endswith("(calls from main not analysed)")  # no call tree recorded
