"""OSV records as published: ``all.zip`` per ecosystem, a directory of ``*.json``, or JSON
lines (gzipped too). Records are kept byte-for-byte in meaning; only malformed ones are skipped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import DatasetType, FeedSource, ParseResult, load_json


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


class OSVSource(FeedSource):
    kind = SourceKind.OSV
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for member in members:
            name = member.name
            if name.endswith(".json"):
                self._add(load_json(member.data, name, result), name, result)
            elif name.endswith((".jsonl", ".ndjson")):
                for lineno, line in enumerate(member.data.splitlines(), start=1):
                    if line.strip():
                        item = f"{name}:{lineno}"
                        self._add(load_json(line, item, result), item, result)
            else:
                result.ignored.append(name)
        return result

    @staticmethod
    def _add(record: Any, item: str, result: ParseResult) -> None:
        if record is None:
            return
        problem = osv_problem(record)
        if problem:
            rid = record.get("id") if isinstance(record, dict) else None
            result.skip(f"{item} ({rid})" if isinstance(rid, str) else item, problem)
            return
        result.records.append(record)
