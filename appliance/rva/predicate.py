"""The Risk Verdict Attestation's in-toto predicate type: the one name every reader of RVAs
(the gate, the auditor, the Notary Project signatures, the audit package) looks them up by."""

from __future__ import annotations

from typing import Final

PREDICATE_TYPE: Final = "https://stella-ops.org/attestations/risk-verdict/v1"
