"""CVE records as a table of CVSS ratings by CVE: never a source of matches, like KEV and EPSS.

Two upstream forms, told apart by their content:

- **CVE JSON 5.x** (``CVEProject/cvelistV5``: ``cves/YYYY/NNxxx/CVE-….json``, a directory or
  an archive of it, or one record per line): the CNA container's ``metrics`` and every ADP
  container's ``metrics`` (CISA's "vulnrichment" ADP adds CVSS where the CNA gave none);
- **NVD CVE API 2.0** JSON (a response with ``vulnerabilities[].cve``, or one ``cve`` object
  per file as mirrors of the API keep them): ``metrics.cvssMetricV40/V31/V30/V2``, each
  with its ``source`` and ``type`` (``Primary`` is NVD's own analysis; ``Secondary`` is the
  CNA's or CISA-ADP's vector as NVD received it).

Each record keeps only what rating needs, and who gave each vector::

    {"id": "CVE-2020-14343", "modified": "…", "published": "…",
     "ratings": [{"origin": "nvd", "provider": "nvd@nist.gov", "feed": "nvd",
                  "version": "3.1", "vector": "CVSS:3.1/…", "score": "9.8",
                  "severity": "CRITICAL"}, …]}

``origin`` is ``cna``, ``adp`` or ``nvd``; ``score`` stays the decimal text upstream wrote, so
no float formatting ever changes a digest. Vectors are kept as published, even when they do
not parse (the appliance then uses the published score and says so). A CVE given by both
forms in one source gets one record with the ratings of both. Anything unusable is named:
file, field, value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import DatasetType, FeedSource, ParseResult, json_records

CVE_ID: Final = re.compile(r"CVE-\d{4}-\d{4,}")
#: CISA's ADP organisation id: NVD lists its vectors as ``Secondary`` with this source.
CISA_ADP_ORG: Final = "134c704f-9b21-4f2e-91b3-4a467353bcc0"
NVD_SOURCE: Final = "nvd@nist.gov"
# CVE 5 metric keys -> CVSS version; NVD metric lists -> CVSS version
_CVE5_KEYS: Final = {"cvssV4_0": "4.0", "cvssV3_1": "3.1", "cvssV3_0": "3.0", "cvssV2_0": "2.0"}
_NVD_KEYS: Final = {
    "cvssMetricV40": "4.0",
    "cvssMetricV31": "3.1",
    "cvssMetricV30": "3.0",
    "cvssMetricV2": "2.0",
}
_DECIMAL: Final = re.compile(r"\d{1,2}(?:\.\d+)?")


def _score(value: Any) -> str | None:
    """A published base score as decimal text, or None when it is not a number 0..10."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    text = repr(float(value)) if isinstance(value, float) else f"{value}.0"
    return text if _DECIMAL.fullmatch(text) and 0.0 <= float(text) <= 10.0 else None


class CVESource(FeedSource):
    kind = SourceKind.CVE
    dataset_type = DatasetType.CVE

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        merged: dict[str, dict[str, Any]] = {}
        records = []
        for member in members:
            if member.name.rsplit("/", 1)[-1] in ("delta.json", "deltaLog.json"):
                result.ignored.append(member.name)  # cvelistV5's change logs, not records
            else:
                records.append(member)
        for item, doc in json_records(records, result):
            self._document(doc, item, result, merged)
        result.records.extend(merged[k] for k in sorted(merged))
        return result

    def _document(
        self, doc: Any, item: str, result: ParseResult, merged: dict[str, dict[str, Any]]
    ) -> None:
        if not isinstance(doc, dict):
            result.skip(item, f"not a JSON object but {type(doc).__name__}")
        elif "cveMetadata" in doc or doc.get("dataType") == "CVE_RECORD":
            self._cve5(doc, item, result, merged)
        elif isinstance(doc.get("vulnerabilities"), list):
            for i, entry in enumerate(doc["vulnerabilities"]):
                cve = entry.get("cve") if isinstance(entry, dict) else None
                if not isinstance(cve, dict):
                    result.skip(f"{item}:vulnerabilities[{i}]", "field 'cve' is not an object")
                    continue
                self._nvd(cve, f"{item}:vulnerabilities[{i}]", result, merged)
        elif isinstance(doc.get("id"), str) and "metrics" in doc:
            self._nvd(doc, item, result, merged)
        else:
            result.skip(item, "neither a CVE JSON 5 record (cveMetadata) nor NVD CVE API 2.0 JSON")

    @staticmethod
    def _record(
        merged: dict[str, dict[str, Any]], cve: str, modified: Any, published: Any
    ) -> dict[str, Any]:
        record = merged.get(cve)
        if record is None:
            record = merged[cve] = {"id": cve, "ratings": []}
        for key, value in (("modified", modified), ("published", published)):
            if isinstance(value, str) and value > record.get(key, ""):
                record[key] = value
        return record

    def _cve5(
        self, doc: dict[str, Any], item: str, result: ParseResult, merged: dict[str, dict[str, Any]]
    ) -> None:
        meta = doc.get("cveMetadata")
        cve = meta.get("cveId") if isinstance(meta, dict) else None
        if not isinstance(cve, str) or not CVE_ID.fullmatch(cve):
            result.skip(item, f"field 'cveMetadata.cveId': not a CVE id: {cve!r}")
            return
        assert isinstance(meta, dict)
        if meta.get("state") == "REJECTED":
            result.ignored.append(f"{item} ({cve} rejected)")
            return
        containers = doc.get("containers")
        if not isinstance(containers, dict):
            result.skip(f"{item} ({cve})", "field 'containers' is not an object")
            return
        record = self._record(merged, cve, meta.get("dateUpdated"), meta.get("datePublished"))
        cna = containers.get("cna")
        adps = containers.get("adp", [])
        parts: list[tuple[str, str, Any]] = []
        if isinstance(cna, dict):
            parts.append(("cna", "containers.cna", cna))
        if isinstance(adps, list):
            parts.extend(("adp", f"containers.adp[{i}]", adp) for i, adp in enumerate(adps))
        else:
            result.skip(f"{item} ({cve}):containers.adp", "is not a list")
        for origin, field, container in parts:
            if not isinstance(container, dict):
                result.skip(f"{item} ({cve}):{field}", "is not an object")
                continue
            provider = container.get("providerMetadata")
            who = ""
            if isinstance(provider, dict):
                who = str(provider.get("shortName") or provider.get("orgId") or "")
            metrics = container.get("metrics", [])
            if not isinstance(metrics, list):
                result.skip(f"{item} ({cve}):{field}.metrics", "is not a list")
                continue
            for j, metric in enumerate(metrics):
                if not isinstance(metric, dict):
                    continue
                for key, version in _CVE5_KEYS.items():
                    data = metric.get(key)
                    if data is None:
                        continue
                    rating = self._rating(
                        data,
                        version,
                        origin,
                        who,
                        "cve5",
                        f"{item} ({cve}):{field}.metrics[{j}].{key}",
                        result,
                    )
                    if rating is not None:
                        record["ratings"].append(rating)

    def _nvd(
        self,
        cve_doc: dict[str, Any],
        item: str,
        result: ParseResult,
        merged: dict[str, dict[str, Any]],
    ) -> None:
        cve = cve_doc.get("id")
        if not isinstance(cve, str) or not CVE_ID.fullmatch(cve):
            result.skip(item, f"field 'id': not a CVE id: {cve!r}")
            return
        if str(cve_doc.get("vulnStatus", "")).lower() == "rejected":
            result.ignored.append(f"{item} ({cve} rejected)")
            return
        metrics = cve_doc.get("metrics", {})
        if not isinstance(metrics, dict):
            result.skip(f"{item} ({cve}):metrics", "is not an object")
            return
        record = self._record(merged, cve, cve_doc.get("lastModified"), cve_doc.get("published"))
        for key, version in _NVD_KEYS.items():
            entries = metrics.get(key, [])
            if not isinstance(entries, list):
                result.skip(f"{item} ({cve}):metrics.{key}", "is not a list")
                continue
            for j, entry in enumerate(entries):
                where = f"{item} ({cve}):metrics.{key}[{j}]"
                if not isinstance(entry, dict) or not isinstance(entry.get("cvssData"), dict):
                    result.skip(where, "has no 'cvssData' object")
                    continue
                source = str(entry.get("source", ""))
                kind = str(entry.get("type", ""))
                if source == NVD_SOURCE or kind == "Primary":
                    origin, who = "nvd", source
                elif source == CISA_ADP_ORG:
                    origin, who = "adp", "CISA-ADP"
                else:
                    origin, who = "cna", source
                data = dict(entry["cvssData"])
                if "baseSeverity" not in data and "baseSeverity" in entry:
                    data["baseSeverity"] = entry["baseSeverity"]  # where v2 keeps it
                rating = self._rating(data, version, origin, who, "nvd", where, result)
                if rating is not None:
                    rating["nvd_type"] = kind
                    record["ratings"].append(rating)

    @staticmethod
    def _rating(
        data: Any,
        version: str,
        origin: str,
        who: str,
        feed: str,
        where: str,
        result: ParseResult,
    ) -> dict[str, Any] | None:
        if not isinstance(data, dict):
            result.skip(where, "is not an object")
            return None
        vector = data.get("vectorString")
        score = _score(data.get("baseScore"))
        if not isinstance(vector, str) or not vector.strip():
            result.skip(where, f"field 'vectorString' missing or empty: {vector!r}")
            return None
        if data.get("baseScore") is not None and score is None:
            result.skip(f"{where}.baseScore", f"not a score 0..10: {data.get('baseScore')!r}")
        rating: dict[str, Any] = {
            "origin": origin,
            "provider": who,
            "feed": feed,
            "version": version,
            "vector": vector.strip(),
        }
        if score is not None:
            rating["score"] = score
        word = data.get("baseSeverity")
        if isinstance(word, str) and word.strip():
            rating["severity"] = word.strip().upper()
        return rating
