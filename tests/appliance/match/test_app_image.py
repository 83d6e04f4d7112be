"""Acceptance: the app fixture image's PyPI and npm findings are exactly those of the
independent reading in tests/golden/match/app-image.json, and packages outside every range
get none."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.match import Inventory, MatchKind, MemoryAdvisories, match
from appliance.scanner.model import Package, PackageType
from tests.appliance.match.data import SNAPSHOT, npm, pypi

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "match" / "app-image.json"

APP = [
    Package(
        PackageType.PYPI,
        "requests",
        "2.19.0",
        locations=("app/requests-2.19.0.dist-info/METADATA",),
    ),
    Package(
        PackageType.PYPI, "urllib3", "1.24.1", locations=("app/urllib3-1.24.1.dist-info/METADATA",)
    ),
    Package(PackageType.PYPI, "Jinja2", "2.10", locations=("app/Jinja2-2.10.dist-info/METADATA",)),
    Package(PackageType.PYPI, "PyYAML", "5.3", locations=("app/PyYAML-5.3.dist-info/METADATA",)),
    Package(
        PackageType.PYPI, "Django", "3.2.0", locations=("app/Django-3.2.0.dist-info/METADATA",)
    ),
    Package(
        PackageType.NPM, "lodash", "4.17.15", locations=("app/node_modules/lodash/package.json",)
    ),
    Package(
        PackageType.NPM, "minimist", "1.2.0", locations=("app/node_modules/minimist/package.json",)
    ),
]


def source() -> MemoryAdvisories:
    return MemoryAdvisories([*pypi(), *npm()], snapshot=SNAPSHOT)


def test_app_image_findings_are_exactly_the_independent_reading() -> None:
    golden = json.loads(GOLDEN.read_text())
    report = match(Inventory.of(APP), source())
    got = {
        (m.record.id, f.component.purl.split("@")[0].removeprefix("pkg:"))
        for f in report.findings
        for m in f.matches
    }
    want = {(e["record"], e["package"]) for e in golden["expected"]}
    assert got == want
    # one finding per record here: no two of these records share an alias
    assert len(report.findings) == len(golden["expected"]) == 39
    assert report.unknowns == ()
    by_record = {m.record.id: f for f in report.findings for m in f.matches}
    for entry in golden["expected"]:
        finding = by_record[entry["record"]]
        assert finding.component.version == entry["version"]
        assert set(entry["aliases"]) | {entry["record"]} == finding.ids
    lodash = by_record["NPM-516"]
    assert lodash.matches[0].kind is MatchKind.NPM_SEMVER
    assert lodash.fixed_versions == (">=4.17.19",)
    assert lodash.id == "NPM-516"  # no CVE, no alias: the advisory id stands


def test_explanations_name_record_range_scheme_and_snapshot() -> None:
    report = match(Inventory.of(APP), source())
    django = [f for f in report.findings if f.id == "CVE-2021-31542"]
    assert len(django) == 1
    (detail,) = django[0].matches
    assert detail.record.id == "PYSEC-2021-7"
    assert detail.range == "ECOSYSTEM: introduced 3.2, fixed 3.2.1"
    assert detail.scheme == "pep440"
    assert detail.snapshot == SNAPSHOT
    assert django[0].fixed_versions == ("3.2.1",)  # only fixes above 3.2.0 (not 2.2.21, 3.1.9)
    assert detail.explain() == (
        "PYSEC-2021-7 PyPI/django: 3.2.0 in [ECOSYSTEM: introduced 3.2, fixed 3.2.1] "
        "(pep440, osv-range)"
    )


def test_no_findings_outside_every_range() -> None:
    fixed = [
        Package(PackageType.PYPI, "requests", "2.32.3"),
        Package(PackageType.PYPI, "urllib3", "2.2.3"),
        Package(PackageType.PYPI, "jinja2", "3.1.4"),
        Package(PackageType.PYPI, "pyyaml", "6.0.2"),
        Package(PackageType.PYPI, "django", "4.2.16"),
        Package(PackageType.NPM, "lodash", "4.17.21"),
        Package(PackageType.NPM, "minimist", "1.2.8"),
        Package(PackageType.PYPI, "not-a-known-package", "1.0"),
    ]
    report = match(Inventory.of(fixed), source())
    assert report.findings == ()
    assert report.unknowns == ()
    assert report.components == len(fixed)


def test_same_inputs_same_bytes_whatever_the_order() -> None:
    from bundles import canonical

    a = match(Inventory.of(APP), source())
    b = match(
        Inventory.of(list(reversed(APP))),
        MemoryAdvisories([*reversed(pypi()), *npm()], snapshot=SNAPSHOT),
    )
    assert canonical.dumps(a.to_dict()) == canonical.dumps(b.to_dict())
