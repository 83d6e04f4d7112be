"""Alpine secdb: ``vX.Y/main.json`` and ``community.json`` (``secfixes`` per package).

Each advisory id becomes one OSV-shaped record ``ALPINE-<id>`` (secdb's own ``ALPINE-<n>`` ids
are kept as they are) whose affected entries name the
branch as ecosystem (``Alpine:v3.20``, ``Alpine:edge``), the package, and the fixing apk
version as published (``introduced 0, fixed V``; secdb's ``0`` = never affected gives the empty
range). Secfix entries like ``CVE-2016-10013 XSA-204`` keep the extra ids as aliases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import (
    ADVISORY_ID,
    UNKNOWN_TIME,
    DatasetType,
    FeedSource,
    ParseResult,
    load_json,
)

SCHEME: Final = "apk"


def _affected_key(a: dict[str, Any]) -> tuple[str, str, str, str]:
    """Order affected entries by content, so member order never changes a record."""
    return (
        a["package"]["ecosystem"],
        a["package"]["name"],
        a["ranges"][0]["events"][1]["fixed"],
        a["database_specific"]["repository"],
    )


class AlpineSecdbSource(FeedSource):
    kind = SourceKind.ALPINE_SECDB
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        records: dict[str, dict[str, Any]] = {}
        for member in members:
            if not member.name.endswith(".json"):
                result.ignored.append(member.name)
                continue
            doc = load_json(member.data, member.name, result)
            if doc is None:
                continue
            branch, repo = (
                (doc.get("distroversion"), doc.get("reponame"))
                if isinstance(doc, dict)
                else (None, None)
            )
            if not isinstance(branch, str) or not isinstance(doc.get("packages"), list):
                result.skip(member.name, "not a secdb file (needs distroversion and packages)")
                continue
            eco = f"Alpine:{branch}"
            for index, wrapper in enumerate(doc["packages"]):
                pkg = wrapper.get("pkg") if isinstance(wrapper, dict) else None
                item = f"{member.name}:packages[{index}]"
                if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
                    result.skip(item, "package entry needs pkg.name")
                    continue
                name = pkg["name"]
                secfixes = pkg.get("secfixes") or {}
                if not isinstance(secfixes, dict):
                    result.skip(f"{item} ({name})", "secfixes is not a mapping")
                    continue
                for version, ids in sorted(secfixes.items()):
                    if not isinstance(ids, list):
                        result.skip(f"{item} ({name} {version})", "secfixes value is not a list")
                        continue
                    for entry in ids:
                        self._add(records, result, entry, eco, name, str(version), repo, item)
        for rec in records.values():
            rec["affected"].sort(key=_affected_key)
        result.records.extend(records.values())
        return result

    @staticmethod
    def _add(
        records: dict[str, dict[str, Any]],
        result: ParseResult,
        entry: Any,
        eco: str,
        package: str,
        version: str,
        repo: Any,
        item: str,
    ) -> None:
        tokens = [t for t in str(entry).split() if ADVISORY_ID.fullmatch(t)]
        if not isinstance(entry, str) or not tokens:
            result.skip(f"{item} ({package} {version})", f"no advisory id in {entry!r}")
            return
        rid = tokens[0] if tokens[0].startswith("ALPINE-") else f"ALPINE-{tokens[0]}"
        rec = records.get(rid)
        if rec is None:
            rec = records[rid] = {
                "id": rid,
                "modified": UNKNOWN_TIME,
                "aliases": [],
                "affected": [],
                "database_specific": {"source": "alpine-secdb"},
            }
        rec["aliases"] = sorted(set(rec["aliases"]) | set(tokens))
        affected = {
            "package": {"ecosystem": eco, "name": package},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version}]}],
            "database_specific": {"version_scheme": SCHEME, "repository": str(repo)},
        }
        if affected not in rec["affected"]:
            rec["affected"].append(affected)
