"""Package URLs (purl) for scanned packages, following the purl specification.

``pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS#SUBPATH``: every component is percent-encoded as
UTF-8 except the unreserved characters ``A-Z a-z 0-9 - . _ ~`` (and ``:``, which the
specification lets stand); namespace segments are encoded one by one and joined with ``/``;
qualifier keys are lowercase and sorted, and qualifiers with empty values are left out.
Distribution packages carry ``arch``, ``distro`` (``debian-12``) and a non-zero ``epoch`` as
qualifiers, as trivy and syft write them.

Case follows the type rules: the distribution namespace, apk, npm and Composer names are
lowercased, PyPI names are PEP 503-normalized. Go module paths keep their case although the
type definition asks for lowercase: module paths are case-sensitive (``github.com/Azure/…``
and ``github.com/azure/…`` are different modules), and vulnerability records name them as
written, so lowercasing would lose matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote

from packaging.utils import canonicalize_name

from appliance.scanner.model import OSInfo, Package, PackageType

_TYPE = re.compile(r"^[a-z][a-z0-9.+-]*$")
_QUALIFIER_KEY = re.compile(r"^[a-z][a-z0-9._-]*$")
_RPM_VENDORS: Final = {
    "rhel": "redhat",
    "ol": "oracle",
    "sles": "suse",
    "opensuse-leap": "opensuse",
}


class PurlError(ValueError):
    """A component cannot be written as a purl (bad type or qualifier key, empty name)."""


def _encode(text: str) -> str:
    return quote(text, safe="").replace("%3A", ":")


def build(
    type_: str,
    name: str,
    version: str | None = None,
    *,
    namespace: str | None = None,
    qualifiers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    subpath: str | None = None,
) -> str:
    """A purl string from its components (given decoded; encoding happens here)."""
    if not _TYPE.match(type_):
        raise PurlError(f"purl type {type_!r} is not valid (lowercase letter, then a-z0-9.+-)")
    if not name:
        raise PurlError("purl name is empty")
    text = f"pkg:{type_}/"
    if namespace:
        segments = [s for s in namespace.split("/") if s]
        text += "".join(_encode(s) + "/" for s in segments)
    text += _encode(name)
    if version:
        text += "@" + _encode(version)
    pairs = dict(qualifiers.items() if isinstance(qualifiers, Mapping) else qualifiers)
    clean = {}
    for key, value in pairs.items():
        key = key.lower()
        if not _QUALIFIER_KEY.match(key):
            raise PurlError(f"purl qualifier key {key!r} is not valid")
        if value:
            clean[key] = value
    if clean:
        text += "?" + "&".join(f"{k}={_encode(clean[k])}" for k in sorted(clean))
    if subpath:
        segments = [s for s in subpath.split("/") if s not in ("", ".", "..")]
        text += "#" + "/".join(_encode(s) for s in segments)
    return text


def _split_last(name: str, separator: str) -> tuple[str | None, str]:
    namespace, sep, last = name.rpartition(separator)
    return (namespace, last) if sep and namespace else (None, name)


def _distro_qualifiers(package: Package, os_info: OSInfo | None) -> dict[str, str]:
    qualifiers = {"arch": package.arch or ""}
    if os_info is not None:
        qualifiers["distro"] = os_info.distro
    if package.epoch:
        qualifiers["epoch"] = str(package.epoch)
    return qualifiers


PURL_CACHE: Final = 1 << 16
"""Purls remembered by :func:`package_purl` (emptied when full): the images a rescan gates
share most of their packages, and each image's match asks for the purls of its packages."""

_PURLS: dict[tuple[object, ...], str] = {}


def package_purl(package: Package, os_info: OSInfo | None = None) -> str:
    """The purl of a scanned package; ``os_info`` supplies the namespace and ``distro`` of
    distribution packages (without it, the namespace is the ecosystem's usual default)."""
    key = (
        package.type,
        package.name,
        package.version,
        package.epoch,
        package.release,
        package.arch,
        package.qualifiers,
        os_info,
    )  # every field the purl is made of
    purl = _PURLS.get(key)
    if purl is None:
        purl = _package_purl(package, os_info)
        if len(_PURLS) >= PURL_CACHE:
            _PURLS.clear()
        _PURLS[key] = purl
    return purl


def _package_purl(package: Package, os_info: OSInfo | None) -> str:
    qualifiers: dict[str, str] = {}
    namespace: str | None = None
    name, version = package.name, package.version
    match package.type:
        case PackageType.DEB:
            namespace = os_info.id.lower() if os_info else "debian"
            name = name.lower()
            qualifiers = _distro_qualifiers(package, os_info)
        case PackageType.APK:
            namespace = os_info.id.lower() if os_info else "alpine"
            name = name.lower()
            qualifiers = _distro_qualifiers(package, os_info)
        case PackageType.RPM:
            os_id = os_info.id.lower() if os_info else "redhat"
            namespace = _RPM_VENDORS.get(os_id, os_id)
            version = f"{version}-{package.release}" if package.release else version
            qualifiers = _distro_qualifiers(package, os_info)
        case PackageType.PYPI:
            name = canonicalize_name(name)
        case PackageType.NPM:
            name = name.lower()
            namespace, name = _split_last(name, "/") if name.startswith("@") else (None, name)
        case PackageType.GOLANG:
            namespace, name = _split_last(name, "/")
        case PackageType.MAVEN:
            namespace, name = _split_last(name, ":")
        case PackageType.COMPOSER:
            namespace, name = _split_last(name.lower(), "/")
        case PackageType.GEM | PackageType.NUGET:
            pass
    qualifiers.update(package.qualifiers)
    return build(package.type.value, name, version, namespace=namespace, qualifiers=qualifiers)
