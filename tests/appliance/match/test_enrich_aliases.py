"""Alias merging, severity (CVSS v3.1/v4, database words, precedence), KEV and EPSS."""

from __future__ import annotations

from collections.abc import Sequence
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from appliance.match import Inventory, MemoryAdvisories, Severity, SeveritySource, aliases, match
from appliance.match.aliases import merge
from appliance.match.enrich import assess, database_severity, score_vector
from appliance.scanner.model import Package, PackageType

ENTRIES = [
    ("GO-2024-1", "GHSA-x"),
    ("GHSA-x", "CVE-2024-9"),
    ("DSA-1", "CVE-2024-9", "CVE-2024-10"),
    ("NPM-7",),
]


def test_merge_is_transitive_and_multi_cve_advisories_fan_out() -> None:
    groups = {g.id: g for g in merge(ENTRIES)}
    assert set(groups) == {"CVE-2024-9", "CVE-2024-10", "NPM-7"}
    assert groups["CVE-2024-9"].aliases == ("GHSA-x", "DSA-1", "GO-2024-1")
    assert groups["CVE-2024-9"].members == (0, 1, 2)
    assert groups["CVE-2024-10"].aliases == ("DSA-1",)
    assert groups["CVE-2024-10"].members == (2,)


@given(st.permutations(range(len(ENTRIES))))
def test_merge_does_not_depend_on_input_order(order: list[int]) -> None:
    def canon(
        entries: list[tuple[str, ...]],
    ) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...]]]:
        return sorted(
            (g.id, g.aliases, tuple(sorted(entries[i] for i in g.members))) for g in merge(entries)
        )

    assert canon([ENTRIES[i] for i in order]) == canon(ENTRIES)


_POOL = ["CVE-2024-1", "CVE-2024-10", "CVE-2023-5", "GHSA-a", "GHSA-b", "GO-2024-1", "PYSEC-9"]


@given(
    st.lists(
        st.lists(st.sampled_from(_POOL), min_size=1, max_size=3, unique=True),
        min_size=1,
        max_size=5,
    )
)
def test_merge_shortcut_for_entries_apart_equals_the_union_find(entries: list[list[str]]) -> None:
    with patch.object(aliases, "_apart", return_value=False):
        full = aliases.merge(entries)
    assert aliases.merge(entries) == full
    if aliases._apart(entries):  # each entry is a vulnerability of its own
        assert sorted(g.members for g in full) == [(i,) for i in range(len(entries))]


def test_ids_order_like_the_rank() -> None:
    ids = ["PYSEC-2024-10", "CVE-2024-10000", "GHSA-b", "CVE-2024-9999", "GHSA-a", "GO-2024-9"]
    assert aliases._ordered(ids) == sorted(ids, key=aliases._rank)
    assert aliases._ordered(ids)[0] == min(ids, key=aliases._rank) == "CVE-2024-9999"


def test_cvss_scores_from_the_library() -> None:
    v31 = score_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "R-1")
    assert v31 is not None
    assert (v31.version, v31.base_score, v31.severity) == (
        "3.1",
        9.8,
        Severity.CRITICAL,
    )
    v4 = score_vector("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "R-1")
    assert v4 is not None
    assert (v4.version, v4.base_score, v4.severity) == (
        "4.0",
        9.3,
        Severity.CRITICAL,
    )
    assert score_vector("CVSS:3.1/AV:X", "R-1") is None
    assert score_vector("AV:N/AC:L/Au:N/C:P/I:P/A:P", "R-1") is None  # CVSS v2: not used


def _rec(rid: str, vectors: Sequence[str] = (), word: str | None = None) -> dict[str, object]:
    rec: dict[str, object] = {
        "id": rid,
        "severity": [
            {"type": "CVSS_V4" if v.startswith("CVSS:4") else "CVSS_V3", "score": v}
            for v in vectors
        ],
    }
    if word is not None:
        rec["database_specific"] = {"severity": word}
    return rec


def test_severity_precedence_and_source() -> None:
    low4 = "CVSS:4.0/AV:L/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"
    high3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    low4_score = score_vector(low4, "A")
    assert low4_score is not None
    # the matched record's own vectors: v4.0 before v3.x, whatever the scores
    a = assess([(_rec("PYSEC-1", [high3, low4], "HIGH"), [])])
    assert (a.severity, a.source) == (low4_score.severity, SeveritySource.CVSS_V4)
    assert assess([(_rec("PYSEC-1", [high3]), [])]).source is SeveritySource.CVSS_V3
    words = assess([(_rec("PYSEC-1", word="LOW"), []), (_rec("PYSEC-2", word="HIGH"), [])])
    assert (words.severity, words.source) == (Severity.HIGH, SeveritySource.DATABASE)
    none = assess([])
    assert (none.severity, none.source) == (Severity.UNKNOWN, SeveritySource.NONE)
    assert database_severity({"id": "G", "database_specific": {"severity": "MODERATE"}}) == (
        Severity.MEDIUM,
        "G severity MODERATE",
    )


def test_kev_and_epss_enrich_by_every_cve() -> None:
    rec = {
        "id": "PYSEC-1",
        "aliases": ["CVE-2021-44228"],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "x"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }
    kev = [
        {
            "id": "CVE-2021-44228",
            "cveID": "CVE-2021-44228",
            "dateAdded": "2021-12-10",
            "dueDate": "2021-12-24",
            "knownRansomwareCampaignUse": "Known",
        }
    ]
    epss = [{"id": "CVE-2021-44228", "epss": "0.94358", "percentile": "0.99957"}]
    r = match(
        Inventory.of([Package(PackageType.PYPI, "x", "1.0")]),
        MemoryAdvisories([rec], kev=kev, epss=epss),
    )
    (f,) = r.findings
    assert f.kev is not None
    assert f.kev.date_added == "2021-12-10"
    assert f.epss is not None
    assert (f.epss.score, f.epss.percentile) == ("0.94358", "0.99957")
    assert (f.severity, f.severity_source) == (Severity.CRITICAL, SeveritySource.CVSS_V3)
    assert f.cvss[0].base_score == 10.0
