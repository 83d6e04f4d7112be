"""Which keys may sign which predicate types.

A signature by a known key is not enough: the appliance key signs verdicts and SBOM
attestations, and a mirror key signs knowledge bundles; a verdict signed by the mirror key
must be refused even though the key is trusted for something. A policy is a list of rules,
each one public key and the predicate types it may sign (none listed: any).

A rule may also carry its key's validity window and revocation (docs/keys.md): a
signature the key made outside the window, or at or after the revocation, is refused. The
key ring the appliance exports (``stella keys export-public --keys-out``) is a policy of this
form, one rule per key the appliance has used.

File form (JSON)::

    {"version": 1,
     "keys": [{"name": "appliance", "publicKey": "-----BEGIN PUBLIC KEY-----...",
               "predicateTypes": ["https://stella-ops.org/attestations/risk-verdict/v1"],
               "validFor": {"start": "2026-12-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"},
               "revoked": {"at": "2027-01-15T08:00:00Z", "reason": "token stolen"}}]}

``validFor`` (either bound may be left out: open) and ``revoked`` are optional.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from appliance.auditor.errors import TrustPolicyError
from appliance.rva.gate import CYCLONEDX_PREDICATE
from appliance.rva.predicate import PREDICATE_TYPE
from bundles import canonical
from bundles.errors import StellaError
from bundles.keys import (
    KeyRing,
    KeyRingError,
    PublicKey,
    Revocation,
    ValidFor,
    check_window,
)

APPLIANCE_PREDICATES: Final = frozenset({PREDICATE_TYPE, CYCLONEDX_PREDICATE})
"""What the appliance key signs: risk verdicts and SBOM attestations."""

LIMIT: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class KeyRule:
    """One trusted key; ``predicate_types`` empty means it may sign any predicate type."""

    name: str
    key: PublicKey
    predicate_types: frozenset[str] = frozenset()
    valid_for: ValidFor = field(default_factory=ValidFor)
    revoked: Revocation | None = None

    def allows(self, predicate_type: str) -> bool:
        return not self.predicate_types or predicate_type in self.predicate_types

    def check_signed_at(self, when: datetime | None, *, source: str) -> None:
        """Refuse a signature this key made at ``when`` outside its window or after its
        revocation (a :class:`bundles.keys.KeyWindowError` naming the key and window)."""
        check_window(self.key.keyid, self.valid_for, self.revoked, when, source=source)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "keyid": self.key.keyid,
            "publicKey": self.key.pem().decode("ascii"),
            "predicateTypes": sorted(self.predicate_types),
            "validFor": self.valid_for.to_dict(),
        }
        if self.revoked is not None:
            out["revoked"] = self.revoked.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    rules: tuple[KeyRule, ...]

    @classmethod
    def appliance(cls, key: PublicKey) -> TrustPolicy:
        """The default: the appliance key, for verdicts and SBOM attestations."""
        return cls((KeyRule("appliance", key, APPLIANCE_PREDICATES),))

    @classmethod
    def of_ring(
        cls, ring: KeyRing, predicate_types: Iterable[str] = APPLIANCE_PREDICATES
    ) -> TrustPolicy:
        """Every key of the appliance's ring, each with its window and revocation."""
        types = frozenset(predicate_types)
        return cls(
            tuple(KeyRule("appliance", e.key, types, e.valid_for, e.revoked) for e in ring.entries)
        )

    @classmethod
    def of_keys(
        cls, keys: Iterable[PublicKey], predicate_types: Iterable[str] = APPLIANCE_PREDICATES
    ) -> TrustPolicy:
        types = frozenset(predicate_types)
        return cls(tuple(KeyRule(k.source, k, types) for k in keys))

    @classmethod
    def from_dict(cls, doc: Any, *, source: str) -> TrustPolicy:
        if not isinstance(doc, Mapping) or doc.get("version") != 1:
            raise TrustPolicyError(
                f"{source}: not a trust policy (expected a JSON object with version 1)",
                hint='write {"version": 1, "keys": [...]}',
            )
        raw_keys = doc.get("keys")
        if not isinstance(raw_keys, list) or not raw_keys:
            raise TrustPolicyError(f"{source}: field 'keys' must be a non-empty array")
        rules = []
        for i, raw in enumerate(raw_keys):
            where = f"{source}: keys[{i}]"
            if not isinstance(raw, Mapping):
                raise TrustPolicyError(f"{where} must be an object")
            pem, types = raw.get("publicKey"), raw.get("predicateTypes", [])
            if not isinstance(pem, str):
                raise TrustPolicyError(f"{where}.publicKey must be a PEM public key string")
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                raise TrustPolicyError(f"{where}.predicateTypes must be an array of strings")
            try:
                key = PublicKey.from_pem(pem.encode("ascii"), source=f"{where}.publicKey")
            except (StellaError, UnicodeEncodeError) as e:
                raise TrustPolicyError(f"{where}.publicKey is not a PEM public key") from e
            try:
                window = ValidFor.from_dict(raw.get("validFor", {}), where=where)
                revoked = raw.get("revoked")
                revocation = (
                    Revocation.from_dict(revoked, where=where) if revoked is not None else None
                )
            except KeyRingError as e:
                raise TrustPolicyError(e.message, hint=e.hint) from e
            name = str(raw.get("name") or f"key {i}")
            rules.append(KeyRule(name, key, frozenset(types), window, revocation))
        return cls(tuple(rules))

    @classmethod
    def load(cls, path: Path) -> TrustPolicy:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TrustPolicyError(f"{path}: cannot read trust policy: {e.strerror}") from e
        return cls.from_dict(canonical.loads(data, limit=LIMIT, source=str(path)), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "keys": [r.to_dict() for r in self.rules]}

    def keys(self) -> dict[str, PublicKey]:
        return {r.key.keyid: r.key for r in self.rules}

    def rule_for(self, keyid: str) -> KeyRule | None:
        return next((r for r in self.rules if r.key.keyid == keyid), None)

    def check(self, keyids: Iterable[str], predicate_type: str, *, source: str) -> KeyRule:
        """The rule of a verified signer allowed to sign ``predicate_type``; raises naming the
        signer and what it may sign otherwise."""
        rules = [r for k in keyids if (r := self.rule_for(k)) is not None]
        for rule in rules:
            if rule.allows(predicate_type):
                return rule
        signers = ", ".join(f"{r.name} ({r.key.keyid[:16]}…)" for r in rules) or "nobody"
        allowed = "; ".join(
            f"{r.name}: {', '.join(sorted(r.predicate_types)) or 'any'}" for r in rules
        )
        raise TrustPolicyError(
            f"{source}: signed by {signers}, which the trust policy does not allow to sign "
            f"predicateType {predicate_type} (allowed: {allowed or 'none'})",
            hint="a key trusted for one kind of statement cannot vouch for another",
        )
