"""Legacy npm advisories (the nodejs security-wg / npm advisory JSON) -> OSV-shaped records.

``vulnerable_versions`` and ``patched_versions`` are node-semver range expressions; they are kept
as published under ``database_specific`` with ``version_scheme: npm-semver``, and the whole
upstream object is kept under ``database_specific.npm_advisory``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import (
    UNKNOWN_TIME,
    DatasetType,
    FeedSource,
    ParseResult,
    json_records,
)

SCHEME: Final = "npm-semver"


def _time(value: Any) -> str:
    if isinstance(value, str) and len(value) >= 10:
        return f"{value[:10]}T00:00:00Z" if len(value) == 10 else value
    return UNKNOWN_TIME


class NpmLegacySource(FeedSource):
    kind = SourceKind.NPM_LEGACY
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for item, doc in json_records(members, result):
            self._add(doc, item, result)
        return result

    @classmethod
    def _add(cls, doc: Any, item: str, result: ParseResult) -> None:
        if (
            isinstance(doc, dict)
            and doc
            and "id" not in doc
            and all(isinstance(v, dict) and "module_name" in v for v in doc.values())
        ):
            # an index object {"<id>": advisory, ...}, as the upstream export also ships
            for key in sorted(doc):
                cls._add(doc[key], f"{item}[{key}]", result)
            return
        if (
            not isinstance(doc, dict)
            or isinstance(doc.get("id"), bool)
            or not isinstance(doc.get("id"), int | str)
            or not isinstance(doc.get("module_name"), str)
        ):
            result.skip(item, "not an npm advisory (needs 'id' and 'module_name')")
            return
        cves: list[Any] = doc["cves"] if isinstance(doc.get("cves"), list) else []
        rec: dict[str, Any] = {
            "id": f"NPM-{doc['id']}",
            "modified": _time(doc.get("updated_at")),
            "published": _time(doc.get("publish_date") or doc.get("created_at")),
            "aliases": sorted({c for c in cves if isinstance(c, str)}),
            "affected": [
                {
                    "package": {"ecosystem": "npm", "name": doc["module_name"]},
                    "database_specific": {
                        "version_scheme": SCHEME,
                        "vulnerable_versions": doc.get("vulnerable_versions"),
                        "patched_versions": doc.get("patched_versions"),
                    },
                }
            ],
            "references": [
                {"type": "WEB", "url": u} for u in doc.get("references") or [] if isinstance(u, str)
            ],
            "database_specific": {"source": "npm-advisory", "npm_advisory": doc},
        }
        if isinstance(doc.get("title"), str):
            rec["summary"] = doc["title"]
        if isinstance(doc.get("overview"), str):
            rec["details"] = doc["overview"]
        result.records.append(rec)
