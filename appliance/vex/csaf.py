"""CSAF 2.0 VEX (``document.category`` ``csaf_vex``) read as an OpenVEX document, so it is
validated, signed, stored and merged exactly like OpenVEX.

Mapping:

- products: a ``product_id`` in the product tree (branches, ``full_product_names``) names the
  purl of its ``product_identification_helper``; a relationship
  ``X = product_reference (component) of relates_to_product_reference (product)`` names the
  product's purl with the component's purl as a subcomponent. A product without a purl is
  refused: nothing else can be matched to an image;
- ``product_status``: ``known_not_affected`` → ``not_affected``; ``known_affected`` →
  ``affected``; ``fixed`` and ``first_fixed`` → ``fixed``; ``under_investigation`` →
  ``under_investigation`` (``recommended``, ``last_affected`` and ``first_affected`` say
  nothing about this image's exploitability and are skipped);
- CSAF flag labels are OpenVEX's justifications word for word; a ``not_affected`` product
  without a flag takes its ``impact`` threat as the impact statement; an ``affected`` product
  takes its remediation details as the action statement;
- one statement per vulnerability and product id; the vulnerability is the ``cve`` (else the
  first of ``ids``), the other ids are aliases; the time is
  ``tracking.current_release_date``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from appliance.vex.model import Justification, VexError
from appliance.vex.openvex import CONTEXT

STATUSES: Final = {
    "known_not_affected": "not_affected",
    "known_affected": "affected",
    "fixed": "fixed",
    "first_fixed": "fixed",
    "under_investigation": "under_investigation",
}
_LABELS: Final = frozenset(j.value for j in Justification)


def is_csaf(doc: Any) -> bool:
    return (
        isinstance(doc, Mapping)
        and isinstance(doc.get("document"), Mapping)
        and doc["document"].get("category") == "csaf_vex"
    )


def _named_products(tree: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack: list[Any] = [*(tree.get("branches") or [])]
    yield from (p for p in tree.get("full_product_names") or [] if isinstance(p, Mapping))
    while stack:
        branch = stack.pop()
        if not isinstance(branch, Mapping):
            continue
        if isinstance(branch.get("product"), Mapping):
            yield branch["product"]
        stack.extend(branch.get("branches") or [])


def _products(tree: Mapping[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """product_id -> (product purl, subcomponent purls)."""
    purls: dict[str, str] = {}
    for product in _named_products(tree):
        helper = product.get("product_identification_helper") or {}
        pid, purl = product.get("product_id"), helper.get("purl")
        if isinstance(pid, str) and isinstance(purl, str):
            purls[pid] = purl
    out: dict[str, tuple[str, tuple[str, ...]]] = {pid: (purl, ()) for pid, purl in purls.items()}
    for rel in tree.get("relationships") or []:
        if not isinstance(rel, Mapping):
            continue
        name = rel.get("full_product_name") or {}
        pid = name.get("product_id")
        component = purls.get(rel.get("product_reference", ""))
        parent = purls.get(rel.get("relates_to_product_reference", ""))
        if isinstance(pid, str) and component and parent:
            out[pid] = (parent, (component,))
    return out


def _by_product(entries: Any, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in entries or []:
        if not isinstance(entry, Mapping):
            continue
        for pid in entry.get("product_ids") or []:
            value = entry.get(key)
            if isinstance(value, str) and isinstance(pid, str):
                out.setdefault(pid, value)
    return out


def _component(purl: str) -> dict[str, Any]:
    return {"@id": purl, "identifiers": {"purl": purl}}


def to_openvex(doc: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The OpenVEX v0.2.0 document saying what the CSAF VEX ``doc`` says."""
    meta = doc["document"]
    tracking = meta.get("tracking") or {}
    stamp = tracking.get("current_release_date")
    ident = tracking.get("id")
    if not isinstance(stamp, str) or not isinstance(ident, str):
        raise VexError(
            f"{source}: CSAF document has no tracking.id or tracking.current_release_date"
        )
    products = _products(doc.get("product_tree") or {})
    statements = []
    for i, vuln in enumerate(doc.get("vulnerabilities") or []):
        where = f"{source}: vulnerabilities[{i}]"
        if not isinstance(vuln, Mapping):
            raise VexError(f"{where}: must be an object")
        ids = [x.get("text") for x in vuln.get("ids") or [] if isinstance(x, Mapping)]
        names = [n for n in (vuln.get("cve"), *ids) if isinstance(n, str) and n]
        if not names:
            raise VexError(f"{where}: has neither cve nor ids")
        flags = _by_product(vuln.get("flags"), "label")
        impacts = _by_product(
            [t for t in vuln.get("threats") or [] if t.get("category") == "impact"], "details"
        )
        actions = _by_product(vuln.get("remediations"), "details")
        for category, status in STATUSES.items():
            for pid in (vuln.get("product_status") or {}).get(category) or []:
                if pid not in products:
                    raise VexError(
                        f"{where}: product_status.{category} names {pid!r}, which has no purl "
                        "in the product tree",
                        hint="give the product a product_identification_helper.purl",
                    )
                purl, subs = products[pid]
                statement: dict[str, Any] = {
                    "vulnerability": {
                        "name": names[0],
                        **({"aliases": names[1:]} if names[1:] else {}),
                    },
                    "products": [
                        {
                            **_component(purl),
                            **({"subcomponents": [_component(s) for s in subs]} if subs else {}),
                        }
                    ],
                    "status": status,
                }
                if status == "not_affected":
                    label = flags.get(pid)
                    if label in _LABELS:
                        statement["justification"] = label
                    else:
                        statement["impact_statement"] = impacts.get(
                            pid, f"known_not_affected in CSAF advisory {ident}"
                        )
                elif status == "affected":
                    statement["action_statement"] = actions.get(pid, f"see CSAF advisory {ident}")
                statements.append(statement)
    if not statements:
        raise VexError(f"{source}: the CSAF document has no product status to read")
    version = tracking.get("version", "1")
    return {
        "@id": f"urn:csaf:{ident}:{version}",
        "@context": CONTEXT,
        "author": str((meta.get("publisher") or {}).get("name") or "CSAF VEX"),
        "timestamp": stamp,
        "version": 1,
        "tooling": "stella-ops (from CSAF VEX)",
        "statements": statements,
    }
