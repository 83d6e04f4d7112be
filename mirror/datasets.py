"""Canonical dataset bytes: records sorted by id, one RFC 8785 object per line.

The dataset digest is the SHA-256 of exactly these bytes, so it depends only on the records,
never on member order, dict order, hash seed or clock.

Duplicate ids within one dataset are resolved deterministically: identical records collapse
into one (counted in ``duplicates``); differing records keep the one with the latest
``modified`` (ties: the greater canonical bytes) and every dropped one is recorded as an
:class:`~mirror.sources.interface.Unknown` naming the id and the kept ``modified``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from bundles import canonical
from bundles.digest import Digest
from mirror.sources.interface import ParseResult, Unknown

_MIN_TIME = datetime.min.replace(tzinfo=UTC)
_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode
#: After a delimiter, a number with a fraction or exponent (a float) or 16+ digits (maybe
#: outside JCS's safe integer range). May also hit inside strings; that only costs speed.
_RISKY: Final = re.compile(r"[:\[,]-?(?:\d+[.eE]|\d{16})")


def canonical_line(record: Any) -> bytes:
    """RFC 8785 bytes of ``record``, fast.

    The stdlib C encoder (sorted keys, no spaces, no ASCII escaping) writes exactly the JCS
    bytes for a document without floats, without integers outside the safe range and without
    characters from U+D800 up (where Python's code-point key order could differ from JCS's
    UTF-16 order). Lines that might break one of those rules go through
    :func:`bundles.canonical.dumps`. Property-tested against it; canonicalization was most of
    a sync's CPU time.
    """
    try:
        text = _encode(record)
    except (TypeError, ValueError):
        return canonical.dumps(record)
    if _RISKY.search(text) is None and (not text or max(text) < "\ud800"):
        return text.encode("utf-8")
    return canonical.dumps(record)


@dataclass(frozen=True, slots=True)
class DatasetBuild:
    """A finished dataset: canonical bytes with their digest and what was left out."""

    data: bytes
    digest: Digest
    records: int
    duplicates: int
    unknowns: tuple[Unknown, ...]


def _modified(record: dict[str, Any]) -> datetime:
    value = record.get("modified")
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return _MIN_TIME
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return _MIN_TIME


def build_dataset(result: ParseResult) -> DatasetBuild:
    """Sort, de-duplicate and serialize ``result.records``; unknowns come back sorted."""
    chosen: dict[str, tuple[datetime, bytes]] = {}
    unknowns = list(result.unknowns)
    duplicates = 0
    for record in result.records:
        rid = record["id"]
        line = canonical_line(record)
        key = (_modified(record), line)
        old = chosen.get(rid)
        if old is None:
            chosen[rid] = key
            continue
        duplicates += 1
        if old[1] == line:
            continue
        keep, drop = (key, old) if key > old else (old, key)
        chosen[rid] = keep
        unknowns.append(
            Unknown(
                rid,
                f"duplicate id: dropped the version modified {drop[0].isoformat()} "
                f"(sha256:{Digest.of_bytes(drop[1]).short()}), kept the one modified "
                f"{keep[0].isoformat()} (sha256:{Digest.of_bytes(keep[1]).short()})",
            )
        )
    data = b"".join(chosen[rid][1] + b"\n" for rid in sorted(chosen))
    return DatasetBuild(
        data=data,
        digest=Digest.of_bytes(data),
        records=len(chosen),
        duplicates=duplicates,
        unknowns=tuple(sorted(unknowns)),
    )
