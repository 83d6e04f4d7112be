"""Advisory records for the matching tests, normalized by the mirror's own feed parsers
from the real (sample) feed files and the Debian 12 cases under tests/data/match."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

from mirror.inputs import Member
from mirror.sources.alpine import AlpineSecdbSource
from mirror.sources.debian import DebianTrackerSource
from mirror.sources.npm_legacy import NpmLegacySource

DATA = Path(__file__).resolve().parents[2] / "data"
FEEDS = DATA / "feeds"
MATCH = DATA / "match"
SNAPSHOT = "sha256:" + "ab" * 32


@cache
def pypi() -> tuple[dict[str, Any], ...]:
    with gzip.open(FEEDS / "pypi-osv.jsonl.gz") as f:
        return tuple(json.loads(line) for line in f)


@cache
def npm() -> tuple[dict[str, Any], ...]:
    """The 100-advisory sample plus every lodash advisory of the full set."""
    members = [
        Member(
            "sample.jsonl",
            gzip.decompress((FEEDS / "npm-nodejs-security-wg.jsonl.gz").read_bytes()),
        ),
        Member("lodash.jsonl", (MATCH / "npm-legacy-lodash.jsonl").read_bytes()),
    ]
    result = NpmLegacySource().parse(members)
    assert not result.unknowns, result.unknowns
    return tuple(result.records)


@cache
def debian12() -> tuple[dict[str, Any], ...]:
    members = [
        Member("json", (MATCH / "debian12/tracker.json").read_bytes()),
        Member("DSA/list", (MATCH / "debian12/DSA/list").read_bytes()),
    ]
    result = DebianTrackerSource().parse(members)
    assert not result.unknowns, result.unknowns
    return tuple(json.loads(json.dumps(r)) for r in result.records)


@cache
def alpine320() -> tuple[dict[str, Any], ...]:
    path = FEEDS / "alpine-secdb/v3.20/main.json"
    result = AlpineSecdbSource().parse([Member("v3.20/main.json", path.read_bytes())])
    return tuple(result.records)


def _parsed(source: Any, root: Path) -> tuple[dict[str, Any], ...]:
    from mirror.inputs import Upstream

    members = Upstream(root, root.name).members(limit=1 << 26)
    result = source.parse(members)
    assert not result.unknowns, result.unknowns
    return tuple(result.records)


@cache
def ghsa() -> tuple[dict[str, Any], ...]:
    """The GitHub advisories of tests/data/feeds/ghsa, through the ``ghsa`` parser."""
    from mirror.sources.ghsa import GHSASource

    return _parsed(GHSASource(), FEEDS / "ghsa")


@cache
def cve() -> tuple[dict[str, Any], ...]:
    """The CVE rating records of tests/data/feeds/cve (NVD API 2.0 and CVE JSON 5), through
    the ``cve`` parser."""
    from mirror.sources.cve import CVESource

    return _parsed(CVESource(), FEEDS / "cve")
