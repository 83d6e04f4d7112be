"""VEX values: statuses and justifications (OpenVEX's closed sets), products, statements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from bundles import limits, rfc3339
from bundles.canonical import kind_of
from bundles.errors import StellaError
from bundles.limits import Unit

STATEMENTS: Final = limits.cap(
    "vex.statements",
    50_000,
    Unit.COUNT,
    "the statements of one VEX document (OpenVEX, or read from CSAF or CycloneDX)",
)
_SHOWN: Final = 80  # characters of a bad value quoted in an error


class VexError(StellaError):
    """A VEX document or statement is malformed or cannot be applied."""


def shown(value: Any) -> str:
    """A bad value as an error quotes it: its repr, cut short (a hostile value can be huge)."""
    if isinstance(value, list | dict):
        return kind_of(value)
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def obj(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """``doc[key]`` when it is an object; an absent or null field is an empty object."""
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise VexError(f"{where}: field {key!r} must be an object, not {kind_of(value)}")
    return value


def arr(doc: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """``doc[key]`` when it is an array; an absent or null field is an empty array."""
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise VexError(f"{where}: field {key!r} must be an array, not {kind_of(value)}")
    return value


def opt_str(doc: Mapping[str, Any], key: str, where: str) -> str | None:
    """``doc[key]`` when it is a string; absent or null is None."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise VexError(f"{where}: field {key!r} must be a string, not {kind_of(value)}")
    return value


def count_statements(count: int, source: str) -> None:
    """Refuse a document past the ``vex.statements`` cap (call as statements are made)."""
    limits.check(STATEMENTS, count, source)


class VexStatus(StrEnum):
    """OpenVEX v0.2.0 statuses; nothing else is accepted."""

    NOT_AFFECTED = "not_affected"
    AFFECTED = "affected"
    FIXED = "fixed"
    UNDER_INVESTIGATION = "under_investigation"


class Justification(StrEnum):
    """OpenVEX v0.2.0 justifications for ``not_affected``; nothing else is accepted."""

    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    VULNERABLE_CODE_NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
    VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY = (
        "vulnerable_code_cannot_be_controlled_by_adversary"
    )
    INLINE_MITIGATIONS_ALREADY_EXIST = "inline_mitigations_already_exist"


class Origin(StrEnum):
    """Who made a statement: the appliance's operators (authored here and signed with the
    appliance key) or a vendor (carried in a signed knowledge snapshot or imported)."""

    OPERATOR = "operator"
    VENDOR = "vendor"

    @property
    def rank(self) -> int:
        """Higher wins: an operator knows the deployment better than a vendor's default."""
        return 1 if self is Origin.OPERATOR else 0


def format_time(value: datetime) -> str:
    """RFC 3339 UTC to the second, the one form times are written in."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise VexError(f"time {value.isoformat()} has no time zone", hint="pass an aware time")
    return rfc3339.format_time(value)


def parse_time(text: str, *, where: str) -> datetime:
    """An RFC 3339 time by :mod:`bundles.rfc3339`'s rules (a date alone means midnight UTC),
    as aware UTC."""
    try:
        return rfc3339.parse_time(text, where=where)
    except rfc3339.TimeFormatError as e:
        raise VexError(e.message, hint=e.hint) from e


@dataclass(frozen=True, slots=True)
class Product:
    """A statement's product (an IRI, usually a purl) and the subcomponents it narrows to."""

    id: str
    subcomponents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VexStatement:
    """One OpenVEX statement as the merge reads it.

    ``key`` identifies it across documents (document id and statement index); ``document``
    is the SHA-256 of the canonical document it came from. ``expires`` makes a statement an
    exception: from that time on it no longer applies, and it never renews by itself.
    """

    key: str
    document: str
    origin: Origin
    vulnerability: str
    aliases: tuple[str, ...]
    products: tuple[Product, ...]
    status: VexStatus
    timestamp: datetime
    justification: Justification | None = None
    impact: str = ""
    action: str = ""
    notes: str = ""
    expires: datetime | None = None
    revokes: str = ""

    @property
    def names(self) -> frozenset[str]:
        """Every name of the vulnerability, folded to upper case for comparison."""
        return frozenset(n.upper() for n in (self.vulnerability, *self.aliases) if n)

    @property
    def is_exception(self) -> bool:
        return self.expires is not None

    def in_force(self, at: datetime) -> bool:
        """Known by ``at`` and not yet expired at ``at``."""
        return self.timestamp <= at and (self.expires is None or at < self.expires)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "document": self.document,
            "origin": self.origin.value,
            "vulnerability": self.vulnerability,
            "aliases": list(self.aliases),
            "products": [
                {"id": p.id, "subcomponents": list(p.subcomponents)} for p in self.products
            ],
            "status": self.status.value,
            "justification": self.justification.value if self.justification else None,
            "impact": self.impact,
            "action": self.action,
            "notes": self.notes,
            "timestamp": format_time(self.timestamp),
            "expires": format_time(self.expires) if self.expires else None,
            "revokes": self.revokes,
        }

    @classmethod
    def from_dict(cls, data: Any) -> VexStatement:
        """The inverse of :meth:`to_dict`, for statements read back from ``state.db``."""
        try:
            justification = data.get("justification")
            expires = data.get("expires")
            return cls(
                key=data["key"],
                document=data["document"],
                origin=Origin(data["origin"]),
                vulnerability=data["vulnerability"],
                aliases=tuple(data.get("aliases", ())),
                products=tuple(
                    Product(p["id"], tuple(p.get("subcomponents", ()))) for p in data["products"]
                ),
                status=VexStatus(data["status"]),
                timestamp=parse_time(data["timestamp"], where="statement timestamp"),
                justification=Justification(justification) if justification else None,
                impact=data.get("impact", ""),
                action=data.get("action", ""),
                notes=data.get("notes", ""),
                expires=parse_time(expires, where="statement expires") if expires else None,
                revokes=data.get("revokes", ""),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise VexError(f"stored VEX statement is malformed: {e}") from e
