"""OSV records as published: ``all.zip`` per ecosystem, a directory of ``*.json``, or JSON
lines (gzipped too). Records are kept byte-for-byte in meaning; only malformed ones are skipped."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import DatasetType, FeedSource, ParseResult, json_records


def osv_problem(record: Any) -> str | None:
    """Why ``record`` is not a usable OSV record, or None. Checks what matching relies on."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    rid = record.get("id")
    if not isinstance(rid, str) or not rid.strip():
        return "field 'id' missing or not a string"
    if not isinstance(record.get("modified"), str):
        return "field 'modified' missing or not a string"
    affected = record.get("affected", [])
    if not isinstance(affected, list):
        return "field 'affected' is not a list"
    for i, entry in enumerate(affected):
        if not isinstance(entry, dict):
            return f"affected[{i}] is not an object"
        pkg = entry.get("package")
        if pkg is not None and (
            not isinstance(pkg, dict) or not isinstance(pkg.get("ecosystem"), str)
        ):
            return f"affected[{i}].package has no ecosystem"
        ranges = entry.get("ranges", [])
        if not isinstance(ranges, list):
            return f"affected[{i}].ranges is not a list"
        for j, rng in enumerate(ranges):
            if (
                not isinstance(rng, dict)
                or not isinstance(rng.get("type"), str)
                or not isinstance(rng.get("events"), list)
            ):
                return f"affected[{i}].ranges[{j}] needs a 'type' and a list of 'events'"
    return None


def osv_label(record: Any, item: str) -> str:
    """How an unknown names a record: ``item (id)`` when it has a string id, else ``item``."""
    rid = record.get("id") if isinstance(record, dict) else None
    return f"{item} ({rid})" if isinstance(rid, str) else item


class OSVFeed(FeedSource):
    """OSV records as published (``*.json`` documents or JSON lines). The OSV-based feeds
    (plain OSV, GHSA, the RPM rebuilds) differ only in :meth:`_add`, which checks one parsed
    record and keeps it (normalized) or skips it with an unknown."""

    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for item, record in json_records(members, result):
            try:
                self._add(record, item, result)
            except (AttributeError, TypeError, KeyError) as e:
                # A field of an unexpected JSON type the checks did not foresee: the record is
                # unusable, the rest of the feed is not.
                result.skip(item, f"malformed record: {type(e).__name__}: {e}")
        return result

    @abstractmethod
    def _add(self, record: Any, item: str, result: ParseResult) -> None:
        """Keep ``record`` (parsed from ``item``) in ``result``, or name it in an unknown."""


class OSVSource(OSVFeed):
    kind = SourceKind.OSV

    @staticmethod
    def _add(record: Any, item: str, result: ParseResult) -> None:
        problem = osv_problem(record)
        if problem:
            result.skip(osv_label(record, item), problem)
            return
        result.records.append(record)
