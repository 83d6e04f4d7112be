"""OSV records of the RHEL rebuilds, as each publishes them: Rocky Linux (``RLSA-…``, ecosystem
``Rocky Linux:9``) and AlmaLinux (``ALSA-…``, ``AlmaLinux:9``).

Records keep their id and content; the normalizer only makes them matchable alike:

- every affected entry of the distribution gets ``database_specific.version_scheme = "rpm"``
  and, when the advisory names one, the vendor's severity word (the summary's prefix,
  ``Important: openssl security update``) as ``database_specific.severity``;
- the ecosystem is reduced to the major release (``Rocky Linux:9.3`` -> ``Rocky Linux:9``), the
  form os-release's ``VERSION_ID`` major gives;
- the CVEs the advisory fixes (published in ``related`` by AlmaLinux, ``upstream`` by Rocky)
  become ``aliases`` so the record is found by CVE.

Entries of another ecosystem are dropped and named in an unknown; a record left with none is
skipped with its reason.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

from mirror.config import SourceKind
from mirror.sources.interface import ParseResult
from mirror.sources.osv import OSVFeed, osv_label, osv_problem

SCHEME: Final = "rpm"
_CVE: Final = re.compile(r"CVE-\d{4}-\d{4,}")
_SEVERITY: Final = re.compile(r"(Critical|Important|Moderate|Low):\s")
_RELEASE: Final = re.compile(r"(\d+)(?:\.\d+)*")


def severity_word(record: dict[str, Any]) -> str | None:
    """The vendor's severity word: ``database_specific.severity`` if given, else the summary's
    ``Important:`` prefix (the RHSA convention the rebuilds keep)."""
    specific = record.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        return str(specific["severity"])
    summary = record.get("summary")
    if isinstance(summary, str) and (m := _SEVERITY.match(summary)):
        return m.group(1)
    return None


class RpmOSVSource(OSVFeed):
    """OSV records of one RPM distribution; subclasses name the kind and ecosystem prefix."""

    distro: ClassVar[str]

    def _add(self, record: Any, item: str, result: ParseResult) -> None:
        problem = osv_problem(record)
        label = osv_label(record, item)
        if problem:
            result.skip(label, problem)
            return
        word = severity_word(record)
        kept = []
        for index, entry in enumerate(record.get("affected", [])):
            package = entry.get("package")
            eco = package.get("ecosystem") if isinstance(package, dict) else None
            normal = self.ecosystem(eco) if isinstance(eco, str) else None
            if normal is None:
                result.skip(
                    f"{label} affected[{index}]",
                    f"ecosystem {eco!r} is not {self.distro}:<release>; entry left out",
                )
                continue
            given = entry.get("database_specific")
            specific = dict(given) if isinstance(given, dict) else {}
            specific["version_scheme"] = SCHEME
            if word is not None:
                specific.setdefault("severity", word)
            kept.append(
                {
                    **entry,
                    "package": {**entry["package"], "ecosystem": normal},
                    "database_specific": specific,
                }
            )
        if not kept:
            result.skip(label, f"no affected entry for {self.distro}")
            return
        aliases = record.get("aliases")
        cves = {a for a in aliases if isinstance(a, str)} if isinstance(aliases, list) else set()
        for field in ("related", "upstream"):
            values = record.get(field) or []
            if isinstance(values, list):
                cves |= {v for v in values if isinstance(v, str) and _CVE.fullmatch(v)}
        out = {**record, "affected": kept, "aliases": sorted(cves)}
        if word is not None:
            given = record.get("database_specific")
            out["database_specific"] = {
                **(given if isinstance(given, dict) else {}),
                "severity": word,
            }
        result.records.append(out)

    def ecosystem(self, upstream: str) -> str | None:
        """``Rocky Linux:9.3`` -> ``Rocky Linux:9``; None for anything not this distribution."""
        prefix, sep, release = upstream.partition(":")
        m = _RELEASE.fullmatch(release)
        if prefix != self.distro or not sep or m is None:
            return None
        return f"{self.distro}:{m.group(1)}"


class RockyOSVSource(RpmOSVSource):
    kind = SourceKind.ROCKY_OSV
    distro = "Rocky Linux"


class AlmaOSVSource(RpmOSVSource):
    kind = SourceKind.ALMA_OSV
    distro = "AlmaLinux"
