"""Distribution packages: which names and version are looked up, what a status means, which
module stream an entry is about, who owns what.

Which distribution an image is, which release's data applies and by which package name is
the distribution table's answer (:mod:`appliance.distros`): Debian and Ubuntu are judged by
source package and release (``Debian:12``, ``Ubuntu:22.04``), Alpine and Wolfi by origin
package (``Alpine:v3.20``, ``Wolfi``), the RHEL family by binary and source rpm name and the
major release (``Red Hat:9``). The tracker's statuses, as the mirror keeps
them: a fixed version (affected below it; ``0`` = never affected), ``open`` (affected, no fix
yet), ``<not-affected>``, ``<no-dsa>``/``ignored``/``postponed``/``end-of-life`` (affected,
and the release will not get a fix) and ``undetermined`` (an unknown, not a guess).

A language package that the distribution installed (Debian's ``python3-requests`` carries a
``requests`` dist-info) is judged by the distribution's data through its owner, never by the
language advisories: Debian backports fixes without changing the upstream version number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from appliance.distros import DISTROS, OS_TYPES, distro_of
from appliance.match.model import Delegated, FixState, MatchKind, UnknownKind
from appliance.match.osv import Affected, Outcome, Undecided, entry_scheme, evaluate
from appliance.scanner.model import OSInfo, Package, PackageType
from appliance.scanner.purl import package_purl
from appliance.versions import UnknownScheme

# Statuses of a release entry without a range.
_NOT_AFFECTED: Final = frozenset({"not-affected"})
_WONT_FIX: Final = frozenset({"no-dsa", "ignored", "postponed", "end-of-life"})
_UNFIXED: Final = frozenset({"unfixed", "open"})
_NOTE_KEYS: Final = ("status", "urgency", "nodsa", "nodsa_reason", "note")
# Directories only the distribution's package manager writes to, from the distribution table.
_DISTRO_PATHS: Final = {d.id: d.install_paths for d in DISTROS if d.install_paths}
_MODULARITY_LABEL: Final = "modularitylabel"
# The rule of each OS package type, for a package whose image names no distribution.
_BY_TYPE: Final = {d.package_type: d for d in reversed(DISTROS)}


def lookup_names(package: Package, os_info: OSInfo | None = None) -> tuple[tuple[str, ...], str]:
    """Every package name records may be keyed by, and the version they compare against:
    the source package and its version for Debian and Ubuntu, the origin for Alpine and
    Wolfi, the binary and the source rpm name with the installed EVR for the RHEL family
    (the image's distribution entry decides; without one, the package type's usual rule)."""
    distro = distro_of(os_info)
    if distro is None or distro.package_type is not package.type:
        distro = _BY_TYPE.get(package.type)
    if distro is None:
        return (package.name,), package.full_version
    return distro.lookup_names(package), distro.lookup_version(package)


def module_stream(package: Package) -> str | None:
    """``name:stream`` of a modular rpm (from its ``MODULARITYLABEL``
    ``name:stream:version:context``), None for a non-modular package."""
    for key, value in package.qualifiers:
        if key == _MODULARITY_LABEL and value:
            name, _, rest = value.partition(":")
            stream = rest.partition(":")[0]
            return f"{name}:{stream}" if name and stream else value
    return None


def entry_applies(entry: Mapping[str, Any], stream: str | None) -> bool:
    """Whether an entry of a feed that names module streams applies to a package of the
    module stream ``stream`` (None: not modular): an entry naming a module applies only to
    that ``name:stream``, an entry without one only to non-modular packages."""
    specific = entry.get("database_specific")
    module = specific.get("module") if isinstance(specific, Mapping) else None
    if not isinstance(module, str) or not module:
        return stream is None
    return module == stream


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
