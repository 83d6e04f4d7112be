"""OpenVEX v0.2.0 documents: read them strictly into statements, write the ones operators author.

Reading checks what the merge relies on and refuses the rest with the field named: the
context, ``@id``, a known ``status`` and ``justification`` (OpenVEX's closed sets only), a
``not_affected`` statement's justification or impact statement, an ``affected`` statement's
action statement, products given by ``@id`` or ``identifiers.purl``, and RFC 3339 timestamps
(a statement without its own timestamp takes the document's, as the specification says).

Written documents conform to the published OpenVEX 0.2.0 JSON Schema
(tests/data/schemas/openvex-0.2.0.schema.json); the test suite validates them against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from appliance.vex.model import (
    Justification,
    Origin,
    Product,
    VexError,
    VexStatement,
    VexStatus,
    arr,
    count_statements,
    format_time,
    opt_str,
    parse_time,
    shown,
)
from bundles import canonical
from bundles.canonical import kind_of

CONTEXT: Final = "https://openvex.dev/ns/v0.2.0"
CONTEXT_PREFIX: Final = "https://openvex.dev/ns"
MEDIA_TYPE: Final = "application/openvex+json"


def _str(doc: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = opt_str(doc, key, where)
    if value is None and required:
        raise VexError(f"{where}: required field {key!r} is missing")
    return value or ""


def _component_id(raw: Any, where: str) -> str:
    if isinstance(raw, str) and raw:
        return raw  # OpenVEX 0.0.x wrote products as plain strings
    if not isinstance(raw, Mapping):
        raise VexError(
            f"{where}: must be an object with '@id' or 'identifiers', not {kind_of(raw)}"
        )
    identifiers = raw.get("identifiers")
    if isinstance(identifiers, Mapping) and isinstance(identifiers.get("purl"), str):
        purl: str = identifiers["purl"]
        return purl
    ident = raw.get("@id")
    if isinstance(ident, str) and ident:
        return ident
    raise VexError(
        f"{where}: has neither '@id' nor 'identifiers.purl'",
        hint="name the product by purl (pkg:oci/NAME@sha256:... for an image)",
    )


def _products(statement: Mapping[str, Any], where: str) -> tuple[Product, ...]:
    out = []
    for i, item in enumerate(arr(statement, "products", where)):
        here = f"{where}.products[{i}]"
        subs = arr(item, "subcomponents", here) if isinstance(item, Mapping) else []
        out.append(
            Product(
                id=_component_id(item, here),
                subcomponents=tuple(
                    _component_id(s, f"{here}.subcomponents[{j}]") for j, s in enumerate(subs)
                ),
            )
        )
    return tuple(out)


def _vulnerability(raw: Any, where: str) -> tuple[str, tuple[str, ...]]:
    if isinstance(raw, str) and raw:
        return raw, ()
    if isinstance(raw, Mapping):
        name = raw.get("name")
        aliases = raw.get("aliases") or []
        if isinstance(name, str) and name and isinstance(aliases, list):
            return name, tuple(str(a) for a in aliases if isinstance(a, str) and a)
    raise VexError(
        f"{where}: field 'vulnerability' must name the vulnerability (a string, or an object "
        f"with a string 'name' and an array 'aliases'), not {shown(raw)}"
    )


def statements_of(
    doc: Any,
    *,
    origin: Origin,
    source: str,
    expires: Mapping[int, datetime] | None = None,
    revokes: Mapping[int, str] | None = None,
) -> tuple[VexStatement, ...]:
    """The statements of one OpenVEX document. ``source`` names it in errors; ``expires`` and
    ``revokes`` (by statement index) come from the signed envelope that carried it."""
    if not isinstance(doc, Mapping):
        raise VexError(f"{source}: an OpenVEX document must be a JSON object, not {kind_of(doc)}")
    context = _str(doc, "@context", source, required=True)
    if not context.startswith(CONTEXT_PREFIX):
        raise VexError(
            f"{source}: '@context' is {shown(context)}, not an OpenVEX context",
            hint=f"expected {CONTEXT}",
        )
    doc_id = _str(doc, "@id", source, required=True)
    doc_time = _str(doc, "timestamp", source, required=True)
    default_time = parse_time(doc_time, where=f"{source}: timestamp")
    raw_statements = doc.get("statements")
    if not isinstance(raw_statements, list):
        raise VexError(
            f"{source}: field 'statements' must be an array, not {kind_of(raw_statements)}"
        )
    count_statements(len(raw_statements), source)
    digest = str(canonical.digest(dict(doc)))
    out: list[VexStatement] = []
    for i, st in enumerate(raw_statements):
        where = f"{source}: statements[{i}]"
        if not isinstance(st, Mapping):
            raise VexError(f"{where}: must be an object, not {kind_of(st)}")
        name, aliases = _vulnerability(st.get("vulnerability"), where)
        status_text = _str(st, "status", where, required=True)
        try:
            status = VexStatus(status_text)
        except ValueError:
            raise VexError(
                f"{where}: status {shown(status_text)} is not an OpenVEX status",
                hint=f"use one of {', '.join(s.value for s in VexStatus)}",
            ) from None
        justification = None
        just_text = _str(st, "justification", where)
        if just_text:
            try:
                justification = Justification(just_text)
            except ValueError:
                raise VexError(
                    f"{where}: justification {shown(just_text)} is not an OpenVEX justification",
                    hint=f"use one of {', '.join(j.value for j in Justification)}",
                ) from None
        impact = _str(st, "impact_statement", where)
        action = _str(st, "action_statement", where)
        if status is VexStatus.NOT_AFFECTED and justification is None and not impact:
            raise VexError(f"{where}: not_affected needs a justification or an impact_statement")
        if status is VexStatus.AFFECTED and not action:
            raise VexError(f"{where}: affected needs an action_statement")
        stamp = _str(st, "timestamp", where)
        products = _products(st, where)
        if not products:
            raise VexError(f"{where}: names no products", hint="a statement must name a product")
        out.append(
            VexStatement(
                key=f"{doc_id}#{i}",
                document=digest,
                origin=origin,
                vulnerability=name,
                aliases=aliases,
                products=products,
                status=status,
                timestamp=parse_time(stamp, where=f"{where}.timestamp") if stamp else default_time,
                justification=justification,
                impact=impact,
                action=action,
                notes=_str(st, "status_notes", where),
                expires=(expires or {}).get(i),
                revokes=(revokes or {}).get(i, ""),
            )
        )
    return tuple(out)


def _component(purl: str) -> dict[str, Any]:
    if purl.startswith("pkg:"):
        return {"@id": purl, "identifiers": {"purl": purl}}
    return {"@id": purl}


def authored_document(
    *,
    vulnerability: str,
    products: Sequence[Product],
    status: VexStatus,
    justification: Justification | None,
    impact: str,
    action: str,
    notes: str,
    author: str,
    timestamp: datetime,
) -> dict[str, Any]:
    """A one-statement OpenVEX document as ``stella vex add`` writes it. Its ``@id`` is
    derived from its content, so the same statement made at the same second is one document."""
    statement: dict[str, Any] = {
        "vulnerability": {"name": vulnerability},
        "products": [
            {
                **_component(p.id),
                **(
                    {"subcomponents": [_component(c) for c in p.subcomponents]}
                    if p.subcomponents
                    else {}
                ),
            }
            for p in products
        ],
        "status": status.value,
        "timestamp": format_time(timestamp),
    }
    if justification is not None:
        statement["justification"] = justification.value
    if impact:
        statement["impact_statement"] = impact
    if action:
        statement["action_statement"] = action
    if notes:
        statement["status_notes"] = notes
    body = {
        "@context": CONTEXT,
        "author": author,
        "role": "operator",
        "timestamp": format_time(timestamp),
        "version": 1,
        "tooling": "stella-ops",
        "statements": [statement],
    }
    ident = canonical.digest(body).hex
    return {"@id": f"https://stella-ops.org/vex/{ident}", **body}
