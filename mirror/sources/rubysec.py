"""RubyGems advisories as YAML (ruby-advisory-db ``gems/<gem>/<id>.yml``) -> OSV-shaped records.

Requirement strings (``>= 4.3.0``, ``~> 5.2.1``) have no OSV event form, so they are kept as
published in ``database_specific`` with ``version_scheme: rubygems``; the whole upstream
mapping is kept under ``database_specific.rubysec`` so no field is lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

import yaml

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import UNKNOWN_TIME, DatasetType, FeedSource, ParseResult

SCHEME: Final = "rubygems"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _plain(value: Any) -> Any:
    """YAML dates and numbers as JSON-safe values (dates as ISO strings)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    return value


class RubySecSource(FeedSource):
    kind = SourceKind.RUBYSEC
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for member in members:
            if not member.name.endswith((".yml", ".yaml")):
                result.ignored.append(member.name)
                continue
            try:
                doc = yaml.load(member.data, Loader=_Loader)  # noqa: S506 - a safe loader
            except yaml.YAMLError as e:
                result.skip(member.name, f"not valid YAML: {' '.join(str(e).split())}")
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("gem"), str):
                result.skip(member.name, "not a gem advisory (no 'gem' field)")
                continue
            result.records.append(self._record(_plain(doc), member.name))
        return result

    @staticmethod
    def _record(doc: dict[str, Any], name: str) -> dict[str, Any]:
        stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        aliases = []
        if doc.get("cve"):
            aliases.append(f"CVE-{doc['cve']}")
        if doc.get("ghsa"):
            aliases.append(f"GHSA-{doc['ghsa']}")
        if doc.get("osvdb"):
            aliases.append(f"OSVDB-{doc['osvdb']}")
        date = doc.get("date")
        when = f"{date}T00:00:00Z" if isinstance(date, str) and len(date) == 10 else UNKNOWN_TIME
        refs = [doc["url"]] if isinstance(doc.get("url"), str) else []
        related = doc.get("related")
        if isinstance(related, dict) and isinstance(related.get("url"), list):
            refs += [u for u in related["url"] if isinstance(u, str) and u not in refs]
        rec: dict[str, Any] = {
            "id": f"RUBYSEC-{doc['gem']}-{stem}",
            "modified": when,
            "published": when,
            "aliases": sorted(set(aliases)),
            "affected": [
                {
                    "package": {"ecosystem": "RubyGems", "name": doc["gem"]},
                    "database_specific": {
                        "version_scheme": SCHEME,
                        "patched_versions": doc.get("patched_versions") or [],
                        "unaffected_versions": doc.get("unaffected_versions") or [],
                    },
                }
            ],
            "references": [{"type": "WEB", "url": u} for u in refs],
            "database_specific": {"source": "rubysec", "rubysec": doc},
        }
        if isinstance(doc.get("title"), str):
            rec["summary"] = doc["title"]
        if isinstance(doc.get("description"), str):
            rec["details"] = doc["description"]
        return rec
