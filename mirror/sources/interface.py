"""The one interface every feed format implements, and the values it returns.

A :class:`FeedSource` turns upstream members (bytes with names, see :mod:`mirror.inputs`) into
one dataset: records keyed by ``id``. It knows no paths, URLs or clocks, so the same bytes
always give the same records. A record that cannot be used is skipped with an
:class:`Unknown` naming it and the reason; only a feed that is unusable as a whole raises
:class:`~mirror.errors.FeedError`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from bundles import canonical
from bundles.errors import CanonicalJSONError
from bundles.limits import LimitError
from bundles.snapshot import DatasetType, Unknown
from mirror.config import SourceKind
from mirror.inputs import Member

#: OSV's "date not known" value, used where a feed publishes no modification time (as Go does).
UNKNOWN_TIME: Final = "0001-01-01T00:00:00Z"
__all__ = [
    "ADVISORY_ID",
    "UNKNOWN_TIME",
    "DatasetType",
    "FeedSource",
    "ParseResult",
    "Unknown",
    "as_list",
    "as_object",
    "json_documents",
    "json_records",
    "load_json",
]
ADVISORY_ID: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*")


@dataclass(slots=True)
class ParseResult:
    """What a parser produced. ``meta`` holds upstream facts about the whole feed (catalog
    version, EPSS score date); ``ignored`` names members that are not part of the format."""

    records: list[dict[str, Any]] = field(default_factory=list)
    unknowns: list[Unknown] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def skip(self, item: str, reason: str) -> None:
        self.unknowns.append(Unknown(item, reason))


class FeedSource(ABC):
    """One feed format. ``version`` is bumped whenever normalization output changes, and is
    recorded in the manifest so a changed normalizer changes the snapshot identity."""

    kind: ClassVar[SourceKind]
    dataset_type: ClassVar[DatasetType]
    version: ClassVar[int] = 1

    @abstractmethod
    def parse(self, members: Sequence[Member]) -> ParseResult:
        """Turn upstream members (sorted by name) into records and unknowns."""


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: an optional field of the wrong type
    is treated as absent."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one (see :func:`as_object`)."""
    return value if isinstance(value, list) else []


#: What :func:`_loads` returns for a document that is not usable JSON (``None`` is ``null``).
_NOT_JSON: Final = object()


def _loads(data: bytes, item: str, result: ParseResult) -> Any:
    """Strictly parse one JSON document; on failure (not JSON, or over a size or nesting
    cap) record an unknown and return :data:`_NOT_JSON`."""
    try:
        return canonical.loads(data, source=item)
    except (CanonicalJSONError, LimitError) as e:
        result.skip(item, e.message.removeprefix(f"{item}: "))
        return _NOT_JSON


def load_json(data: bytes, item: str, result: ParseResult) -> Any | None:
    """Strictly parse one JSON document; on failure (not JSON, or over a size or nesting
    cap) record an unknown and return None."""
    doc = _loads(data, item, result)
    return None if doc is _NOT_JSON else doc


def json_documents(members: Sequence[Member], result: ParseResult) -> Iterator[tuple[Member, Any]]:
    """Each ``*.json`` member with its parsed document, in member order. Other members are
        named in ``result.ignored``; one that is not JSON gets an unknown and is not yielded (a
    ``null`` document is yielded, for the parser to name)."""
    for member in members:
        if not member.name.endswith(".json"):
            result.ignored.append(member.name)
            continue
        doc = _loads(member.data, member.name, result)
        if doc is not _NOT_JSON:
            yield member, doc


def json_records(members: Sequence[Member], result: ParseResult) -> Iterator[tuple[str, Any]]:
    """Each record of ``*.json`` members (one document) and of ``*.jsonl``/``*.ndjson`` members
    (one per non-blank line), with the item naming it (``name`` or ``name:line``), in order.
    Other members are named in ``result.ignored``; a record that is not JSON gets an unknown
    and is not yielded."""
    for member in members:
        name = member.name
        if name.endswith(".json"):
            items = [(name, member.data)]
        elif name.endswith((".jsonl", ".ndjson")):
            lines = enumerate(member.data.splitlines(), start=1)
            items = [(f"{name}:{lineno}", line) for lineno, line in lines if line.strip()]
        else:
            result.ignored.append(name)
            continue
        for item, data in items:
            record = _loads(data, item, result)
            if record is not _NOT_JSON:
                yield item, record
