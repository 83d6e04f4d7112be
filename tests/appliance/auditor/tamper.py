"""Ways to alter a signed verdict, for the tampering tests: each returns new bundle bytes."""

from __future__ import annotations

import base64
import json
from typing import Any

from appliance.sigstore import bundle as sigstore
from bundles import canonical
from bundles.intoto import Statement
from bundles.signer import Signer


def _doc(bundle: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(bundle)
    return doc


def statement_of(bundle: bytes) -> dict[str, Any]:
    payload = base64.b64decode(_doc(bundle)["dsseEnvelope"]["payload"])
    doc: dict[str, Any] = json.loads(payload)
    return doc


def edit_predicate(bundle: bytes, field: str, value: Any) -> bytes:
    """Change one predicate field and keep the old signature."""
    doc = _doc(bundle)
    statement = statement_of(bundle)
    statement["predicate"][field] = value
    doc["dsseEnvelope"]["payload"] = base64.b64encode(canonical.dumps(statement)).decode()
    return canonical.dumps(doc)


def resign(bundle: bytes, key: Signer, **changes: Any) -> bytes:
    """Sign the (changed) statement again with ``key``."""
    statement = statement_of(bundle)
    statement.update(changes)
    return sigstore.sign(Statement.from_dict(statement), key).to_json()
