"""Read a signed RVA back: verify, then validate, never the other way round.

``verify``, ``explain`` and ``replay`` start here. The DSSE signature is checked over the
exact payload bytes by a trusted key; the payload is parsed as an in-toto Statement of the
RVA predicate type; the predicate is validated strictly against ``rva-v1.json``; and the
predicate's subject must be the statement's subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from bundles import canonical, dsse, schemas
from bundles.errors import StatementError
from bundles.intoto import Statement


class RvaSubjectMismatchError(StatementError):
    """The predicate names another image than the statement it is signed in."""


@dataclass(frozen=True, slots=True)
class SignedVerdict:
    statement: Statement
    keyid: str

    @property
    def predicate(self) -> Mapping[str, Any]:
        return self.statement.predicate

    @property
    def verdict(self) -> str:
        return str(self.predicate["verdict"])


def read_verdict(data: bytes, keys: dsse.TrustedKeys, *, source: str = "RVA") -> SignedVerdict:
    """The verified verdict in a Sigstore bundle (what ``stella gate --out`` writes)."""
    bundle = sigstore.read(data, source=source)
    statement = sigstore.verify(bundle, keys, predicate_type=PREDICATE_TYPE)
    predicate = canonical.loads(canonical.dumps(dict(statement.to_dict()["predicate"])))
    schemas.validate(schemas.RVA_V1, predicate, source=f"{source} predicate")
    digest = predicate["subject"]["digest"]
    if not any(str(s.sha256) == digest for s in statement.subjects):
        raise RvaSubjectMismatchError(
            f"{source}: predicate subject {digest} is not a subject of the signed statement",
            hint="the verdict is about another image than it claims",
        )
    return SignedVerdict(statement, bundle.key_hint)
