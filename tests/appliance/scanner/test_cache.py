"""The layer-result cache: keyed by layer digest and analyzer versions, shared by images."""

from __future__ import annotations

import json
import stat
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind
from appliance.scanner.analyzers.table import DEFAULT, AnalyzerTable
from appliance.scanner.cache import LayerCache, analyzers_key
from appliance.scanner.layers import LayerRecord
from appliance.scanner.model import AnalysisResult, Package, PackageType
from appliance.scanner.service import IMAGE_REGISTRY, scan_image
from bundles.digest import Digest
from tests.appliance.scanner.layouts import OS_RELEASE, STATUS_BASE, F, build_image, dist_info

SITE = "usr/lib/python3/dist-packages"
BASE = [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)]


class CountingAnalyzer(Analyzer):
    """Reports one package per marker file and counts the files it was given."""

    name: ClassVar[str] = "counting"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES
    calls: ClassVar[list[str]] = []

    def required(self, path: str, mode: int) -> bool:
        return path.endswith(".marker")

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        type(self).calls.append(inp.path)
        return AnalysisResult(
            packages=(Package(PackageType.NPM, inp.read().decode(), "1.0", locations=(inp.path,)),)
        )

    def merge(self, partials: Mapping[str, AnalysisResult]) -> AnalysisResult:
        return super().merge(partials)


class CountingV2(CountingAnalyzer):
    version: ClassVar[int] = 2


def test_round_trip_and_miss(tmp_path: Path) -> None:
    digest = Digest.of_bytes(b"layer")
    record = LayerRecord(unknowns=())
    with LayerCache.open(tmp_path / "c.db") as cache:
        assert cache.get(digest, "k") is None
        cache.put(digest, "k", record)
        assert cache.get(digest, "k") == record
        assert cache.get(digest, "other") is None
        assert cache.count() == 1


def test_an_image_result_orjson_refuses_is_read_all_the_same(tmp_path: Path) -> None:
    # a file name that is not UTF-8 is kept as a lone surrogate, which the writer escapes and
    # orjson refuses to read; an integer beyond 64 bits likewise
    record = {"files": ["usr/bin/caf\udce9"], "inode": 2**70, "plain": "x"}
    with LayerCache.open(tmp_path / "c.db") as cache:
        cache.put_image("k", "a", record)
        cache.put_image("plain", "a", {"plain": "x"})
        assert cache.get_image("k") == record
        assert cache.get_image("plain") == {"plain": "x"}


def test_key_changes_with_any_analyzer_version() -> None:
    assert analyzers_key(AnalyzerTable([CountingAnalyzer()])) != analyzers_key(
        AnalyzerTable([CountingV2()])
    )
    assert analyzers_key(DEFAULT) == analyzers_key(AnalyzerTable(list(DEFAULT)))


def test_prune_and_damaged_entries(tmp_path: Path) -> None:
    digest = Digest.of_bytes(b"layer")
    with LayerCache.open(tmp_path / "c.db") as cache:
        cache.put(digest, "old", LayerRecord())
        cache.put(digest, "new", LayerRecord())
        assert cache.prune("new") == 1
        with cache.db.transaction() as conn:
            conn.execute("UPDATE layer_results SET record = x'00'")
        assert cache.get(digest, "new") is None  # unreadable: a miss, never an error


def test_second_image_sharing_the_base_layer_reuses_it(tmp_path: Path) -> None:
    base = [*BASE, F("opt/base.marker", b"from-base")]
    build_image(tmp_path / "a", [base, [F("opt/a.marker", b"only-a")]], tag="a:1")
    build_image(tmp_path / "b", [base, [F("opt/b.marker", b"only-b")]], tag="b:1")
    registry = AnalyzerTable([*IMAGE_REGISTRY, CountingAnalyzer()])
    CountingAnalyzer.calls.clear()
    with LayerCache.open(tmp_path / "cache.db") as cache:
        first = scan_image(None, f"oci:{tmp_path / 'a'}", cache=cache, registry=registry)
        second = scan_image(None, f"oci:{tmp_path / 'b'}", cache=cache, registry=registry)
        again = scan_image(None, f"oci:{tmp_path / 'b'}", cache=cache, registry=registry)
    assert sorted(CountingAnalyzer.calls) == ["opt/a.marker", "opt/b.marker", "opt/base.marker"]
    assert first.cached_layers == ()
    assert second.cached_layers == (first.layers[0].digest,)
    assert again.cached_layers == tuple(layer.digest for layer in second.layers)
    assert {p.package.name for p in second.packages} >= {"from-base", "only-b", "libc6"}
    assert again.sbom_bytes() == second.sbom_bytes()


def test_new_analyzer_version_walks_again(tmp_path: Path) -> None:
    build_image(tmp_path / "a", [[F("x.marker", b"pkg")]], tag="a:1")
    CountingAnalyzer.calls.clear()
    with LayerCache.open(tmp_path / "cache.db") as cache:
        for registry in (AnalyzerTable([CountingAnalyzer()]), AnalyzerTable([CountingV2()])):
            scan_image(None, f"oci:{tmp_path / 'a'}", cache=cache, registry=registry)
    assert CountingAnalyzer.calls == ["x.marker", "x.marker"]


def test_no_cache_without_home(tmp_path: Path) -> None:
    build_image(tmp_path / "a", [dist_info("six", "1.16.0", SITE)], tag="a:1")
    result = scan_image(None, f"oci:{tmp_path / 'a'}")
    assert result.cached_layers == ()
    assert not list(tmp_path.glob("**/scan-cache.db"))


def test_same_image_again_is_one_cached_row(tmp_path: Path) -> None:
    build_image(tmp_path / "a", [BASE, [F("opt/a.marker", b"only-a")]], tag="a:1")
    registry = AnalyzerTable([*IMAGE_REGISTRY, CountingAnalyzer()])
    with LayerCache.open(tmp_path / "cache.db") as cache:
        first = scan_image(None, f"oci:{tmp_path / 'a'}", cache=cache, registry=registry)
        with cache.db.transaction() as conn:
            conn.execute("DELETE FROM layer_results")  # only the image row is left
        again = scan_image(None, f"oci:{tmp_path / 'a'}", cache=cache, registry=registry)
        assert again.packages == first.packages
        assert again.entry_trace == first.entry_trace
        assert again.sbom_bytes() == first.sbom_bytes()
        with cache.db.transaction() as conn:
            conn.execute("UPDATE image_results SET record = x'00'")
        CountingAnalyzer.calls.clear()
        damaged = scan_image(None, f"oci:{tmp_path / 'a'}", cache=cache, registry=registry)
    assert damaged.sbom_bytes() == first.sbom_bytes()
    assert CountingAnalyzer.calls == ["opt/a.marker"]  # walked again: both rows were gone


def _scan_cli(home: Path, image: str) -> dict[str, Any]:
    done = CliRunner().invoke(cli, ["--home", str(home), "--json", "scan", image])
    assert done.exit_code == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_scan_before_init_keeps_a_cache_in_the_home(tmp_path: Path) -> None:
    """As trivy keeps its cache: the second scan of a newcomer's image is warm, and the cache
    survives ``stella init``."""
    build_image(tmp_path / "a", [BASE, [F("opt/a.marker", b"a")]], tag="a:1")
    home = tmp_path / "fresh" / "home"
    cold = _scan_cli(home, f"oci:{tmp_path / 'a'}:a:1")
    assert cold["cachedLayers"] == 0
    assert (home / "scan-cache.db").is_file()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert not Home(home).initialized  # only the cache: no keys, no state
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith("scan-cache.db")) == []
    warm = _scan_cli(home, f"oci:{tmp_path / 'a'}:a:1")
    assert warm["cachedLayers"] == 2
    assert warm["sbomDigest"] == cold["sbomDigest"]
    assert CliRunner().invoke(cli, ["--home", str(home), "init"]).exit_code == 0
    assert _scan_cli(home, f"oci:{tmp_path / 'a'}:a:1")["cachedLayers"] == 2


def test_a_home_that_cannot_be_made_scans_without_cache(tmp_path: Path) -> None:
    build_image(tmp_path / "a", [BASE], tag="a:1")
    (tmp_path / "file").write_bytes(b"not a directory")
    summary = _scan_cli(tmp_path / "file" / "home", f"oci:{tmp_path / 'a'}")
    assert summary["cachedLayers"] == 0


def test_entries_deflated_by_plain_zlib_are_read(tmp_path: Path) -> None:
    """Rows are zlib streams whichever library wrote them (ISA-L when installed)."""
    digest = Digest.of_bytes(b"layer")
    record = LayerRecord(scripts={"usr/bin/run": "#!/bin/sh\n"}, size=7)
    blob = zlib.compress(json.dumps(record.to_dict()).encode(), 6)
    with LayerCache.open(tmp_path / "c.db") as cache:
        with cache.db.transaction() as conn:
            conn.execute("INSERT INTO layer_results VALUES (?, 'k', ?)", (str(digest), blob))
        assert cache.get(digest, "k") == record
        cache.put(digest, "k", record)
        stored = cache.db.query("SELECT record FROM layer_results")[0][0]
    assert json.loads(zlib.decompress(stored)) == record.to_dict()
