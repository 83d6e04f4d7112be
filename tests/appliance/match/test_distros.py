"""The distribution table: one entry per os-release ID, the ID_LIKE fallback, release rules,
and an explicit reason for every distribution without data."""

from __future__ import annotations

import pytest

from appliance.distros import BY_ID, DISTROS, ReleaseRule, _index, distro_of, os_ecosystem
from appliance.match import Inventory, MemoryAdvisories, UnknownKind, match
from appliance.scanner.model import OSInfo, Package, PackageType
from appliance.versions import scheme_for_ecosystem
from tests.appliance.match import distro_records


@pytest.mark.parametrize(
    ("os_info", "ecosystem"),
    [
        (OSInfo("debian", "12", "bookworm"), "Debian:12"),
        (OSInfo("debian", None, "trixie"), "Debian:13"),
        (OSInfo("debian", None, "sid"), "Debian:unstable"),
        (OSInfo("ubuntu", "22.04", "jammy"), "Ubuntu:22.04"),
        (OSInfo("ubuntu", None, "noble"), "Ubuntu:24.04"),
        (OSInfo("alpine", "3.20.3"), "Alpine:v3.20"),
        (OSInfo("alpine", "3.21_alpha20240807"), "Alpine:edge"),
        (OSInfo("wolfi", "20230201"), "Wolfi"),
        (OSInfo("chainguard", "20231201"), "Chainguard"),
        (OSInfo("rhel", "9.4", id_like=("fedora",)), "Red Hat:9"),  # UBI 9 says ID=rhel
        (OSInfo("rhel", "8.10"), "Red Hat:8"),
        (OSInfo("centos", "9", id_like=("rhel", "fedora")), "Red Hat:9"),
        (OSInfo("rocky", "9.3", id_like=("rhel", "centos", "fedora")), "Rocky Linux:9"),
        (OSInfo("almalinux", "9.4", id_like=("rhel", "centos", "fedora")), "AlmaLinux:9"),
        # a derivative with no entry of its own: its first ID_LIKE with one
        (OSInfo("myrhel", "9.2", id_like=("rhel", "fedora")), "Red Hat:9"),
        (OSInfo("pop", "22.04", id_like=("ubuntu", "debian")), "Ubuntu:22.04"),
        # entries without data, whatever their ID_LIKE says
        (OSInfo("amzn", "2023", id_like=("fedora",)), None),
        (OSInfo("amzn", "2", id_like=("centos", "rhel", "fedora")), None),
        (OSInfo("ol", "9.3", id_like=("fedora",)), None),
        (OSInfo("fedora", "40"), None),
        (OSInfo("sles", "15.5", id_like=("suse",)), None),
        # no release in os-release: no data can be chosen
        (OSInfo("rhel", None), None),
        (OSInfo("debian", None, "unknown-codename"), None),
        (OSInfo("gentoo", "2.15"), None),
        (None, None),
    ],
)
def test_os_release_selects_the_ecosystem(os_info: OSInfo | None, ecosystem: str | None) -> None:
    assert os_ecosystem(os_info) == ecosystem


def test_id_like_is_only_a_fallback() -> None:
    amazon = OSInfo("amzn", "2", id_like=("centos", "rhel", "fedora"))
    assert distro_of(amazon) is BY_ID["amzn"]
    assert distro_of(OSInfo("myrhel", "9", id_like=("unknown", "rhel"))) is BY_ID["rhel"]
    assert distro_of(OSInfo("myos", "1", id_like=("unknown",))) is None


@pytest.mark.parametrize(
    ("os_id", "words"),
    [
        ("fedora", "Fedora"),
        ("amzn", "Amazon Linux"),
        ("ol", "Oracle Linux"),
        ("sles", "SUSE"),
    ],
)
def test_distributions_without_a_feed_are_unknowns_with_their_reason(
    os_id: str, words: str
) -> None:
    bash = Package(PackageType.RPM, "bash", "5.2.15", release="3.amzn2023", source_name="bash")
    os_info = OSInfo(os_id, "9", pretty_name=f"{words} 9", id_like=("rhel", "fedora"))
    # Red Hat's records are in the snapshot, but they do not judge these builds
    report = match(Inventory.of([bash], os_info), MemoryAdvisories(distro_records.redhat9()))
    assert report.findings == ()
    (unknown,) = report.unknowns
    assert unknown.kind is UnknownKind.NO_DATA
    assert words in unknown.reason
    assert "no feed of" in unknown.reason


def test_an_unnamed_release_is_an_unknown_with_its_reason() -> None:
    bash = Package(PackageType.RPM, "bash", "5.1.8", release="4.el9", source_name="bash")
    report = match(
        Inventory.of([bash], OSInfo("rhel", None, pretty_name="RHEL")),
        MemoryAdvisories(distro_records.redhat9()),
    )
    (unknown,) = report.unknowns
    assert unknown.kind is UnknownKind.NO_DATA
    assert "does not name the Red Hat Enterprise Linux release (major of VERSION_ID)" in (
        unknown.reason
    )


def test_every_entry_has_a_scheme_and_rules() -> None:
    for distro in DISTROS:
        if distro.ecosystem:
            assert scheme_for_ecosystem(distro.ecosystem).name == distro.scheme
            assert not distro.no_data
        else:
            assert distro.no_data
        assert distro.release_rule in ReleaseRule
    # the release rule is major-only for every RPM distribution
    assert {d.release_rule for d in DISTROS if d.package_type is PackageType.RPM} == {
        ReleaseRule.MAJOR
    }


def test_the_table_refuses_duplicates_and_entries_without_data_or_reason() -> None:
    with pytest.raises(ValueError, match="duplicate os-release ID 'rhel'"):
        _index((BY_ID["rhel"], BY_ID["rhel"]))
    from dataclasses import replace

    with pytest.raises(ValueError, match="'fedora' needs either an ecosystem or a no-data"):
        _index((replace(BY_ID["fedora"], no_data=""),))


def test_the_registry_reads_the_language_table_too() -> None:
    from appliance.ecosystems import LANGUAGE_ECOSYSTEMS, LANGUAGES
    from appliance.versions import UnknownScheme, supported_ecosystems

    for lang in LANGUAGES:
        assert LANGUAGE_ECOSYSTEMS[lang.package_type] == lang.ecosystem
        if lang.scheme:
            assert scheme_for_ecosystem(lang.ecosystem).name == lang.scheme
        else:  # Packagist: no PHP ordering, so its packages stay unknown
            assert lang.ecosystem not in supported_ecosystems()
            with pytest.raises(UnknownScheme):
                scheme_for_ecosystem(lang.ecosystem)
