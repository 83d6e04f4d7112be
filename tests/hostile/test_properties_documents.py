"""Property tests over the document parsers an operator feeds: whatever the JSON, only the
project's own errors come out (VEX in its three forms, trust roots, upstream signer policies,
audit package manifests).

Each property starts from a real, valid document and replaces one field anywhere in it with an
arbitrary JSON value (or removes it), so the parsers are driven deep into their field checks
rather than refused at the door; a second property feeds wholly arbitrary JSON.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.auditor.package import read_package
from appliance.sigstore.upstream import UpstreamPolicy
from appliance.vex import csaf, cyclonedx
from appliance.vex.model import Origin
from appliance.vex.openvex import statements_of
from bundles.errors import StellaError
from bundles.keys import PrivateKey
from bundles.trust import TrustRoot
from tests.appliance.vex.test_csaf import CSAF
from tests.hostile.documents import CYCLONEDX_VEX, OPENVEX

NOW = datetime(2026, 6, 1, tzinfo=UTC)
_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _mutated(seed: Any, path: tuple[Any, ...], value: Any, remove: bool) -> Any:
    doc = copy.deepcopy(seed)
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if remove and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def mutations(seed: Any) -> st.SearchStrategy[Any]:
    return st.builds(
        _mutated, st.just(seed), st.sampled_from(_paths(seed)), json_values, st.booleans()
    )


def _vex(doc: Any) -> None:
    if cyclonedx.is_cyclonedx(doc):
        doc = cyclonedx.to_openvex(doc, source="doc.json")
    elif csaf.is_csaf(doc):
        doc = csaf.to_openvex(doc, source="doc.json")
    statements_of(doc, origin=Origin.VENDOR, source="doc.json")


def _only_ours(check: Any, doc: Any) -> None:
    """``check(doc)`` passes or raises one of the project's errors, worded on one line."""
    message = "accepted"
    try:
        check(doc)
    except StellaError as e:
        message = e.diagnostics()
    assert message
    assert "\n" not in message


@_SETTINGS
@given(mutations(OPENVEX) | mutations(CSAF) | mutations(CYCLONEDX_VEX))
def test_vex_parsers_raise_only_their_own_errors(doc: Any) -> None:
    _only_ours(_vex, doc)


@_SETTINGS
@given(json_values)
def test_vex_parsers_take_any_json(doc: Any) -> None:
    _only_ours(_vex, doc)
    _only_ours(_vex, {"document": {"category": "csaf_vex"}, "vulnerabilities": doc})
    _only_ours(_vex, {"bomFormat": "CycloneDX", "vulnerabilities": doc})


_ROOT_KEY = PrivateKey.generate()
_SIGNER = PrivateKey.generate()
TRUST_ROOT: Any = json.loads(
    TrustRoot.create([_ROOT_KEY], [_SIGNER.public_key], now=NOW).to_bytes()
)


def _trust(doc: Any) -> None:
    root = TrustRoot.from_bytes(json.dumps(doc).encode(), source="root.json")
    root.check_signed(now=NOW)
    root.describe()


@_SETTINGS
@given(mutations(TRUST_ROOT) | json_values)
def test_trust_root_parser_raises_only_its_own_errors(doc: Any) -> None:
    _only_ours(_trust, doc)


UPSTREAM: Any = {
    "version": 1,
    "rules": [
        {
            "repository": "docker.io/library/*",
            "key": _SIGNER.public_key.pem().decode(),
            "required": True,
        },
        {"repository": "ghcr.io/acme/*", "keyless": {"identity": "a@b", "issuer": "https://i"}},
    ],
}


@_SETTINGS
@given(mutations(UPSTREAM) | json_values)
def test_upstream_policy_parser_raises_only_its_own_errors(doc: Any) -> None:
    _only_ours(lambda d: UpstreamPolicy.from_bytes(json.dumps(d).encode(), source="u.json"), doc)


MANIFEST: Any = {
    "version": 1,
    "subject": "sha256:" + "ab" * 32,
    "statement": "sha256:" + "cd" * 32,
    "files": [{"path": "a.json", "sha256": "00" * 32, "size": 2}],
}


def _package(doc: Any) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps(doc))
        z.writestr("a.json", "{}")
    read_package(buf.getvalue(), source="p.zip")


@_SETTINGS
@given(mutations(MANIFEST) | json_values)
def test_audit_package_manifest_raises_only_its_own_errors(doc: Any) -> None:
    _only_ours(_package, doc)


def test_seeds_are_valid(tmp_path: Path) -> None:
    """The properties start from documents that parse: a mutation is what breaks them."""
    _vex(OPENVEX)
    _vex(CSAF)
    _vex(CYCLONEDX_VEX)
    _trust(TRUST_ROOT)
    UpstreamPolicy.from_bytes(json.dumps(UPSTREAM).encode(), source="u.json")
    _package(MANIFEST)
