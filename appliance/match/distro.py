"""Distribution packages: which release's data applies, what a status means, who owns what.

Debian is judged by source package and release (``Debian:12`` from os-release), Alpine by
origin package and branch (``Alpine:v3.20``). The tracker's statuses, as the mirror keeps
them: a fixed version (affected below it; ``0`` = never affected), ``open`` (affected, no fix
yet), ``<not-affected>``, ``<no-dsa>``/``ignored``/``postponed``/``end-of-life`` (affected,
and the release will not get a fix) and ``undetermined`` (an unknown, not a guess).

A language package that the distribution installed (Debian's ``python3-requests`` carries a
``requests`` dist-info) is judged by the distribution's data through its owner, never by the
language advisories: Debian backports fixes without changing the upstream version number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from appliance.match.model import Delegated, FixState, MatchKind, UnknownKind
from appliance.match.osv import Affected, Outcome, Undecided, entry_scheme, evaluate
from appliance.scanner.model import OSInfo, Package, PackageType
from appliance.scanner.purl import package_purl
from appliance.versions import UnknownScheme

OS_TYPES: Final = frozenset({PackageType.DEB, PackageType.APK, PackageType.RPM})

# Debian codenames without a VERSION_ID in os-release (testing, sid).
_DEBIAN_CODENAMES: Final = {
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
    "sid": "unstable",
}
_ALPINE_RELEASE = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")
# Statuses of a release entry without a range.
_NOT_AFFECTED: Final = frozenset({"not-affected"})
_WONT_FIX: Final = frozenset({"no-dsa", "ignored", "postponed", "end-of-life"})
_UNFIXED: Final = frozenset({"unfixed", "open"})
_NOTE_KEYS: Final = ("status", "urgency", "nodsa", "nodsa_reason", "note")
# Directories only the distribution's package manager writes to.
_DISTRO_PATHS: Final = {
    "debian": ("usr/lib/python3/dist-packages/", "usr/share/nodejs/", "usr/lib/nodejs/"),
}


def os_ecosystem(os_info: OSInfo | None) -> str | None:
    """The OSV ecosystem of the image's distribution release, None when no data can exist."""
    if os_info is None:
        return None
    if os_info.id == "debian":
        if os_info.version_id:
            return f"Debian:{os_info.version_id.split('.')[0]}"
        release = _DEBIAN_CODENAMES.get(os_info.version_codename or "")
        return f"Debian:{release}" if release else None
    if os_info.id == "alpine" and os_info.version_id:
        m = _ALPINE_RELEASE.fullmatch(os_info.version_id)
        if m:
            return f"Alpine:v{m.group(1)}.{m.group(2)}"
        return "Alpine:edge"  # "3.21_alpha20240807" and other edge snapshots
    return None


def lookup(package: Package) -> tuple[str, str]:
    """The package name records are keyed by and the version they compare against: the
    source package and its version for Debian, the origin for Alpine."""
    if package.type is PackageType.DEB:
        return package.source_name or package.name, package.source_version or package.full_version
    if package.type is PackageType.APK:
        return package.source_name or package.name, package.full_version
    return package.name, package.full_version


def _notes(specific: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (key, str(specific[key]))
            for key in _NOTE_KEYS
            if isinstance(specific.get(key), str | int) and str(specific[key])
        )
    )


def evaluate_distro(entry: Mapping[str, Any], ecosystem: str, version: str) -> Outcome:
    """Whether a distro record's entry for this release covers the installed version."""
    specific = entry.get("database_specific")
    specific = specific if isinstance(specific, Mapping) else {}
    notes = _notes(specific)
    status = str(specific.get("status", ""))
    if entry.get("ranges"):
        outcome = evaluate(entry, ecosystem, version)
        if not isinstance(outcome, Affected):
            return outcome
        kind = MatchKind.DISTRO_FIXED if outcome.fixed else MatchKind.DISTRO_UNFIXED
        text = outcome.range.removeprefix("ECOSYSTEM: ")
        return Affected(kind, text, outcome.scheme, outcome.fixed, notes)
    if status in _NOT_AFFECTED:
        return None
    if status in _WONT_FIX or status in _UNFIXED:
        try:
            scheme = entry_scheme(entry, ecosystem)
        except UnknownScheme as e:
            return Undecided(UnknownKind.NO_SCHEME, e.diagnostics())
        return Affected(MatchKind.DISTRO_UNFIXED, f"status {status}", scheme, (), notes)
    if status == "undetermined":
        return Undecided(
            UnknownKind.UNDETERMINED, f"{ecosystem} has not determined whether it is affected"
        )
    return Undecided(
        UnknownKind.UNSUPPORTED, f"{ecosystem} entry has no range and status {status!r}"
    )


def fix_state(fixed: Iterable[str], notes: Iterable[tuple[str, str]]) -> FixState:
    """``fixed`` when a fixed version exists; ``wont-fix`` when the distribution said it will
    not fix the release (no-dsa and friends); else ``not-fixed``."""
    if any(True for _ in fixed):
        return FixState.FIXED
    for key, value in notes:
        if key == "nodsa" or (key == "status" and value in _WONT_FIX):
            return FixState.WONT_FIX
    return FixState.NOT_FIXED


def file_owners(packages: Iterable[Package]) -> dict[str, Package]:
    """Image path (no leading ``/``) -> the OS package that installed it (dpkg ``.list``,
    apk's file list, the rpm database); the first package listing a path keeps it."""
    owner_of: dict[str, Package] = {}
    for package in packages:
        if package.type in OS_TYPES:
            for path in package.installed_files:
                owner_of.setdefault(path.lstrip("/"), package)
    return owner_of


#: What a Go binary embeds of the Go release that built it, by Go vulndb's package names.
GO_RELEASE_PARTS: Final = frozenset({"stdlib", "toolchain"})


def is_embedded_toolchain(package: Package) -> bool:
    """Whether ``package`` is the Go standard library (or the Go toolchain) a binary embeds:
    judged by the Go release it names, whatever package owns the binary."""
    return package.type is PackageType.GOLANG and package.name in GO_RELEASE_PARTS


def _owner_of(package: Package, owners: Mapping[str, Package]) -> tuple[str, Package | None]:
    for location in package.locations:
        path = location.lstrip("/")
        if path in owners:
            return path, owners[path]
    return (package.locations[0].lstrip("/") if package.locations else ""), None


def toolchain_note(package: Package, owners: Mapping[str, Package]) -> str:
    """The finding's explanation for an embedded Go release: the binary, its owner, the
    release, e.g. "/usr/bin/docker-registry (deb docker-registry 2.8.2+ds1-1) embeds go1.19.8"."""
    path, owner = _owner_of(package, owners)
    if not path:
        return ""  # no binary is known (a component read from elsewhere than a file)
    who = (
        f"{owner.type.value} {owner.name} {owner.full_version}"
        if owner is not None
        else "no OS package owns it"
    )
    release = "go" + package.version.removeprefix("v")
    if package.name == "toolchain":
        return f"/{path} ({who}) is the go command of {release}"
    return f"/{path} ({who}) embeds {release}"


def delegations(
    packages: Iterable[Package],
    os_info: OSInfo | None,
    owners: Mapping[str, Package] | None = None,
) -> dict[Package, Delegated]:
    """Language packages installed by the distribution, with the owner that judges them.

    A package is distro-installed when a file it was read from is owned by an OS package
    (dpkg ``.list``, apk's file list, the rpm database; ``owners`` when the caller has it
    from :func:`file_owners`), or, when ownership is not known, when it lies in a directory
    only the distribution's package manager writes to.

    The Go release a binary embeds (``stdlib``, ``toolchain``) is never delegated to the
    binary's owner: distributions file Go's advisories under their Go package and do not
    rebuild the programs built with it, so the embedded version is what counts. The one
    exception is the distribution's Go package itself (the OS package that installed a
    ``go`` command, and every Go binary it installed): its data is about that Go release.
    The binary's modules stay with the owner, whose data judges what it built and patched.
    """
    packages = list(packages)
    owner_of = file_owners(packages) if owners is None else owners
    go_packages: set[Package] = set()  # the OS packages that installed a go command
    for package in packages:
        if package.type is PackageType.GOLANG and package.name == "toolchain":
            owner = _owner_of(package, owner_of)[1]
            if owner is not None:
                go_packages.add(owner)
    prefixes = _DISTRO_PATHS.get(os_info.id, ()) if os_info else ()
    out: dict[Package, Delegated] = {}
    for package in packages:
        if package.type in OS_TYPES:
            continue
        if is_embedded_toolchain(package):
            path, owner = _owner_of(package, owner_of)
            if owner is not None and owner in go_packages:
                out[package] = Delegated(
                    package_purl(package, os_info),
                    package_purl(owner, os_info),
                    f"{path} belongs to the {owner.type.value} package {owner.name}, the "
                    "distribution's Go release; it is judged by the distribution's data",
                )
            continue
        for location in package.locations:
            path = location.lstrip("/")
            owner = owner_of.get(path)
            if owner is not None:
                out[package] = Delegated(
                    package_purl(package, os_info),
                    package_purl(owner, os_info),
                    f"{path} belongs to the {owner.type.value} package {owner.name}; "
                    "it is judged by the distribution's data",
                )
                break
            if path.startswith(prefixes):
                out[package] = Delegated(
                    package_purl(package, os_info),
                    "",
                    f"{path} is in a directory only the distribution's package manager "
                    "installs to; it is judged by the distribution's data",
                )
                break
    return out
