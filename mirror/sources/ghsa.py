"""GitHub Security Advisories as ``github/advisory-database`` publishes them: one OSV JSON file
per advisory under ``advisories/github-reviewed/YYYY/MM/GHSA-…/GHSA-….json`` (and
``github-unreviewed/…``), as a directory, a tar or zip of it, or one JSON record per line.

GHSA records are OSV, so this is the ``osv`` parser with what GitHub adds checked: the id is a
``GHSA-`` id, ``database_specific.severity`` is one of GitHub's four words, each ``severity[]``
entry is a CVSS v3.x or v4.0 vector the ``cvss`` library accepts, and whether GitHub reviewed
the advisory (the folder it was published in, kept as ``database_specific.github_reviewed``
when the record does not say). Every ecosystem GitHub publishes (PyPI, npm, Go, Maven,
RubyGems, NuGet, crates.io, Packagist, Pub, SwiftURL, …) is kept as written. A record with a
bad rating is kept (its ranges still match) and the bad field is named in an unknown; a record
that is not usable OSV is skipped.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Final

from cvss import CVSS3, CVSS4, CVSSError

from mirror.config import SourceKind
from mirror.sources.interface import ParseResult
from mirror.sources.osv import OSVFeed, osv_label, osv_problem

GHSA_ID: Final = re.compile(r"GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}")
#: GitHub's severity words (``database_specific.severity``).
SEVERITY_WORDS: Final = frozenset({"LOW", "MODERATE", "HIGH", "CRITICAL"})
_FOLDERS: Final = {"github-reviewed": True, "github-unreviewed": False}


def vector_problem(item: Any) -> str | None:
    """Why a ``severity[]`` entry is not a usable CVSS v3.x/v4.0 vector, or None."""
    if not isinstance(item, dict):
        return "is not an object"
    kind, vector = item.get("type"), item.get("score")
    if kind not in ("CVSS_V3", "CVSS_V4"):
        return f"type {kind!r} is not CVSS_V3 or CVSS_V4"
    if not isinstance(vector, str):
        return "score is not a vector string"
    try:
        if kind == "CVSS_V4":
            CVSS4(vector)
        else:
            CVSS3(vector)
    except CVSSError as e:
        return f"vector {vector!r} does not parse: {e}"
    return None


def reviewed_folder(name: str) -> bool | None:
    """True for a member under ``github-reviewed/``, False under ``github-unreviewed/``."""
    for part in PurePosixPath(name).parts:
        if part in _FOLDERS:
            return _FOLDERS[part]
    return None


class GHSASource(OSVFeed):
    kind = SourceKind.GHSA

    @staticmethod
    def _add(record: Any, item: str, result: ParseResult) -> None:
        problem = osv_problem(record)
        rid = record.get("id") if isinstance(record, dict) else None
        where = osv_label(record, item)
        if problem is None and not GHSA_ID.fullmatch(str(rid)):
            problem = f"field 'id': {rid!r} is not a GHSA id"
        if problem:
            result.skip(where, problem)
            return
        specific = record.get("database_specific")
        if specific is not None and not isinstance(specific, dict):
            result.skip(where, "field 'database_specific' is not an object")
            return
        word = (specific or {}).get("severity")
        if word is not None and word not in SEVERITY_WORDS:
            result.skip(
                f"{where}:database_specific.severity",
                f"unknown value {word!r} (kept the record; expected one of "
                f"{', '.join(sorted(SEVERITY_WORDS))})",
            )
        severity = record.get("severity", [])
        for i, entry in enumerate(severity if isinstance(severity, list) else [severity]):
            bad = vector_problem(entry)
            if bad:
                result.skip(f"{where}:severity[{i}]", f"{bad} (kept the record)")
        reviewed = reviewed_folder(item)
        if reviewed is not None and "github_reviewed" not in (specific or {}):
            record = {
                **record,
                "database_specific": {**(specific or {}), "github_reviewed": reviewed},
            }
        result.records.append(record)
