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


def delegations(packages: Iterable[Package], os_info: OSInfo | None) -> dict[Package, Delegated]:
    """Language packages installed by the distribution, with the owner that judges them.

    A package is distro-installed when a file it was read from is owned by an OS package
    (dpkg ``.list``, apk's file list, the rpm database), or, when ownership is not known,
    when it lies in a directory only the distribution's package manager writes to.
    """
    packages = list(packages)
    owner_of: dict[str, Package] = {}
    for package in packages:
        if package.type in OS_TYPES:
            for path in package.installed_files:
                owner_of.setdefault(path.lstrip("/"), package)
    prefixes = _DISTRO_PATHS.get(os_info.id, ()) if os_info else ()
    out: dict[Package, Delegated] = {}
    for package in packages:
        if package.type in OS_TYPES:
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
