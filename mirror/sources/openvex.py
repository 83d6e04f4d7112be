"""Vendor OpenVEX documents, carried whole so VEX travels in the same signed snapshot.

Each document is validated enough to be usable (context, @id, statements with a known status
and, for ``not_affected``, a justification or impact statement) and stored with the digest of
its upstream bytes and its statement count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from bundles.digest import Digest
from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import DatasetType, FeedSource, ParseResult, json_documents

STATUSES: Final = frozenset({"not_affected", "affected", "fixed", "under_investigation"})
CONTEXT_PREFIX: Final = "https://openvex.dev/ns"


def openvex_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a usable OpenVEX document, or None."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    ctx = doc.get("@context")
    if not isinstance(ctx, str) or not ctx.startswith(CONTEXT_PREFIX):
        return f"'@context' {ctx!r} is not an OpenVEX context ({CONTEXT_PREFIX}…)"
    if not isinstance(doc.get("@id"), str) or not doc["@id"]:
        return "'@id' missing"
    statements = doc.get("statements")
    if not isinstance(statements, list):
        return "'statements' missing or not a list"
    for i, st in enumerate(statements):
        if not isinstance(st, dict):
            return f"statements[{i}] is not an object"
        vuln = st.get("vulnerability")
        if not (isinstance(vuln, str) or (isinstance(vuln, dict) and "name" in vuln)):
            return f"statements[{i}].vulnerability missing or without a name"
        status = st.get("status")
        if status not in STATUSES:
            return f"statements[{i}].status {status!r} is not one of {sorted(STATUSES)}"
        if status == "not_affected" and "justification" not in st and "impact_statement" not in st:
            return f"statements[{i}] is not_affected without justification or impact_statement"
    return None


class OpenVEXSource(FeedSource):
    kind = SourceKind.OPENVEX
    dataset_type = DatasetType.OPENVEX

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for member, doc in json_documents(members, result):
            problem = openvex_problem(doc)
            if problem:
                result.skip(member.name, problem)
                continue
            result.records.append(
                {
                    "id": doc["@id"],
                    "member": member.name,
                    "sha256": Digest.of_bytes(member.data).hex,
                    "statements": len(doc["statements"]),
                    "document": doc,
                }
            )
        return result
