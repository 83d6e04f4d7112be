"""Incremental re-gate: the knowledge delta between two snapshots, the component index of
gated images, and ``stella rescan`` gating only the images a change can affect (``--all``
gates every one). The property test checks, over random small deltas, that every image whose
match a full rescan would change is in the incremental set."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.cli import cli
from appliance.home import Home
from appliance.match.matcher import match
from appliance.match.model import Inventory
from appliance.match.service import match_inventory
from appliance.match.source import MemoryAdvisories
from appliance.rescan import Context, _must_gate, context, dependencies, touched
from appliance.scanner.model import Package, PackageType
from appliance.store import open_knowledge, open_state
from appliance.store.audit import AuditLog
from appliance.store.components import ComponentIndex, IndexedImage
from appliance.store.db import SqliteDatabase
from appliance.store.delta import snapshot_delta
from appliance.store.knowledge import KnowledgeStore, install_snapshot
from appliance.store.verdicts import VerdictRow
from bundles.digest import Digest
from bundles.snapshot import DatasetType, build_dataset
from tests.appliance.homes import CVE, KEV, SITE, install_knowledge
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.rva.factories import AT, t
from tests.appliance.scanner.layouts import build_image, dist_info


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    build_image(h.oci, [dist_info("idna", "3.4", SITE)], tag="web:2")
    return h


def stella_json(home: Home, *args: str) -> tuple[int, dict[str, Any]]:
    result: Result = CliRunner().invoke(cli, ["--home", str(home.root), "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def stella_text(home: Home, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home.root), *args])


def outcomes(out: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {i["image"]: (i["outcome"], i.get("verdict")) for i in out["images"]}


def test_only_images_a_delta_touches_are_gated_again(home: Home) -> None:
    install_knowledge(home, osv=(OSV,), sequence=1, bundle=Digest.of_bytes(b"1"))
    code, first = stella_json(home, "rescan", "--at", "2026-11-23T06:00:00Z")
    assert code == 0
    assert first["mode"] == "incremental"
    assert outcomes(first) == {"app:1": ("gated", "PASS"), "web:2": ("gated", "PASS")}
    assert {i["reason"] for i in first["images"]} == {"never gated"}
    with open_state(home) as db:
        index = ComponentIndex(db)
        indexed = index.images()
        app = next(i["digest"] for i in first["images"] if i["image"] == "app:1")
        assert ("PyPI", "requests") in index.keys_of(app)
        assert CVE in index.cves_of(app)
    assert len(indexed) == 2

    # nothing changed: both verdicts stand, and the record says why
    code, same = stella_json(home, "rescan", "--at", "2026-11-23T07:00:00Z")
    assert code == 0
    assert outcomes(same) == {"app:1": ("skipped", "PASS"), "web:2": ("skipped", "PASS")}
    assert (same["gated"], same["skipped"], same["changed"]) == (0, 2, 0)
    assert "unchanged since its last gate" in same["images"][0]["reason"]

    # a KEV entry for the CVE app:1 is affected by: app:1 only, and its verdict changes
    new = install_knowledge(home, osv=(OSV,), kev=(KEV,), sequence=2, bundle=Digest.of_bytes(b"2"))
    code, after = stella_json(home, "rescan", "--at", "2026-11-23T08:00:00Z")
    assert code == 0
    assert outcomes(after) == {"app:1": ("gated", "FAIL"), "web:2": ("skipped", "PASS")}
    assert (after["gated"], after["skipped"], after["changed"]) == (1, 1, 1)
    regated = next(i for i in after["images"] if i["image"] == "app:1")
    assert (regated["previous"], regated["changed"]) == ("PASS", True)
    assert CVE in regated["reason"]
    skipped = next(i for i in after["images"] if i["image"] == "web:2")
    assert "touches none of its packages or CVEs" in skipped["reason"]
    with open_state(home) as db:
        record = AuditLog(db).records()[-1]
    assert record.action == "rescan"
    assert record.inputs["snapshot"] == str(new)
    assert record.inputs["policy"] == after["policy"]
    kept = next(i for i in record.result["images"] if i["image"] == "web:2")
    assert kept["outcome"] == "skipped"
    assert kept["lastVerdict"]["snapshot"] == str(first["snapshot"])
    assert kept["lastVerdict"]["policy"] == after["policy"]
    assert (record.result["gated"], record.result["skipped"]) == (1, 1)

    # the default policy never reads EPSS, the clock or the snapshot's identity: a change of
    # scores alone re-gates nothing
    shared = context(home)
    assert (shared.reads_epss, shared.reads_time, shared.reads_snapshot) == (False, False, False)
    epss = build_dataset("epss", DatasetType.EPSS, [{"id": CVE, "epss": "0.9", "percentile": "1"}])
    store = open_knowledge(home)
    try:
        parts = [build_dataset("osv-pypi", DatasetType.OSV, [OSV])]
        parts += [build_dataset("kev", DatasetType.KEV, [KEV]), epss]
        install_snapshot(store, parts, sequence=3, channel="stable", created="2026-11-22T00:00:00Z")
    finally:
        store.close()
    code, scores = stella_json(home, "rescan", "--at", "2026-11-23T08:30:00Z")
    assert (code, scores["gated"], scores["skipped"]) == (0, 0, 2)

    text = stella_text(home, "rescan", "--all", "--at", "2026-11-23T09:00:00Z")
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[-1] == "full: 2 re-gated, 0 skipped, 0 changed verdict"


def test_the_text_report_names_kept_verdicts_and_changes(home: Home) -> None:
    install_knowledge(home, osv=(OSV,), sequence=1, bundle=Digest.of_bytes(b"1"))
    assert stella_text(home, "rescan", "--at", "2026-11-23T06:00:00Z").exit_code == 0
    install_knowledge(home, osv=(OSV,), kev=(KEV,), sequence=2, bundle=Digest.of_bytes(b"2"))
    result = stella_text(home, "rescan", "--at", "2026-11-23T08:00:00Z")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL                  app:1  sha256:")
    assert lines[0].endswith("(was PASS)")
    assert lines[1].startswith("kept PASS             web:2: snapshot ")
    assert lines[-1] == "incremental: 1 re-gated, 1 skipped, 1 changed verdict"


def test_an_exception_regates_when_added_and_when_it_expires(home: Home) -> None:
    install_knowledge(home, osv=(OSV,), kev=(KEV,), sequence=1, bundle=Digest.of_bytes(b"1"))
    code, first = stella_json(home, "rescan", "--at", "2026-11-23T06:00:00Z")
    assert outcomes(first)["app:1"] == ("gated", "FAIL")
    waiver = stella_text(
        home,
        *("vex", "add", CVE, "--image", "app:1", "--status", "not_affected"),
        *("--justification", "vulnerable_code_not_present"),
        *("--expires", "2026-11-25T00:00:00Z", "--at", "2026-11-23T06:30:00Z"),
    )
    assert waiver.exit_code == 0, waiver.output
    code, waived = stella_json(home, "rescan", "--at", "2026-11-23T07:00:00Z")
    assert outcomes(waived)["app:1"] == ("gated", "PASS_WITH_EXCEPTIONS")
    assert {i["reason"] for i in waived["images"]} == {"the stored VEX statements changed"}
    code, quiet = stella_json(home, "rescan", "--at", "2026-11-24T07:00:00Z")
    assert (quiet["gated"], quiet["skipped"]) == (0, 2)
    code, expired = stella_json(home, "rescan", "--at", "2026-11-26T07:00:00Z")
    assert code == 0
    assert outcomes(expired)["app:1"] == ("gated", "FAIL")
    assert expired["changed"] == 1
    reason = next(i["reason"] for i in expired["images"] if i["image"] == "app:1")
    assert reason.startswith("exception ")
    assert "expires at 2026-11-25T00:00:00Z" in reason


def _row(**changes: Any) -> VerdictRow:
    base: dict[str, Any] = {
        "subject": "sha256:" + "a" * 64,
        "name": "app:1",
        "verdict": "PASS",
        "evaluation_time": "2026-11-20T00:00:00Z",
        "policy": "sha256:" + "b" * 64,
        "snapshot": "sha256:" + "c" * 64,
        "predicate": "p",
        "bundle": "b",
        "referrer": "r",
        "reason_codes": (),
        "audit_seq": 1,
    }
    return VerdictRow(**(base | changes))


def test_policy_vex_and_exception_windows_force_a_gate() -> None:
    row = _row()
    entry = IndexedImage(row.subject, row.snapshot, "vex-1", "2026-11-20T00:00:00Z")
    expiry = AT - timedelta(days=1)
    ctx = Context(Digest.parse(str(row.snapshot)), row.policy, "vex-1", ())
    assert _must_gate(row, entry, ctx, AT) is None
    assert _must_gate(None, entry, ctx, AT) == "never gated"
    assert _must_gate(row, None, ctx, AT) == "not in the component index"
    stale = IndexedImage(row.subject, "sha256:" + "d" * 64, "vex-1", "x")
    assert "older than its latest verdict" in str(_must_gate(row, stale, ctx, AT))
    other = Context(ctx.snapshot, "sha256:" + "e" * 64, "vex-1", ())
    assert str(_must_gate(row, entry, other, AT)).startswith("policy changed")
    assert _must_gate(row, entry, Context(ctx.snapshot, row.policy, "vex-2", ()), AT) == (
        "the stored VEX statements changed"
    )
    expiring = Context(ctx.snapshot, row.policy, "vex-1", ((expiry, "exception k expires"),))
    assert str(_must_gate(row, entry, expiring, AT)).startswith("exception k expires at ")
    clock = Context(ctx.snapshot, row.policy, "vex-1", (), reads_time=True)
    assert _must_gate(row, entry, clock, AT) == "the policy reads the evaluation time"
    assert _must_gate(row, entry, clock, t(row.evaluation_time)) is None
    pinned = Context(Digest.of_bytes(b"new"), row.policy, "vex-1", (), reads_snapshot=True)
    assert "the policy reads the snapshot's identity" in str(_must_gate(row, entry, pinned, AT))
    # an expiry before the last gate was already seen by that gate
    seen = Context(ctx.snapshot, row.policy, "vex-1", ((AT - timedelta(days=3650), "old"),))
    assert _must_gate(row, entry, seen, AT) is None


def test_a_snapshot_growing_older_than_the_policy_allows_forces_a_gate() -> None:
    row = _row(evaluation_time="2026-11-20T00:00:00Z")
    entry = IndexedImage(row.subject, row.snapshot, "v", "x")
    snap = Digest.parse(str(row.snapshot))
    created = {str(snap): "2026-11-01T00:00:00Z"}
    ctx = Context(snap, row.policy, "v", (), created=created, age_limit=30)
    assert _must_gate(row, entry, ctx, t("2026-11-30T00:00:00Z")) is None  # 19 -> 29 days
    assert _must_gate(row, entry, ctx, t("2026-12-03T00:00:00Z")) == (
        "the snapshot's age crosses the policy's limit of 30 days"
    )
    # a policy without that limit: any change of the age in days may matter
    other = Context(snap, row.policy, "v", (), created=created, age_limit=None)
    assert _must_gate(row, entry, other, t("2026-11-20T12:00:00Z")) is None
    assert "age changed (19 -> 20 days)" in str(
        _must_gate(row, entry, other, t("2026-11-21T00:00:00Z"))
    )


# ----------------------------------------------------------------- the delta


def _install(store: KnowledgeStore, sequence: int, world: Mapping[str, Any]) -> Digest:
    parts = [build_dataset("osv-pypi", DatasetType.OSV, world["osv"])]
    if world["kev"]:
        parts.append(build_dataset("kev", DatasetType.KEV, world["kev"]))
    if world["epss"]:
        parts.append(build_dataset("epss", DatasetType.EPSS, world["epss"]))
    return install_snapshot(
        store,
        parts,
        sequence=sequence,
        channel="stable",
        created=f"2026-11-{10 + sequence}T00:00:00Z",
        bundle=Digest.of_bytes(b"%d" % sequence),
    )


def test_delta_of_unchanged_and_changed_datasets(tmp_path: Path) -> None:
    store = KnowledgeStore.open(tmp_path / "knowledge.db")
    try:
        other = {**OSV, "id": "PYSEC-2026-1", "aliases": ["CVE-2026-1"]}
        other["affected"] = [
            {**OSV["affected"][0], "package": {"ecosystem": "PyPI", "name": "Idna"}}
        ]
        epss = [{"id": CVE, "epss": "0.1", "percentile": "0.5"}]
        one = _install(store, 1, {"osv": [OSV, other], "kev": [], "epss": epss})
        changed = {**other, "modified": "2026-02-01T00:00:00Z"}
        epss2 = [{"id": CVE, "epss": "0.9", "percentile": "0.99"}]
        two = _install(store, 2, {"osv": [OSV, changed], "kev": [KEV], "epss": epss2})
        assert snapshot_delta(store, one, one).packages == frozenset()
        delta = snapshot_delta(store, one, two)
        assert delta.everything is None
        assert delta.packages == {("PyPI", "idna")}  # normalized, the unchanged OSV not read
        assert delta.cves == {CVE, "CVE-2026-1"}  # KEV added, OSV record changed
        assert delta.epss == frozenset()  # CVE's EPSS changed too, but it is in cves
        three = _install(store, 3, {"osv": [OSV, changed], "kev": [KEV], "epss": epss})
        scores = snapshot_delta(store, two, three)
        assert (scores.cves, scores.epss) == (frozenset(), frozenset({CVE}))
        assert delta.datasets == ("epss", "kev", "osv-pypi")
        assert delta.records == 3
        # the changed OSV record, with its body on each side, for the version check
        ((change,),) = (delta.changes,)
        assert (change.id, change.before, change.after) == ("PYSEC-2026-1", (other,), (changed,))
        assert change.keys == {("PyPI", "idna")}
        assert delta.ambiguous == frozenset()
        gone = snapshot_delta(store, Digest.of_bytes(b"pruned"), two)
        assert "no longer in the knowledge store" in str(gone.everything)
    finally:
        store.close()


def test_an_id_with_two_bodies_in_a_snapshot_is_ambiguous(tmp_path: Path) -> None:
    """Two OSV datasets holding one id with different bodies: for a package looked up under
    two names the matcher reads one body of an id, so a change to either selects by key."""
    store = KnowledgeStore.open(tmp_path / "knowledge.db")
    try:
        moved = {**OSV, "modified": "2026-03-01T00:00:00Z"}
        parts = [build_dataset("osv-pypi", DatasetType.OSV, [OSV])]
        one = install_snapshot(
            store, parts, sequence=1, channel="stable", created="2026-11-11T00:00:00Z",
            bundle=Digest.of_bytes(b"1"),
        )  # fmt: skip
        parts = [
            build_dataset("osv-pypi", DatasetType.OSV, [OSV]),
            build_dataset("osv-pypi-2", DatasetType.OSV, [moved]),
        ]
        two = install_snapshot(
            store, parts, sequence=2, channel="stable", created="2026-11-12T00:00:00Z",
            bundle=Digest.of_bytes(b"2"),
        )  # fmt: skip
        delta = snapshot_delta(store, one, two)
        assert delta.everything is None
        assert delta.ambiguous == {OSV["id"]}
        # an image at a version neither body concerns is still selected, by key
        db = SqliteDatabase.open(tmp_path / "state.db")
        try:
            index = ComponentIndex(db)
            for subject, version in (("affected", "2.19.0"), ("beyond", "99.0")):
                inventory = Inventory.of([Package(PackageType.PYPI, "requests", version)])
                keys, cves, probes = dependencies(store, one, inventory)
                assert {p[2] for p in probes} == {version}
                index.put(
                    subject, snapshot=str(one), vex="v", indexed="t",
                    keys=keys, cves=cves, probes=probes,
                )  # fmt: skip
            hit = touched(index, delta, delta.cves, index.images())
            assert set(hit) == {"affected", "beyond"}
            assert "several bodies" in hit["beyond"]
            plain = replace(delta, ambiguous=frozenset())
            assert set(touched(index, plain, (), index.images())) == {"affected"}
        finally:
            db.close()
    finally:
        store.close()


# ----------------------------------------------------------------- the property

NAMES = ("alpha", "beta", "gamma", "delta-pkg")
CVES = tuple(f"CVE-2026-{n:04d}" for n in range(1, 6))


def _record(
    n: int, name: str, cve: str, fixed: str, rated: bool, introduced: str = "0"
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"PYSEC-2026-{n:04d}",
        "aliases": [cve],
        "modified": "2026-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": introduced}, {"fixed": fixed}],
                    }
                ],
            }
        ],
    }
    if rated:
        doc["severity"] = [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
        ]
    return doc


# ranges that take in some of the held versions (1.0, 3.0) and not others: [0, 2.0) holds
# 1.0, [2.5, 4.0) holds 3.0, [0, 0.5) and [2.5, 2.9) neither, [0, 4.0) both
records = st.tuples(
    st.sampled_from(NAMES),
    st.sampled_from(CVES),
    st.sampled_from(("2.0", "0.5", "4.0", "2.9")),
    st.booleans(),
    st.sampled_from(("0", "2.5")),
)
worlds = st.fixed_dictionaries(
    {
        "osv": st.dictionaries(st.integers(1, 8), records, min_size=1, max_size=6),
        "kev": st.sets(st.sampled_from(CVES), max_size=3),
        "epss": st.dictionaries(st.sampled_from(CVES), st.sampled_from(("0.1", "0.7")), max_size=3),
    }
)
VERSIONS = ("1.0", "3.0")
images = st.lists(
    st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VERSIONS), min_size=1),
    min_size=1,
    max_size=6,
)


def _materialize(world: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "osv": [_record(n, *world["osv"][n]) for n in sorted(world["osv"])],
        "kev": [{"id": c, "cveID": c, "dateAdded": "2026-01-02"} for c in sorted(world["kev"])],
        "epss": [
            {"id": c, "epss": s, "percentile": "0.5"} for c, s in sorted(world["epss"].items())
        ],
    }


def _seen(store: KnowledgeStore, snapshot: Digest, held: Mapping[str, str]) -> str:
    """The match report, without the snapshot digest it names in several places."""
    report = match_inventory(store, _inventory(held), snapshot)
    return json.dumps(report.to_dict(), sort_keys=True).replace(str(snapshot), "SNAPSHOT")


def _inventory(held: Mapping[str, str]) -> Inventory:
    return Inventory.of([Package(PackageType.PYPI, n, v) for n, v in sorted(held.items())])


def _concerns(doc: Mapping[str, Any], name: str, version: str) -> bool:
    """Whether the record alone, matched as the matcher matches, gives package ``name`` at
    ``version`` a finding or an unknown (independent of the component index)."""
    report = match(_inventory({name: version}), MemoryAdvisories([doc]))
    return bool(report.findings or report.unknowns)


@given(old=worlds, new=worlds, held=images)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_incremental_set_holds_every_image_a_full_rescan_changes(
    old: dict[str, Any], new: dict[str, Any], held: list[dict[str, str]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = KnowledgeStore.open(Path(tmp) / "knowledge.db")
        db = SqliteDatabase.open(Path(tmp) / "state.db")
        try:
            before = _install(store, 1, _materialize(old))
            after = _install(store, 2, _materialize(new))
            index = ComponentIndex(db)
            for n, packages in enumerate(held):
                keys, cves, probes = dependencies(store, before, _inventory(packages))
                index.put(
                    str(n),
                    snapshot=str(before),
                    vex="v",
                    indexed="t",
                    keys=keys,
                    cves=cves,
                    probes=probes,
                )
            delta = snapshot_delta(store, before, after)
            cited = delta.cves | delta.epss
            if delta.everything is not None:
                incremental = {str(n) for n in range(len(held))}
            else:
                incremental = set(touched(index, delta, cited, index.images()))
            changed = {
                str(n)
                for n, packages in enumerate(held)
                if _seen(store, before, packages) != _seen(store, after, packages)
            }
            assert changed <= incremental
            if old == new:
                assert incremental == set()
            if delta.everything is None:
                # an image no changed record concerns at the versions it holds, and citing
                # no changed CVE, is not selected, even when it holds the record's package
                untouched = {
                    str(n)
                    for n, packages in enumerate(held)
                    if not (index.cves_of(str(n)) & cited)
                    and not any(
                        _concerns(doc, name, version)
                        for change in delta.changes
                        for doc in (*change.before, *change.after)
                        for name, version in packages.items()
                    )
                }
                assert not (untouched & incremental)
        finally:
            db.close()
            store.close()
