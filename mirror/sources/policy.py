"""Rego policy bundles: a directory (or tarball) of ``.rego`` files plus ``data.json``.

Policies travel as files with their digests; the bundle digest recorded in the dataset meta is
the canonical digest of the sorted (path, sha256) list, the identity a verdict will cite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bundles import canonical
from bundles.digest import Digest
from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.interface import DatasetType, FeedSource, ParseResult, load_json

_PACKAGE = re.compile(r"^\s*package\s+[A-Za-z_][\w.]*", re.MULTILINE)


class PolicySource(FeedSource):
    kind = SourceKind.POLICY
    dataset_type = DatasetType.POLICY

    def parse(self, members: Sequence[Member]) -> ParseResult:
        result = ParseResult()
        for member in members:
            base = member.name.rsplit("/", 1)[-1]
            if base.endswith(".rego"):
                try:
                    text = member.data.decode("utf-8")
                except UnicodeDecodeError:
                    result.skip(member.name, "Rego file is not UTF-8")
                    continue
                if not _PACKAGE.search(text):
                    result.skip(member.name, "Rego file has no 'package' declaration")
                    continue
            elif base.endswith(".json"):
                if load_json(member.data, member.name, result) is None:
                    continue
                text = member.data.decode("utf-8")
            else:
                result.ignored.append(member.name)
                continue
            result.records.append(
                {
                    "id": member.name,
                    "sha256": Digest.of_bytes(member.data).hex,
                    "size": len(member.data),
                    "content": text,
                }
            )
        listing = sorted((r["id"], r["sha256"]) for r in result.records)
        result.meta["policy_digest"] = str(
            canonical.digest([{"path": p, "sha256": d} for p, d in listing])
        )
        return result
