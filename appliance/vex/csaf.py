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

from appliance.vex.model import Justification, VexError, arr, count_statements, obj, shown
from appliance.vex.openvex import CONTEXT
from bundles.canonical import kind_of

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


def _named_products(tree: Mapping[str, Any], where: str) -> Iterator[Mapping[str, Any]]:
    stack: list[Any] = [*arr(tree, "branches", where)]
    yield from (p for p in arr(tree, "full_product_names", where) if isinstance(p, Mapping))
    while stack:
        branch = stack.pop()
        if not isinstance(branch, Mapping):
            continue
        if isinstance(branch.get("product"), Mapping):
            yield branch["product"]
        stack.extend(arr(branch, "branches", f"{where}: branch {shown(branch.get('name'))}"))


def _products(tree: Mapping[str, Any], source: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """product_id -> (product purl, subcomponent purls)."""
    where = f"{source}: product_tree"
    purls: dict[str, str] = {}
    for product in _named_products(tree, where):
        helper = product.get("product_identification_helper")
        pid = product.get("product_id")
        purl = helper.get("purl") if isinstance(helper, Mapping) else None
        if isinstance(pid, str) and isinstance(purl, str):
            purls[pid] = purl
    out: dict[str, tuple[str, tuple[str, ...]]] = {pid: (purl, ()) for pid, purl in purls.items()}
    for rel in arr(tree, "relationships", where):
        if not isinstance(rel, Mapping):
            continue
        name = rel.get("full_product_name")
        pid = name.get("product_id") if isinstance(name, Mapping) else None
        reference, parent_ref = (
            rel.get("product_reference"),
            rel.get("relates_to_product_reference"),
        )
        component = purls.get(reference) if isinstance(reference, str) else None
        parent = purls.get(parent_ref) if isinstance(parent_ref, str) else None
        if isinstance(pid, str) and component and parent:
            out[pid] = (parent, (component,))
    return out


def _by_product(entries: list[Any], key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        pids = entry.get("product_ids")
        value = entry.get(key)
        if not isinstance(pids, list) or not isinstance(value, str):
            continue
        for pid in pids:
            if isinstance(pid, str):
                out.setdefault(pid, value)
    return out


def _component(purl: str) -> dict[str, Any]:
    return {"@id": purl, "identifiers": {"purl": purl}}


def to_openvex(doc: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The OpenVEX v0.2.0 document saying what the CSAF VEX ``doc`` says."""
    meta = obj(doc, "document", source)
    tracking = obj(meta, "tracking", f"{source}: document")
    stamp = tracking.get("current_release_date")
    ident = tracking.get("id")
    if not isinstance(stamp, str) or not isinstance(ident, str):
        raise VexError(
            f"{source}: CSAF document has no tracking.id or tracking.current_release_date (strings)"
        )
    products = _products(obj(doc, "product_tree", source), source)
    statements = []
    for i, vuln in enumerate(arr(doc, "vulnerabilities", source)):
        where = f"{source}: vulnerabilities[{i}]"
        if not isinstance(vuln, Mapping):
            raise VexError(f"{where}: must be an object, not {kind_of(vuln)}")
        ids = [x.get("text") for x in arr(vuln, "ids", where) if isinstance(x, Mapping)]
        names = [n for n in (vuln.get("cve"), *ids) if isinstance(n, str) and n]
        if not names:
            raise VexError(f"{where}: has neither cve nor ids")
        flags = _by_product(arr(vuln, "flags", where), "label")
        impacts = _by_product(
            [
                t
                for t in arr(vuln, "threats", where)
                if isinstance(t, Mapping) and t.get("category") == "impact"
            ],
            "details",
        )
        actions = _by_product(arr(vuln, "remediations", where), "details")
        status_of = obj(vuln, "product_status", where)
        for category, status in STATUSES.items():
            for pid in arr(status_of, category, f"{where}.product_status"):
                if not isinstance(pid, str) or pid not in products:
                    raise VexError(
                        f"{where}: product_status.{category} names {shown(pid)}, which has no "
                        "purl in the product tree",
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
                count_statements(len(statements), source)
    if not statements:
        raise VexError(f"{source}: the CSAF document has no product status to read")
    version = tracking.get("version", "1")
    publisher = meta.get("publisher")
    author = publisher.get("name") if isinstance(publisher, Mapping) else None
    return {
        "@id": f"urn:csaf:{ident}:{version if isinstance(version, str | int) else 1}",
        "@context": CONTEXT,
        "author": author if isinstance(author, str) and author else "CSAF VEX",
        "timestamp": stamp,
        "version": 1,
        "tooling": "stella-ops (from CSAF VEX)",
        "statements": statements,
    }
