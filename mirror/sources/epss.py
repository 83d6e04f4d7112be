"""EPSS scores: the official gzipped daily CSV (``#model_version:…,score_date:…`` comment, then
a ``cve,epss,percentile`` header) and header-less ``CVE;epss;percentile`` files per year.

Scores stay the decimal strings upstream wrote, so no float formatting ever changes a digest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import DatasetType, FeedSource, ParseResult

_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
_DECIMAL = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class EPSSSource(FeedSource):
    kind = SourceKind.EPSS
    dataset_type = DatasetType.EPSS

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for member in members:
            if not member.name.lower().endswith((".csv", ".txt")):
                result.ignored.append(member.name)
                continue
            self._parse_csv(member, result)
        return result

    @staticmethod
    def _parse_csv(member: Member, result: ParseResult) -> None:
        try:
            text = member.data.decode("utf-8")
        except UnicodeDecodeError as e:
            result.skip(member.name, f"not UTF-8 text: {e}")
            return
        records = result.records
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                for part in line[1:].split(","):
                    key, sep, value = part.partition(":")
                    if sep and key.strip() in ("model_version", "score_date"):
                        old = result.meta.get(key.strip())
                        if old is not None and old != value.strip():
                            result.skip(
                                f"{member.name}:{lineno}",
                                f"{key.strip()} {value.strip()!r} differs from {old!r}",
                            )
                        else:
                            result.meta[key.strip()] = value.strip()
                continue
            fields = line.split(";") if ";" in line else line.split(",")
            if fields[0] == "cve":
                continue  # the header of the official file
            if (
                len(fields) != 3
                or not _CVE.fullmatch(fields[0])
                or not _DECIMAL.fullmatch(fields[1])
                or not _DECIMAL.fullmatch(fields[2])
                or not 0.0 <= float(fields[1]) <= 1.0
                or not 0.0 <= float(fields[2]) <= 1.0
            ):
                result.skip(
                    f"{member.name}:{lineno}", f"not a 'CVE,epss,percentile' row: {line[:80]!r}"
                )
                continue
            records.append({"id": fields[0], "epss": fields[1], "percentile": fields[2]})
