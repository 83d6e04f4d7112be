"""The matcher's own helpers: finding summaries, and batch questions to sources that can
answer them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.match import Advisory, Inventory, MemoryAdvisories, match
from appliance.match.matcher import _SUMMARY_LIMIT, _summary
from appliance.match.source import Prefetching
from appliance.scanner.model import Package, PackageType


def _plain(text: str) -> str:
    """The summary rule, stated directly: whitespace collapsed, cut at the limit."""
    line = " ".join(text.split())
    return line if len(line) <= _SUMMARY_LIMIT else line[: _SUMMARY_LIMIT - 1] + "…"


words = st.text(alphabet="ab é\u3000\t\n", min_size=0, max_size=40)


@settings(max_examples=400)
@given(st.lists(words, max_size=120), st.sampled_from([" ", "\n\n", "\t ", ""]))
def test_long_details_summarize_as_the_plain_rule(parts: list[str], sep: str) -> None:
    text = sep.join(parts)
    assert _summary({"details": text}) == _plain(text)


def test_summary_edges() -> None:
    limit = _SUMMARY_LIMIT
    cases = [
        "x" * (4 * limit + 5),  # one long word: no whole word in the prefix
        "y " * (2 * limit + 1),
        " " * (4 * limit) + "z",
        ("w" * 199 + " ") * 5,
        "a" * (limit - 1) + " " + "b" * (4 * limit),
        "a" * limit + " " + "b" * (4 * limit),
        "a" * (limit + 1) + " " + "b" * (4 * limit),
    ]
    for text in cases:
        assert _summary({"details": text}) == _plain(text)
    assert _summary({"summary": "Short  one", "details": "x " * 900}) == "Short one"
    assert _summary({"details": 7}) == ""


RECORDS = [
    {
        "id": "PYSEC-1",
        "aliases": ["CVE-2020-1"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }
]


class Batched:
    """A source that answers in batches and records what it is asked."""

    def __init__(self) -> None:
        self.inner = MemoryAdvisories(
            RECORDS, epss=[{"id": "CVE-2020-1", "epss": "0.5", "percentile": "0.9"}]
        )
        self.asked: list[tuple[str, Any]] = []

    @property
    def snapshot(self) -> str | None:
        return None

    def prefetch(self, packages: Iterable[tuple[str, str]]) -> None:
        self.asked.append(("packages", sorted(packages)))

    def prefetch_cves(self, cves: Iterable[str]) -> None:
        self.asked.append(("cves", sorted(cves)))

    def advisories(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        self.asked.append(("advisories", (ecosystem, name)))
        return self.inner.advisories(ecosystem, name)

    def kev(self, cve: str) -> Mapping[str, Any] | None:
        return self.inner.kev(cve)

    def epss(self, cve: str) -> Mapping[str, Any] | None:
        return self.inner.epss(cve)

    def ecosystems(self) -> frozenset[str] | None:
        return self.inner.ecosystems()


def test_a_batching_source_is_told_everything_before_it_is_asked() -> None:
    source = Batched()
    assert isinstance(source, Prefetching)
    assert not isinstance(MemoryAdvisories([]), Prefetching)
    packages = [
        Package(PackageType.PYPI, "demo", "1.0"),
        Package(PackageType.PYPI, "other", "1.0"),
        Package(PackageType.RPM, "no-distro-data", "1.0"),  # an unknown: never asked
    ]
    report = match(Inventory.of(packages, None), source)
    assert [f.id for f in report.findings] == ["CVE-2020-1"]
    assert report.findings[0].epss is not None
    assert source.asked == [
        ("packages", [("PyPI", "demo"), ("PyPI", "other")]),
        ("advisories", ("PyPI", "demo")),
        ("advisories", ("PyPI", "other")),
        ("cves", ["CVE-2020-1"]),
    ]
    plain = match(Inventory.of(packages, None), source.inner)
    assert plain.to_dict() == report.to_dict()
