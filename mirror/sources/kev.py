"""CISA's Known Exploited Vulnerabilities catalog (JSON): one enrichment record per CVE."""

from __future__ import annotations

from collections.abc import Sequence

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import ADVISORY_ID, DatasetType, FeedSource, ParseResult, load_json


class KEVSource(FeedSource):
    kind = SourceKind.KEV
    dataset_type = DatasetType.KEV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        catalogs = 0
        for member in members:
            if not member.name.endswith(".json") or member.name.endswith("_schema.json"):
                result.ignored.append(member.name)
                continue
            doc = load_json(member.data, member.name, result)
            if doc is None:
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
                result.skip(member.name, "not a KEV catalog (no 'vulnerabilities' list)")
                continue
            catalogs += 1
            for key in ("catalogVersion", "dateReleased", "title"):
                if isinstance(doc.get(key), str):
                    result.meta[key] = doc[key]
            vulns = doc["vulnerabilities"]
            if isinstance(doc.get("count"), int) and doc["count"] != len(vulns):
                result.skip(
                    f"{member.name}:count",
                    f"catalog says count {doc['count']} but lists {len(vulns)} entries",
                )
            for index, entry in enumerate(vulns):
                cve = entry.get("cveID") if isinstance(entry, dict) else None
                if not isinstance(cve, str) or not ADVISORY_ID.fullmatch(cve):
                    result.skip(f"{member.name}:vulnerabilities[{index}]", "no valid 'cveID'")
                    continue
                result.records.append({"id": cve, **entry})
        if catalogs > 1:
            result.skip("catalog", f"{catalogs} KEV catalogs in one source; entries were merged")
        return result
