"""Alpine secdb: ``vX.Y/main.json`` and ``community.json`` (``secfixes`` per package).

Each advisory id becomes one OSV-shaped record ``ALPINE-<id>`` (secdb's own ``ALPINE-<n>`` ids
are kept as they are) whose affected entries name the
branch as ecosystem (``Alpine:v3.20``, ``Alpine:edge``), the package, and the fixing apk
version as published (``introduced 0, fixed V``; secdb's ``0`` = never affected gives the empty
range). Secfix entries like ``CVE-2016-10013 XSA-204`` keep the extra ids as aliases.

:class:`SecdbSource` is the format itself, shared with the other secdb publishers (Wolfi,
Chainguard), which differ only in where the ecosystem comes from and in the id prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import (
    ADVISORY_ID,
    UNKNOWN_TIME,
    DatasetType,
    FeedSource,
    ParseResult,
    json_documents,
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


class SecdbSource(FeedSource):
    """One secdb publisher. Alpine's documents each name their branch (``distroversion``);
    a publisher with one ``ecosystem`` for the whole distribution (Wolfi, Chainguard) sets it.
    ``prefix`` is prepended to advisory ids that do not already carry it; the kind is written
    to ``database_specific.source``."""

    dataset_type = DatasetType.OSV
    ecosystem: ClassVar[str | None] = None
    prefix: ClassVar[str]

    def parse(self, members: Sequence[Member]) -> ParseResult:
        """Parse secdb JSON members (``{"packages": [{"pkg": {"name", "secfixes"}}], ...}``)."""
        result = ParseResult()
        records: dict[str, dict[str, Any]] = {}
        needs = "packages" if self.ecosystem else "distroversion and packages"
        for member, doc in json_documents(members, result):
            eco = self._ecosystem_of(doc)
            if eco is None or not isinstance(doc.get("packages"), list):
                result.skip(member.name, f"not a secdb file (needs {needs})")
                continue
            repo = doc.get("reponame")
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

    def _ecosystem_of(self, doc: Any) -> str | None:
        if not isinstance(doc, dict):
            return None
        if self.ecosystem is not None:
            return self.ecosystem
        branch = doc.get("distroversion")
        return f"Alpine:{branch}" if isinstance(branch, str) else None

    def _add(
        self,
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
        first = tokens[0]
        rid = first if first.startswith(self.prefix) else f"{self.prefix}{first}"
        rec = records.get(rid)
        if rec is None:
            rec = records[rid] = {
                "id": rid,
                "modified": UNKNOWN_TIME,
                "aliases": [],
                "affected": [],
                "database_specific": {"source": self.kind.value},
            }
        rec["aliases"] = sorted(set(rec["aliases"]) | set(tokens))
        affected = {
            "package": {"ecosystem": eco, "name": package},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version}]}],
            "database_specific": {"version_scheme": SCHEME, "repository": str(repo)},
        }
        if affected not in rec["affected"]:
            rec["affected"].append(affected)


class AlpineSecdbSource(SecdbSource):
    kind = SourceKind.ALPINE_SECDB
    prefix = "ALPINE-"
