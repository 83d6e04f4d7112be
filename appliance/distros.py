"""The one table of distributions: what an image's ``/etc/os-release`` says, and how its
packages are judged.

One frozen :class:`Distro` per os-release ``ID`` holds everything the appliance needs to
know about that distribution: the OSV ecosystem prefix its feed's records carry, the package
type and version scheme, which name and version of a package the records are keyed by (the
source rule), how the release part of the ecosystem is read from os-release (the release
rule), and which directories only its package manager writes to. Supporting another
distribution is one feed module on the mirror plus one entry here (grype keeps one matcher
per distribution for the same reason).

A distribution the appliance knows but has no feed for (Fedora, Amazon Linux, Oracle Linux,
SLES) is an entry too, with the reason its packages are unknowns: an image of it is never
judged by a relative's data, and never reported clean.

``ID_LIKE`` is a fallback only: it is read when the image's own ``ID`` has no entry at all
(a derivative such as ``ID=myrhel``, ``ID_LIKE="rhel fedora"``), first listed first. An
``ID`` that has an entry, even one without data, is never judged by its ``ID_LIKE``: Amazon
Linux says ``ID_LIKE="centos rhel fedora"`` but its packages are not RHEL's builds.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from appliance.scanner.model import OSInfo, Package, PackageType
from bundles.releases import DEBIAN_CODENAMES


class SourceRule(enum.StrEnum):
    """Which name and version of an installed package the distribution's records are
    keyed by."""

    #: dpkg: the source package (``Source:``) and its version when given, else the
    #: binary's (Debian, Ubuntu backport fixes per source package).
    SOURCE = "source package and its version"
    #: apk: the origin package (``o:``) and the installed version (Alpine, Wolfi).
    ORIGIN = "origin package, installed version"
    #: rpm: the binary name and the source rpm's name (``SOURCERPM``) both, compared with the
    #: installed package's epoch:version-release (feeds name either; the EVR of a binary
    #: carries the epoch, the source rpm's file name never does).
    BINARY_AND_SOURCE = "binary and source rpm name, installed EVR"


class ReleaseRule(enum.StrEnum):
    """How the release part of the ecosystem (``Debian:12``) is read from os-release."""

    #: ``VERSION_ID``'s major number (``9.4`` → ``9``): RPM distributions publish one data
    #: set per major release.
    MAJOR = "major of VERSION_ID"
    #: ``VERSION_ID``'s major number, else ``VERSION_CODENAME`` through the codename table
    #: (Debian testing and sid have no ``VERSION_ID``).
    MAJOR_OR_CODENAME = "major of VERSION_ID, else the codename"
    #: ``VERSION_ID`` as written (``22.04``), else the codename.
    VERSION_OR_CODENAME = "VERSION_ID, else the codename"
    #: Alpine's branch ``v3.20`` from ``3.20.3``; ``edge`` for snapshots (``3.21_alpha…``).
    BRANCH = "branch vMAJOR.MINOR of VERSION_ID"
    #: One rolling release: the ecosystem has no release part (Wolfi, Chainguard).
    ROLLING = "rolling (no release)"


@dataclass(frozen=True, slots=True)
class Distro:
    """One distribution, as the appliance judges it."""

    #: os-release ``ID``.
    id: str
    #: The name people call it (messages, docs).
    title: str
    #: The package type its package manager installs.
    package_type: PackageType
    #: The version scheme its versions compare in (a name in :mod:`appliance.versions`).
    scheme: str
    source_rule: SourceRule
    release_rule: ReleaseRule
    #: The OSV ecosystem prefix of its records (``Red Hat`` → ``Red Hat:9``); empty when no
    #: feed is carried for it, and then ``no_data`` says why.
    ecosystem: str = ""
    no_data: str = ""
    #: Codename → release, for releases os-release names without a ``VERSION_ID``.
    codenames: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Directories only the distribution's package manager installs to (root-relative).
    install_paths: tuple[str, ...] = ()
    #: Whether the feed names module streams (``database_specific.module``): then an entry
    #: with a module applies only to a package built for that ``name:stream``, and an entry
    #: without one only to non-modular packages. Feeds that do not name streams (Rocky,
    #: AlmaLinux) have every entry apply to every package of that name.
    module_streams: bool = False

    def release(self, os_info: OSInfo) -> str | None:
        """The release part of the ecosystem for this image, None when os-release does not
        say (then no data can be chosen)."""
        version = (os_info.version_id or "").strip()
        codename = self.codenames.get((os_info.version_codename or "").strip().lower())
        match self.release_rule:
            case ReleaseRule.MAJOR:
                major = version.split(".", 1)[0]
                return major if major.isdigit() else None
            case ReleaseRule.MAJOR_OR_CODENAME:
                major = version.split(".", 1)[0]
                return major if major.isdigit() else codename
            case ReleaseRule.VERSION_OR_CODENAME:
                return version or codename
            case ReleaseRule.BRANCH:
                if not version:
                    return None
                m = _ALPINE_BRANCH.fullmatch(version)
                return f"v{m.group(1)}.{m.group(2)}" if m else "edge"
            case ReleaseRule.ROLLING:
                return ""

    def ecosystem_of(self, os_info: OSInfo) -> str | None:
        """The OSV ecosystem of this image's release (``Debian:12``, ``Wolfi``); None when
        no feed is carried or os-release does not name the release."""
        if not self.ecosystem:
            return None
        release = self.release(os_info)
        if release is None:
            return None
        return f"{self.ecosystem}:{release}" if release else self.ecosystem

    def lookup_names(self, package: Package) -> tuple[str, ...]:
        """The package names its records may be keyed by, most specific first."""
        match self.source_rule:
            case SourceRule.SOURCE | SourceRule.ORIGIN:
                return (package.source_name or package.name,)
            case SourceRule.BINARY_AND_SOURCE:
                if package.source_name and package.source_name != package.name:
                    return (package.name, package.source_name)
                return (package.name,)

    def lookup_version(self, package: Package) -> str:
        """The version its records' ranges are compared with."""
        if self.source_rule is SourceRule.SOURCE:
            return package.source_version or package.full_version
        return package.full_version


_ALPINE_BRANCH: Final = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")
_DEBIAN_PATHS: Final = ("usr/lib/python3/dist-packages/", "usr/share/nodejs/", "usr/lib/nodejs/")
_RPM_NO_FEED: Final = (
    "no feed of {title} advisories is carried yet; its packages are not Red Hat's builds, so "
    "Red Hat's data cannot judge them"
)


def _rpm(
    distro_id: str,
    title: str,
    ecosystem: str = "",
    no_data: str = "",
    *,
    module_streams: bool = False,
) -> Distro:
    return Distro(
        distro_id,
        title,
        PackageType.RPM,
        "rpm",
        SourceRule.BINARY_AND_SOURCE,
        ReleaseRule.MAJOR,
        ecosystem=ecosystem,
        no_data=no_data or ("" if ecosystem else _RPM_NO_FEED.format(title=title)),
        module_streams=module_streams,
    )


#: Every distribution the appliance knows, one entry per os-release ``ID``.
DISTROS: Final[tuple[Distro, ...]] = (
    Distro(
        "debian",
        "Debian",
        PackageType.DEB,
        "dpkg",
        SourceRule.SOURCE,
        ReleaseRule.MAJOR_OR_CODENAME,
        ecosystem="Debian",
        codenames=DEBIAN_CODENAMES,
        install_paths=_DEBIAN_PATHS,
    ),
    Distro(
        "ubuntu",
        "Ubuntu",
        PackageType.DEB,
        "dpkg",
        SourceRule.SOURCE,
        ReleaseRule.VERSION_OR_CODENAME,
        ecosystem="Ubuntu",
        codenames=MappingProxyType(
            {
                "bionic": "18.04",
                "focal": "20.04",
                "jammy": "22.04",
                "noble": "24.04",
                "oracular": "24.10",
                "plucky": "25.04",
            }
        ),
        install_paths=_DEBIAN_PATHS,
    ),
    Distro(
        "alpine",
        "Alpine Linux",
        PackageType.APK,
        "apk",
        SourceRule.ORIGIN,
        ReleaseRule.BRANCH,
        ecosystem="Alpine",
    ),
    Distro(
        "wolfi",
        "Wolfi",
        PackageType.APK,
        "apk",
        SourceRule.ORIGIN,
        ReleaseRule.ROLLING,
        ecosystem="Wolfi",
    ),
    Distro(
        "chainguard",
        "Chainguard OS",
        PackageType.APK,
        "apk",
        SourceRule.ORIGIN,
        ReleaseRule.ROLLING,
        ecosystem="Chainguard",
    ),
    # UBI images say ID=rhel: a UBI 9 image is RHEL 9.
    _rpm("rhel", "Red Hat Enterprise Linux", "Red Hat", module_streams=True),
    # CentOS Linux 7/8 rebuilt RHEL's sources with RHEL's version-release; CentOS Stream
    # is where the next RHEL minor is built, so its packages are at or ahead of RHEL's
    # (docs/matching.md: why Red Hat's data judges both, and what that can miss).
    _rpm("centos", "CentOS", "Red Hat", module_streams=True),
    _rpm("rocky", "Rocky Linux", "Rocky Linux"),
    _rpm("almalinux", "AlmaLinux", "AlmaLinux"),
    _rpm("fedora", "Fedora"),
    _rpm("amzn", "Amazon Linux"),
    _rpm("ol", "Oracle Linux"),
    _rpm(
        "sles",
        "SUSE Linux Enterprise Server",
        no_data="no feed of SUSE advisories is carried yet",
    ),
)


def _index(distros: tuple[Distro, ...]) -> Mapping[str, Distro]:
    table: dict[str, Distro] = {}
    for distro in distros:
        if distro.id in table:
            raise ValueError(f"duplicate os-release ID {distro.id!r} in the distribution table")
        if bool(distro.ecosystem) == bool(distro.no_data):
            raise ValueError(
                f"distribution {distro.id!r} needs either an ecosystem or a no-data reason"
            )
        table[distro.id] = distro
    return MappingProxyType(table)


BY_ID: Final = _index(DISTROS)

#: The package types distributions install.
OS_TYPES: Final = frozenset(d.package_type for d in DISTROS)


def distro_of(os_info: OSInfo | None) -> Distro | None:
    """The entry that judges an image: its own ``ID``'s, else the first ``ID_LIKE`` with an
    entry, else None."""
    if os_info is None:
        return None
    own = BY_ID.get(os_info.id)
    if own is not None:
        return own
    for like in os_info.id_like:
        if (entry := BY_ID.get(like.lower())) is not None:
            return entry
    return None


def os_ecosystem(os_info: OSInfo | None) -> str | None:
    """The OSV ecosystem of the image's distribution release, None when no data can exist."""
    distro = distro_of(os_info)
    return distro.ecosystem_of(os_info) if distro is not None and os_info is not None else None


def ecosystem_schemes() -> tuple[tuple[str, str], ...]:
    """(OSV ecosystem prefix, version scheme) of every distribution with a feed."""
    seen: dict[str, str] = {}
    for distro in DISTROS:
        if distro.ecosystem:
            seen.setdefault(distro.ecosystem, distro.scheme)
    return tuple(seen.items())
