"""The Go release a binary embeds is judged by Go vulndb's ``stdlib`` (and, for the go command,
``toolchain``) records, whatever package owns the binary; the finding names the binary and its
owner. Real records (every stdlib and toolchain record of golang/vulndb) and Debian's real
``docker-registry`` binary (built with go1.19.8)."""

from __future__ import annotations

import gzip
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.auditor import explain
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import LayoutBlobs, verify_in_home
from appliance.cli import cli
from appliance.home import Home
from appliance.match import FindingsReport, Inventory, MemoryAdvisories, match
from appliance.match.distro import delegations
from appliance.rva.gate import gate
from appliance.scanner.analyzers.gobinary import parse_buildinfo, stdlib_version
from appliance.scanner.model import OSInfo, Package, PackageType
from bundles.digest import Digest
from bundles.oci import OCILayout
from tests.appliance.auditor.helpers import add_snapshot
from tests.appliance.match.data import MATCH, SNAPSHOT
from tests.appliance.rva.factories import AT, t
from tests.appliance.scanner.layouts import F, build_image
from tests.conftest import require_tools

BOOKWORM = OSInfo("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
DEB_PURL = "pkg:deb/debian/docker-registry@2.8.2%2Bds1-1?arch=amd64&distro=debian-12"
NOTE = "/usr/bin/docker-registry (deb docker-registry 2.8.2+ds1-1) embeds go1.19.8"
OS_RELEASE = (
    b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    b'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
)
# The stanza and file list of Debian 12's docker-registry, shortened to what matters here.
DPKG_STATUS = b"""Package: docker-registry
Status: install ok installed
Priority: optional
Section: utils
Installed-Size: 20360
Maintainer: Debian Go Packaging Team <team+pkg-go@tracker.debian.org>
Architecture: amd64
Version: 2.8.2+ds1-1
Depends: adduser, lsb-base, libc6 (>= 2.34)
Built-Using: golang-1.19 (= 1.19.8-2)
Description: Docker toolset to pack, ship, store, and deliver content

"""
DPKG_LIST = b"/.\n/usr\n/usr/bin\n/usr/bin/docker-registry\n/etc/docker/registry/config.yml\n"


@cache
def records() -> tuple[dict[str, Any], ...]:
    with gzip.open(MATCH / "go-stdlib-osv.jsonl.gz") as f:
        return tuple(json.loads(line) for line in f)


# ---------------------------------------------------------------- an independent reading


def _release(text: str) -> tuple[tuple[int, ...], int]:
    """``1.19.8`` -> ((1, 19, 8), 1); a pre-release ``1.16.0-0`` or ``1.21.0-rc.4`` sorts just
    below its release: ((1, 16, 0), 0). Enough to place a release among Go vulndb's events."""
    numbers, dash, _ = text.partition("-")
    return tuple(int(n) for n in numbers.split(".")), 0 if dash else 1


def expected_ids(release: str, name: str) -> set[str]:
    """The records whose ``name`` entry covers ``release`` (no pre-release), read straight off
    the introduced/fixed events: affected from each introduced up to the next fixed."""
    at = _release(release)
    found = set()
    for record in records():
        for entry in record["affected"]:
            if entry["package"] != {"ecosystem": "Go", "name": name}:
                continue
            for rng in entry["ranges"]:
                assert rng["type"] == "SEMVER"
                affected = False
                for event in rng["events"]:
                    ((kind, value),) = event.items()
                    assert kind in ("introduced", "fixed"), record["id"]
                    if kind == "introduced" and (value == "0" or _release(value) <= at):
                        affected = True
                    elif kind == "fixed" and _release(value) <= at:
                        affected = False
                if affected:
                    found.add(record["id"])
    return found


def test_the_independent_reading_finds_both_sides_of_the_boundary() -> None:
    ids = expected_ids("1.19.8", "stdlib")
    assert len(ids) == 80
    assert "GO-2023-1751" in ids  # fixed in 1.19.9: affected
    assert "GO-2023-1705" not in ids  # fixed in 1.19.8 itself: not affected
    assert "GO-2022-0969" not in ids  # fixed in 1.19.1
    toolchain = expected_ids("1.19.8", "toolchain")
    assert {"GO-2023-1839", "GO-2026-4339"} <= toolchain  # fixed in 1.19.10; in 1.24.12
    assert "GO-2023-2042" not in toolchain  # introduced in 1.21.0


# ---------------------------------------------------------------- the real binary


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A Debian 12 root with Debian's docker-registry binary, owned by its deb package."""
    require_tools("docker-registry")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_bytes(OS_RELEASE)
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_bytes(DPKG_STATUS)
    (root / "var/lib/dpkg/info/docker-registry.list").write_bytes(DPKG_LIST)
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(shutil.which("docker-registry") or "", root / "usr/bin/docker-registry")
    info = parse_buildinfo((root / "usr/bin/docker-registry").read_bytes())
    assert info is not None
    assert info.go_version == "go1.19.8"  # as its Built-Using says: golang-1.19 (= 1.19.8-2)
    return root


def test_scan_json_shows_each_stdlib_finding_with_binary_and_owner(
    tmp_path: Path, rootfs: Path
) -> None:
    home = Home(tmp_path / "home")
    home.init()
    add_snapshot(home, list(records()), 1)
    result = CliRunner().invoke(
        cli, ["--home", str(home.root), "scan", f"dir:{rootfs}", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    report = doc["findings"]
    # a finding is named by the CVE its Go vulndb record aliases; its records are the GO- ids
    records_used = {m["record"]["id"] for f in report["findings"] for m in f["matches"]}
    assert records_used == expected_ids("1.19.8", "stdlib")
    for finding in report["findings"]:
        assert finding["component"]["purl"] == "pkg:golang/stdlib@v1.19.8"
        assert finding["evidence"]["files"] == [
            {"path": "usr/bin/docker-registry", "layer": None, "owner": DEB_PURL}
        ]
        assert finding["evidence"]["note"] == NOTE
    # the deb itself has no Debian records in this snapshot: an unknown, as for any deb
    assert [(u["purl"], u["kind"]) for u in report["unknowns"]] == [(DEB_PURL, "no-distro-data")]
    assert report["delegated"] == []


def test_explain_names_the_binary_and_its_owner(tmp_path: Path) -> None:
    require_tools("docker-registry")
    home = Home(tmp_path / "home")
    home.init()
    binary = Path(shutil.which("docker-registry") or "").read_bytes()
    build_image(
        home.oci,
        [
            [
                F("etc/os-release", OS_RELEASE),
                F("var/lib/dpkg/status", DPKG_STATUS),
                F("var/lib/dpkg/info/docker-registry.list", DPKG_LIST),
                F("usr/bin/docker-registry", binary, mode=0o755),
            ]
        ],
        tag="registry:1",
        compression="none",
    )
    add_snapshot(home, list(records()), 1)
    # a policy that fails on any finding of unknown severity (Go vulndb publishes none)
    policy = tmp_path / "policy"
    shutil.copytree(Path(explain.__file__).parents[1] / "policy/default", policy)
    data = json.loads((policy / "data.json").read_text())
    data["stella"]["thresholds"]["max_unwaived"]["unknown"] = 0
    (policy / "data.json").write_text(json.dumps(data))
    made = gate(home, "registry:1", at=AT, policy_dir=policy, now=lambda: t("2026-11-23T06:30:00Z"))
    assert made.kind.value == "FAIL"

    checked = verify_in_home(home, made.bundle, TrustPolicy.appliance(home.public_key()))
    blobs = LayoutBlobs(OCILayout.open(home.oci))
    e = explain.build(checked, blobs)
    cited = e.predicate["evidence"]["vulnData"]["digest"]
    vuln_data = json.loads(blobs.read("vulnData", Digest.parse(cited)) or b"{}")
    assert {r["id"] for r in vuln_data["records"]} == expected_ids("1.19.8", "stdlib")
    assert len(e.blocking) == e.predicate["summary"]["findings"]
    # each chain: the embedded release, then which vulnerable functions the binary links
    assert {c.note.split("; ")[0] for c in e.blocking} == {NOTE}
    # the call graph places each linked function: reached from main, or only by an indirect call
    assert {c.reachability for c in e.blocking} == {"reachable", "present", "not-present"}
    first = min(c.vulnerability for c in e.blocking)
    chain = next(c for c in e.blocking if c.vulnerability == first)
    assert chain.files == ("/usr/bin/docker-registry",)
    assert chain.note.startswith(f"{NOTE}; /usr/bin/docker-registry links ")
    text = explain.render_text(e)
    assert (
        f"{first} (unknown): pkg:golang/stdlib@v1.19.8 -> /usr/bin/docker-registry -> "
        f"{chain.layer} -> entrypoint: reachability {chain.reachability} [{chain.note}]"
    ) in text
    doc = json.loads(explain.render_json(e))
    assert {f["note"].split("; ")[0] for f in doc["blockingFindings"]} == {NOTE}
    # the signed reachability evidence carries each symbol-level decision
    cited = e.predicate["evidence"]["reachability"]["digest"]
    reach = json.loads(blobs.read("reachability", Digest.parse(cited)) or b"{}")
    states = {r["vulnerability"]: r["reachability"] for r in reach["findings"]}
    assert states == {c.vulnerability: c.reachability for c in e.blocking}
    assert reach["components"][0]["reachability"] == "reachable"  # its most exposed finding
    not_present = [r for r in e.predicate["reasons"] if r["code"] == "RISK.CVE.CODE_NOT_PRESENT"]
    assert len(not_present) == list(states.values()).count("not-present")


# ---------------------------------------------------------------- who owns the binary


def deb(name: str, version: str, source: str, files: tuple[str, ...]) -> Package:
    return Package(
        PackageType.DEB,
        name,
        version,
        arch="amd64",
        source_name=source,
        source_version=version,
        locations=("var/lib/dpkg/status",),
        installed_files=files,
    )


def go(name: str, version: str, binary: str) -> Package:
    return Package(PackageType.GOLANG, name, version, locations=(binary,))


GO_DEB = deb(
    "golang-1.19-go",
    "1.19.8-2",
    "golang-1.19",
    ("/usr/lib/go-1.19/bin/go", "/usr/lib/go-1.19/bin/gofmt"),
)
REGISTRY_DEB = deb(
    "docker-registry", "2.8.2+ds1-1", "docker-registry", ("/usr/bin/docker-registry",)
)


def _match(packages: list[Package]) -> FindingsReport:
    return match(Inventory.of(packages, BOOKWORM), MemoryAdvisories(records(), snapshot=SNAPSHOT))


def records_of(report: FindingsReport, name: str) -> set[str]:
    """The Go vulndb ids behind the findings on ``name`` (a finding is named by its CVE)."""
    return {r.id for f in report.findings if f.component.name == name for r in f.records}


def test_the_distributions_go_package_stays_with_its_data() -> None:
    """The go command and gofmt of golang-1.19-go: Debian's records about golang-1.19 judge
    them, not the release they were built with (Debian may patch its Go)."""
    packages = [
        GO_DEB,
        go("stdlib", "v1.19.8", "usr/lib/go-1.19/bin/go"),
        go("toolchain", "v1.19.8", "usr/lib/go-1.19/bin/go"),
        go("stdlib", "v1.19.8", "usr/lib/go-1.19/bin/gofmt"),
    ]
    delegated = delegations(packages, BOOKWORM)
    assert set(delegated) == set(packages[1:])
    assert {d.owner for d in delegated.values()} == {
        "pkg:deb/debian/golang-1.19-go@1.19.8-2?arch=amd64&distro=debian-12"
    }
    assert delegated[packages[3]].reason == (
        "usr/lib/go-1.19/bin/gofmt belongs to the deb package golang-1.19-go, the "
        "distribution's Go release; it is judged by the distribution's data"
    )
    assert _match(packages).findings == ()


def test_a_go_installation_no_package_owns_gets_toolchain_findings_too() -> None:
    report = _match(
        [
            go("stdlib", "v1.19.8", "usr/local/go/bin/go"),
            go("toolchain", "v1.19.8", "usr/local/go/bin/go"),
        ]
    )
    assert records_of(report, "toolchain") == expected_ids("1.19.8", "toolchain")
    assert records_of(report, "stdlib") == expected_ids("1.19.8", "stdlib")
    evidence = next(f for f in report.findings if f.component.name == "toolchain").evidence
    assert evidence.note == (
        "/usr/local/go/bin/go (no OS package owns it) is the go command of go1.19.8"
    )
    assert [(f.path, f.owner) for f in evidence.files] == [("usr/local/go/bin/go", "")]
    assert report.delegated == ()


def test_modules_of_an_owned_binary_stay_with_the_owner() -> None:
    module = go("golang.org/x/net", "v0.7.0", "usr/bin/docker-registry")
    packages = [REGISTRY_DEB, go("stdlib", "v1.19.8", "usr/bin/docker-registry"), module]
    delegated = delegations(packages, BOOKWORM)
    assert list(delegated) == [module]
    report = _match(packages)
    assert {f.component.name for f in report.findings} == {"stdlib"}
    assert {f.evidence.note for f in report.findings} == {NOTE}


def test_a_later_release() -> None:
    report = _match([go("stdlib", "v1.19.9", "app/server")])
    found = records_of(report, "stdlib")
    assert found == expected_ids("1.19.9", "stdlib")
    assert "GO-2023-1751" not in found  # fixed in 1.19.9
    assert report.unknowns == ()


@pytest.mark.parametrize(("go_version", "affected"), [("go1.21rc2", True), ("go1.21rc4", False)])
def test_release_candidates(go_version: str, affected: bool) -> None:
    """GO-2023-1987's 1.21 line: introduced 1.21.0-0, fixed 1.21.0-rc.4."""
    version = stdlib_version(go_version)
    assert version is not None
    report = _match([go("stdlib", version, "app/server")])
    assert ("GO-2023-1987" in records_of(report, "stdlib")) is affected
    assert report.unknowns == ()
