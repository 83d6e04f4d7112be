"""The SBOM: valid CycloneDX 1.6, deterministic bytes, purls per the purl spec, evidence.

The golden file is rewritten with ``STELLA_UPDATE_GOLDENS=1`` and reviewed as a diff.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from appliance.scanner import cyclonedx
from appliance.scanner.cache import LayerCache
from appliance.scanner.result import ScanResult
from appliance.scanner.service import scan_image
from bundles import canonical
from bundles.oci import OCILayout
from tests.appliance.scanner.layouts import (
    OS_RELEASE,
    STATUS_BASE,
    F,
    build_image,
    dist_info,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas" / "cyclonedx-1.6"
GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "sbom" / "small.cdx.json"
SITE = "usr/local/lib/python3.11/dist-packages"
NPM = b'{"name": "@types/node", "version": "20.1.0", "license": "MIT", "dependencies": {}}'
LODASH = b'{"name": "lodash", "version": "4.17.15", "license": "MIT"}'


def validator() -> jsonschema.Draft7Validator:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc, default_specification=DRAFT7)))
    schema = json.loads((SCHEMAS / "bom-1.6.schema.json").read_text())
    return jsonschema.Draft7Validator(
        schema,
        registry=Registry().with_resources(resources),
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )


def assert_valid(sbom: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(sbom)
    errors = sorted(validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    return doc


def small_image(tmp_path: Path) -> Path:
    path = tmp_path / "small"
    build_image(
        path,
        [
            [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)],
            [
                *dist_info("requests", "2.19.0", SITE, ["requests/__init__.py"]),
                F(f"{SITE}/requests/__init__.py", b"import json\n"),
            ],
            [
                F("app/node_modules/@types/node/package.json", NPM),
                F("app/node_modules/lodash/package.json", LODASH),
                F("app/main.py", b"#!/usr/bin/env python3\nimport requests\n", 0o755),
            ],
        ],
        tag="small:1.0",
        config={"Entrypoint": ["/app/main.py"], "WorkingDir": "/app"},
    )
    return path


def test_schema_valid_and_content(tmp_path: Path) -> None:
    result = scan_image(None, f"oci:{small_image(tmp_path)}", cache=False)
    doc = assert_valid(result.sbom_bytes())
    assert doc["specVersion"] == "1.6"
    assert "timestamp" not in doc["metadata"]
    image = doc["metadata"]["component"]
    assert image["type"] == "container"
    assert image["purl"] == f"pkg:oci/small@{result.manifest_digest}?arch=amd64&tag=1.0"
    by_name = {c["name"]: c for c in doc["components"]}
    login = by_name["login"]
    assert (
        login["purl"]
        == "pkg:deb/debian/login@4.13%2Bdfsg1-1%2Bb1?arch=amd64&distro=debian-12&epoch=1"
    )
    assert login["version"] == "1:4.13+dfsg1-1+b1"
    assert by_name["node"]["group"] == "@types"
    assert by_name["node"]["purl"] == "pkg:npm/%40types/node@20.1.0"
    assert by_name["requests"]["licenses"] == [{"license": {"name": "MIT"}}]
    assert by_name["debian"]["type"] == "operating-system"
    properties = {p["name"]: p["value"] for p in by_name["requests"]["properties"]}
    assert properties["stella:layer:digest"] == str(result.layers[1].digest)
    assert properties["stella:layer:diffID"] == str(result.layers[1].diff_id)
    assert properties["stella:entrytrace:reachable"] == "true"
    assert by_name["requests"]["evidence"]["occurrences"][0]["location"] == (
        f"/{SITE}/requests-2.19.0.dist-info/METADATA"
    )
    deps = {x["ref"]: x["dependsOn"] for x in doc["dependencies"]}
    assert deps[login["bom-ref"]] == [by_name["libc6"]["bom-ref"]]
    assert set(deps[image["bom-ref"]]) == {
        c["bom-ref"] for c in doc["components"] if c["type"] == "library"
    }


def test_same_image_same_bytes(tmp_path: Path) -> None:
    path = small_image(tmp_path)
    cold = scan_image(None, f"oci:{path}", cache=False).sbom_bytes()
    with LayerCache.open(tmp_path / "c.db") as cache:
        scan_image(None, f"oci:{path}", cache=cache)
        warm = scan_image(None, f"oci:{path}", cache=cache).sbom_bytes()
    assert cold == warm
    assert canonical.is_canonical(cold)
    doc = json.loads(cold)
    serial = doc.pop("serialNumber")
    assert uuid.UUID(serial.removeprefix("urn:uuid:")).version == 5
    # the serial is a function of everything else
    result = scan_image(None, f"oci:{path}", cache=False)
    assert json.loads(result.sbom_bytes())["serialNumber"] == serial


def test_bytes_are_the_whole_document_and_the_serial_hashes_the_rest(tmp_path: Path) -> None:
    result = scan_image(None, f"oci:{small_image(tmp_path)}", cache=False)
    doc = cyclonedx.document(result)
    content = hashlib.sha256(canonical.dumps(doc)).digest()
    doc["serialNumber"] = uuid.UUID(bytes=content[:16], version=5).urn
    assert result.sbom_bytes() == canonical.dumps(doc)


def test_a_cached_scan_reuses_the_sbom_rendered_for_the_same_image_only(tmp_path: Path) -> None:
    """The image cache row keeps the SBOM rendered for its image: a cache hit for the same
    image gives it as it is; the same layers under another name get one of their own."""
    path = small_image(tmp_path)
    layout = OCILayout.open(path)
    layout.tag("other:2", layout.resolve("small:1.0"))
    with LayerCache.open(tmp_path / "c.db") as cache:
        first = scan_image(None, f"oci:{path}:small:1.0", cache=cache)
        again = scan_image(None, f"oci:{path}:small:1.0", cache=cache)
        other = scan_image(None, f"oci:{path}:other:2", cache=cache)
    assert again.cached_layers  # a cache hit
    assert again.sbom_bytes() == first.sbom_bytes() == cyclonedx.render(again)
    assert other.sbom_bytes() == cyclonedx.render(other) != first.sbom_bytes()


def test_golden(tmp_path: Path) -> None:
    result: ScanResult = scan_image(None, f"oci:{small_image(tmp_path)}", cache=False)
    pretty = json.dumps(json.loads(result.sbom_bytes()), indent=2, sort_keys=True) + "\n"
    if os.environ.get("STELLA_UPDATE_GOLDENS") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(pretty)
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing; run with STELLA_UPDATE_GOLDENS=1 and review it")
    assert pretty == GOLDEN.read_text()


def test_rootfs_has_no_image_purl(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_bytes(OS_RELEASE)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_bytes(STATUS_BASE)
    result = scan_image(None, f"dir:{root}")
    doc = assert_valid(result.sbom_bytes())
    assert "purl" not in doc["metadata"]["component"]
    assert len([c for c in doc["components"] if c["type"] == "library"]) == 3
