"""The Debian security tracker: its JSON export (``/tracker/data/json``: package -> CVE ->
release -> status/fixed_version/urgency) and the DSA/DLA/DTSA list text format.

Both become OSV-shaped records with ecosystems ``Debian:<version>``: advisories from the lists
keep their DSA/DLA id with the CVEs as aliases; the JSON export gives one ``DEBIAN-<CVE>``
record per CVE. Versions are dpkg versions; every affected entry names the scheme in
``database_specific.version_scheme``. A fixed version of ``0`` (the tracker's "never
affected") becomes the empty range ``introduced 0, fixed 0`` as published.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from bundles.releases import DEBIAN_CODENAMES
from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import (
    UNKNOWN_TIME,
    DatasetType,
    FeedSource,
    ParseResult,
    load_json,
)

SCHEME: Final = "dpkg"

_HEADER = re.compile(r"\[([^\]]+)\]\s+((?:DSA|DLA|DTSA)-\d+(?:-\d+)?)\s+(.*)")
_CVES = re.compile(r"\{([^}]*)\}")
_FIX = re.compile(r"\[([a-z]+)(?:-[a-z]+)?\]\s+-\s+(\S+)(?:\s+(.*))?")
_NOTE = re.compile(r"NOTE:\s*(.*)")
_STATUS = re.compile(r"<([a-z-]+)>(?:\s*\((.*)\))?")
_TRAILER = re.compile(r"(\S+)(?:\s+\((.*)\))?")
_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)")


def ecosystem(codename: str) -> str | None:
    version = DEBIAN_CODENAMES.get(codename)
    return f"Debian:{version}" if version else None


def _date(text: str) -> str | None:
    """``29 Mar 2023`` (DSA/DLA) or ``August 26th, 2005`` (DTSA) -> RFC 3339 at midnight UTC."""
    cleaned = _ORDINAL.sub(r"\1", text.strip())
    for fmt in ("%d %b %Y", "%B %d, %Y", "%d %B %Y", "%b %d, %Y"):
        try:
            return datetime.strptime(cleaned, fmt).strftime("%Y-%m-%dT00:00:00Z")
        except ValueError:
            continue
    return None


def _affected(package: str, eco: str, **specific: Any) -> dict[str, Any]:
    return {
        "package": {"ecosystem": eco, "name": package},
        "database_specific": {"version_scheme": SCHEME, **specific},
    }


def _fixed_range(version: str) -> list[dict[str, Any]]:
    return [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version}]}]


class DebianTrackerSource(FeedSource):
    kind = SourceKind.DEBIAN_TRACKER
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for member in members:
            base = member.name.rsplit("/", 1)[-1]
            if base == "list" and member.name.split("/")[-2:-1] in (["DSA"], ["DLA"], ["DTSA"]):
                self._parse_list(member, result)
            elif base.endswith(".json") or base == "json":
                self._parse_json(member, result)
            else:
                result.ignored.append(member.name)
        return result

    # -- DSA/DLA/DTSA text lists ------------------------------------------------------------

    def _parse_list(self, member: Member, result: ParseResult) -> None:
        try:
            text = member.data.decode("utf-8")
        except UnicodeDecodeError:
            text = member.data.decode("latin-1")
        current: dict[str, Any] | None = None
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            item = f"{member.name}:{lineno}"
            if not raw[0].isspace():
                if current is not None:
                    result.records.append(current)
                current = self._header(line, item, result)
                continue
            if current is None:
                continue  # lines of a header already reported as unknown
            self._body(current, line, item, result)
        if current is not None:
            result.records.append(current)

    @staticmethod
    def _header(line: str, item: str, result: ParseResult) -> dict[str, Any] | None:
        m = _HEADER.fullmatch(line)
        if not m:
            result.skip(item, f"unrecognised advisory header {line[:80]!r}")
            return None
        date = _date(m.group(1))
        if date is None:
            result.skip(f"{item} ({m.group(2)})", f"unrecognised date {m.group(1)!r}")
            return None
        # "pkg1 pkg2 - what happened"; announcements ("lenny end-of-life") have no " - "
        packages, sep, _ = m.group(3).partition(" - ")
        return {
            "id": m.group(2),
            "published": date,
            "modified": date,
            "summary": m.group(3).strip(),
            "aliases": [],
            "affected": [],
            "database_specific": {
                "source": "debian-security-tracker",
                "packages": packages.split() if sep else [],
            },
        }

    @staticmethod
    def _body(rec: dict[str, Any], line: str, item: str, result: ParseResult) -> None:
        if m := _CVES.fullmatch(line):
            rec["aliases"] = sorted(set(rec["aliases"]) | set(m.group(1).split()))
            return
        if m := _NOTE.fullmatch(line):
            rec["database_specific"].setdefault("notes", []).append(m.group(1))
            return
        m = _FIX.fullmatch(line)
        if not m:
            result.skip(f"{item} ({rec['id']})", f"unrecognised line {line[:80]!r}")
            return
        codename, package, rest = m.group(1), m.group(2), (m.group(3) or "").strip()
        eco = ecosystem(codename)
        if eco is None:
            result.skip(f"{item} ({rec['id']})", f"unknown Debian release {codename!r}")
            return
        if sm := _STATUS.fullmatch(rest):
            entry = _affected(package, eco, status=sm.group(1))
            if sm.group(2):
                entry["database_specific"]["note"] = sm.group(2)
        elif tm := _TRAILER.fullmatch(rest):
            entry = _affected(package, eco)
            entry["ranges"] = _fixed_range(tm.group(1))
            if tm.group(2):
                entry["database_specific"]["urgency"] = tm.group(2)
        else:
            result.skip(f"{item} ({rec['id']})", f"unrecognised fix line {line[:80]!r}")
            return
        rec["affected"].append(entry)

    # -- JSON export ---------------------------------------------------------------------------

    def _parse_json(self, member: Member, result: ParseResult) -> None:
        doc = load_json(member.data, member.name, result)
        if doc is None:
            return
        if not isinstance(doc, dict):
            result.skip(member.name, "tracker export is not a JSON object (package -> CVE)")
            return
        by_cve: dict[str, dict[str, Any]] = {}
        for package in sorted(doc):
            cves = doc[package]
            if not isinstance(cves, dict):
                result.skip(f"{member.name}:{package}", "package entry is not an object")
                continue
            for cve in sorted(cves):
                info = cves[cve]
                item = f"{member.name}:{package}/{cve}"
                if not isinstance(info, dict) or not isinstance(info.get("releases", {}), dict):
                    result.skip(item, "CVE entry is not an object with 'releases'")
                    continue
                rec = by_cve.get(cve)
                if rec is None:
                    rec = by_cve[cve] = {
                        "id": f"DEBIAN-{cve}",
                        "modified": UNKNOWN_TIME,
                        "aliases": [cve] if cve.startswith("CVE-") else [],
                        "affected": [],
                        "database_specific": {"source": "debian-security-tracker"},
                    }
                    if isinstance(info.get("description"), str):
                        rec["details"] = info["description"]
                extra = {k: v for k, v in info.items() if k not in ("releases", "description")}
                for codename in sorted(info.get("releases", {})):
                    rel = info["releases"][codename]
                    eco = ecosystem(codename)
                    if eco is None or not isinstance(rel, dict):
                        result.skip(f"{item}/{codename}", f"unknown Debian release {codename!r}")
                        continue
                    specific = {k: v for k, v in rel.items() if k != "fixed_version"}
                    entry = _affected(package, eco, **specific, **extra)
                    fixed = rel.get("fixed_version")
                    if isinstance(fixed, str) and fixed:
                        entry["ranges"] = _fixed_range(fixed)
                    elif rel.get("status") == "open":
                        entry["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
                    rec["affected"].append(entry)
        result.records.extend(by_cve.values())
