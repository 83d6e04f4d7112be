"""The scan as a CycloneDX 1.6 JSON SBOM, byte-for-byte deterministic.

Same image, same analyzers -> same bytes: the document is RFC 8785 canonical JSON, components
and dependencies are sorted, no timestamp is written, and the serial number is a UUID derived
from the SHA-256 of the document written without it. The image itself is
``metadata.component`` (``pkg:oci/NAME@sha256:...``); every package is a component with its
purl, declared licenses, and evidence: the file it was read from as an occurrence, and the
layer that introduced it (digest and diff_id) as properties. Packages reached from the
entrypoint carry the chain that reaches them (``stella:entrytrace:*`` properties).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from typing import Any, Final

from packaging.utils import canonicalize_name

from appliance.scanner import purl as purls
from appliance.scanner.model import PackageType
from appliance.scanner.result import FoundPackage, ScanResult
from bundles import __version__

SPEC_VERSION: Final = "1.6"
SCHEMA_URL: Final = "http://cyclonedx.org/schema/bom-1.6.schema.json"
PROPERTY_PREFIX: Final = "stella:"
_NAMESPACES: Final = {PackageType.MAVEN: ":", PackageType.COMPOSER: "/", PackageType.GOLANG: "/"}


def image_purl(result: ScanResult) -> str | None:
    """``pkg:oci/NAME@sha256:...?arch=...&tag=...`` for an image with a manifest."""
    digest = result.manifest_digest
    if digest is None:
        return None
    qualifiers: dict[str, str] = {}
    if result.platform:
        parts = result.platform.split("/")
        qualifiers["arch"] = parts[1] if len(parts) > 1 else ""
    if result.tag:
        qualifiers["tag"] = result.tag.rpartition(":")[2] if ":" in result.tag else result.tag
    name = result.name.rpartition("/")[2].lower() or "image"
    return purls.build("oci", name, str(digest), qualifiers=qualifiers)


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": PROPERTY_PREFIX + name, "value": value}


def _bom_refs(packages: tuple[FoundPackage, ...]) -> list[str]:
    """One unique bom-ref per package: its purl, with the location added when one purl is
    found at several places (the same npm package installed twice)."""
    counts: dict[str, int] = defaultdict(int)
    for found in packages:
        counts[found.purl] += 1
    refs = []
    for found in packages:
        ref = found.purl
        if counts[found.purl] > 1:
            ref = f"{found.purl}#{found.package.locations[0] if found.package.locations else ''}"
        refs.append(ref)
    seen: dict[str, int] = defaultdict(int)
    unique = []
    for ref in refs:  # the same purl at the same location twice: number them (stable order)
        seen[ref] += 1
        unique.append(ref if seen[ref] == 1 else f"{ref}~{seen[ref]}")
    return unique


def _component(found: FoundPackage, ref: str, reachable: dict[str, Any]) -> dict[str, Any]:
    package = found.package
    name, group = package.name, None
    separator = _NAMESPACES.get(package.type)
    if separator and separator in name:
        group, _, name = name.rpartition(separator)
    elif package.type is PackageType.NPM and name.startswith("@") and "/" in name:
        group, _, name = name.partition("/")
    component: dict[str, Any] = {
        "bom-ref": ref,
        "type": "library",
        "name": name,
        "version": package.full_version,
        "purl": found.purl,
    }
    if group:
        component["group"] = group
    if package.licenses:
        component["licenses"] = [{"license": {"name": text}} for text in package.licenses]
    occurrences = []
    properties = [_prop("package:type", package.type.value)]
    for evidence in found.evidence:
        occurrence: dict[str, Any] = {"location": "/" + evidence.path}
        if evidence.layer_digest is not None:
            occurrence["additionalContext"] = (
                f"layer {evidence.layer_index} {evidence.layer_digest} (diff_id {evidence.diff_id})"
            )
        occurrences.append(occurrence)
    layer = found.evidence[0] if found.evidence else None
    if layer is not None and layer.layer_digest is not None:
        properties.append(_prop("layer:digest", str(layer.layer_digest)))
        properties.append(_prop("layer:index", str(layer.layer_index)))
        if layer.diff_id is not None:
            properties.append(_prop("layer:diffID", str(layer.diff_id)))
    if package.source_name:
        properties.append(_prop("package:sourceName", package.source_name))
    if package.source_version:
        properties.append(_prop("package:sourceVersion", package.source_version))
    for location in package.locations:
        properties.append(_prop("package:location", "/" + location))
    hit = reachable.get(found.purl)
    if hit is not None:
        properties.append(_prop("entrytrace:reachable", "true"))
        properties.append(_prop("entrytrace:file", "/" + hit.file))
        if hit.layer is not None:
            properties.append(_prop("entrytrace:fileLayer", str(hit.layer)))
        properties.append(_prop("entrytrace:chain", " -> ".join("/" + p for p in hit.chain)))
    if occurrences:
        component["evidence"] = {"occurrences": occurrences}
    component["properties"] = sorted(properties, key=lambda p: (p["name"], p["value"]))
    return component


def _dependencies(result: ScanResult, refs: list[str]) -> list[dict[str, Any]]:
    """Package -> the packages it depends on, by name within its ecosystem (every installed
    version of that name: the database does not say which one satisfies it)."""
    by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    for found, ref in zip(result.packages, refs, strict=True):
        key = found.package.name
        if found.package.type is PackageType.PYPI:
            key = canonicalize_name(key)
        by_name[(found.package.type.value, key)].append(ref)
    out = []
    for found, ref in zip(result.packages, refs, strict=True):
        targets: set[str] = set()
        for dependency in found.package.dependencies:
            name = dependency
            if found.package.type is PackageType.PYPI:
                name = canonicalize_name(name)
            targets.update(by_name.get((found.package.type.value, name), ()))
        targets.discard(ref)
        if targets:
            out.append({"ref": ref, "dependsOn": sorted(targets)})
    return sorted(out, key=lambda d: d["ref"])


def document(result: ScanResult) -> dict[str, Any]:
    """The BOM as a JSON-able dict, without ``serialNumber``."""
    refs = _bom_refs(result.packages)
    reachable = {r.purl: r for r in result.entry_trace.reachable}
    components = [
        _component(found, ref, reachable) for found, ref in zip(result.packages, refs, strict=True)
    ]
    os_info = result.analysis.os
    if os_info is not None:
        os_component: dict[str, Any] = {
            "bom-ref": f"os:{os_info.distro}",
            "type": "operating-system",
            "name": os_info.id,
        }
        if os_info.version_id:
            os_component["version"] = os_info.version_id
        if os_info.pretty_name:
            os_component["description"] = os_info.pretty_name
        components.append(os_component)
    components.sort(key=lambda c: (c["type"], c.get("purl", ""), c["bom-ref"]))
    image_ref = image_purl(result)
    image: dict[str, Any] = {
        "bom-ref": image_ref or f"image:{result.name}",
        "type": "container",
        "name": result.name,
    }
    if result.manifest_digest is not None:
        image["version"] = str(result.manifest_digest)
        image["hashes"] = [{"alg": "SHA-256", "content": result.manifest_digest.hex}]
    if image_ref:
        image["purl"] = image_ref
    image_props = []
    if result.config_digest is not None:
        image_props.append(_prop("image:config", str(result.config_digest)))
    if result.index_digest is not None:
        image_props.append(_prop("image:index", str(result.index_digest)))
    if result.platform:
        image_props.append(_prop("image:platform", result.platform))
    for layer in result.layers:
        image_props.append(
            _prop(f"image:layer:{layer.index}", f"{layer.digest} diff_id {layer.diff_id}")
        )
    if result.entry_trace.argv:
        image_props.append(_prop("entrytrace:argv", " ".join(result.entry_trace.argv)))
    if image_props:
        image["properties"] = image_props
    dependencies = _dependencies(result, refs)
    if refs:
        dependencies.append({"ref": image["bom-ref"], "dependsOn": sorted(refs)})
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "tools": {
                "components": [{"type": "application", "name": "stella", "version": __version__}]
            },
            "component": image,
        },
        "components": components,
        "dependencies": sorted(dependencies, key=lambda d: d["ref"]),
    }
    if result.unknowns:
        doc["metadata"]["properties"] = [
            _prop("unknown", f"/{u.path}: {u.reason}" if u.path else u.reason)
            for u in result.unknowns
        ]
    return doc


RENDER_VERSION: Final = 1
"""Bumped whenever :func:`render` writes other bytes for the same scan: an image cache row
keeps the SBOM rendered for its image, reused while this and the stella version are the same
(``appliance.scanner.service``)."""


def render(result: ScanResult) -> bytes:
    """Canonical bytes with a serial number derived from the content (the bytes of the
    document without it). Each top-level member is serialized once, for both."""
    members = {key: canonical_bytes(value) for key, value in document(result).items()}
    content = hashlib.sha256(_object(members)).digest()
    serial = uuid.UUID(bytes=content[:16], version=5)
    members["serialNumber"] = canonical_bytes(serial.urn)
    return _object(members)


def _object(members: dict[str, bytes]) -> bytes:
    """The canonical bytes of an object whose members' values are already serialized: the
    same bytes as :func:`canonical_bytes` of the object itself."""
    return (
        b"{"
        + b",".join(canonical_bytes(key) + b":" + members[key] for key in sorted(members))
        + b"}"
    )


def canonical_bytes(doc: Any) -> bytes:
    """RFC 8785 bytes of an SBOM. For a document of strings, integers, booleans, lists and
    objects with ASCII keys (all an SBOM here holds), sorted compact JSON without ASCII
    escaping is exactly RFC 8785's output, and several times faster to produce than the
    general serializer; tests check the two agree (``canonical.is_canonical``)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
