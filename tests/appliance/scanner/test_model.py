from __future__ import annotations

import json

from appliance.scanner.model import (
    AnalysisResult,
    FileOwnership,
    OSInfo,
    Package,
    PackageType,
    Unknown,
)
from bundles import canonical


def test_full_versions() -> None:
    assert Package(PackageType.DEB, "a", "1.0-1", epoch=2).full_version == "2:1.0-1"
    assert Package(PackageType.RPM, "a", "1.0", epoch=1, release="3.el9").full_version == (
        "1:1.0-3.el9"
    )
    assert Package(PackageType.RPM, "a", "1.0", epoch=0, release="3").full_version == "1.0-3"
    assert Package(PackageType.PYPI, "a", "1.0", epoch=1).full_version == "1.0"


def test_result_round_trips_through_canonical_json() -> None:
    result = AnalysisResult(
        packages=(
            Package(
                PackageType.RPM,
                "x",
                "1",
                epoch=None,
                release="2",
                arch="noarch",
                licenses=("MIT",),
                qualifiers=(("modularitylabel", "m:1"),),
                locations=("var/lib/rpm/rpmdb.sqlite",),
                installed_files=("usr/bin/x",),
                dependencies=("y",),
            ),
        ),
        os=OSInfo("rhel", "9.3", None, "Red Hat", "RHEL", ("fedora",)),
        unknowns=(Unknown("a", "why", "rpm"),),
        ownership=(FileOwnership("o", ("f",), "l"),),
    )
    data = canonical.dumps(result.to_dict())
    assert AnalysisResult.from_dict(json.loads(data)) == result


def test_sorted_is_deterministic_and_dedupes() -> None:
    a = Package(PackageType.DEB, "a", "1", epoch=1)
    a_no_epoch = Package(PackageType.DEB, "a", "1")
    b = Package(PackageType.APK, "b", "1")
    one = AnalysisResult(
        packages=(a, b, a_no_epoch, a), unknowns=(Unknown("z", "r"), Unknown("a", "r"))
    )
    two = AnalysisResult(
        packages=(a_no_epoch, b, a), unknowns=(Unknown("a", "r"), Unknown("z", "r"))
    )
    assert one.sorted() == two.sorted()
    assert one.sorted().packages == (b, a_no_epoch, a)
    assert [u.path for u in one.sorted().unknowns] == ["a", "z"]


def test_combine_keeps_the_first_os() -> None:
    combined = AnalysisResult.combine(
        [AnalysisResult(), AnalysisResult(os=OSInfo("debian")), AnalysisResult(os=OSInfo("alpine"))]
    )
    assert combined.os == OSInfo("debian")
    assert AnalysisResult().is_empty()
