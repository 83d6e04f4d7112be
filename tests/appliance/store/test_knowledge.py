"""knowledge.db: datasets load only as declared, deltas rebuild exact digests, queries use the
active snapshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.store.blocks import BlockError
from appliance.store.knowledge import (
    KnowledgeError,
    KnowledgeStore,
    Patch,
    install_snapshot,
    split_lines,
)
from bundles import canonical
from bundles.digest import Digest
from bundles.snapshot import DatasetEntry, DatasetType, Manifest, build_dataset
from tests.appliance.store.conftest import Opener

Record = dict[str, Any]
"""One parsed JSON record."""

OSV: list[Record] = [
    {"id": "A-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Jinja2"}}]},
    {"id": "A-2", "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"}}]},
    {"id": "B-1", "affected": [{"package": {"ecosystem": "npm", "name": "Lodash"}}]},
]


def dataset(
    records: list[Record], name: str = "osv", dtype: DatasetType = DatasetType.OSV
) -> tuple[DatasetEntry, bytes]:
    return build_dataset(name, dtype, records)


def chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture
def store(open_db: Opener) -> KnowledgeStore:
    return KnowledgeStore(open_db("knowledge"))


def load(store: KnowledgeStore, entry: DatasetEntry, data: bytes) -> None:
    with store.db.transaction():
        store.load_dataset(entry, chunks(data))


def advisories(
    store: KnowledgeStore, ecosystem: str, name: str, snapshot: Digest | None = None
) -> list[Record]:
    """One package's OSV records, asked alone, parsed."""
    lines = store.advisory_lines([(ecosystem, name)], snapshot)
    return [canonical.loads(line) for *_, line in lines.get((ecosystem, name), ())]


def lookup(
    store: KnowledgeStore, dtype: DatasetType, record_id: str, snapshot: Digest | None = None
) -> Record | None:
    """One id's record in a table dataset, asked alone, parsed; None when there is none."""
    line = store.lookup_lines(dtype, [record_id], snapshot).get(record_id)
    return None if line is None else canonical.loads(line)


def test_load_rebuild_and_query(store: KnowledgeStore) -> None:
    entry, data = dataset(OSV)
    kev_entry, kev = dataset([{"id": "CVE-1", "dateAdded": "2025-01-01"}], "kev", DatasetType.KEV)
    load(store, entry, data)
    load(store, kev_entry, kev)
    assert store.dataset_bytes(entry.digest) == data
    manifest = Manifest(sources=(), datasets=(entry, kev_entry))
    mbytes = manifest.canonical()
    with store.db.transaction():
        snap = store.add_snapshot(
            mbytes,
            manifest,
            sequence=1,
            channel="c",
            kind="full",
            base=None,
            bundle=Digest.of_bytes(b"b"),
            created="2026-01-01T00:00:00Z",
            imported="2026-01-01T00:00:00Z",
        )
        store.activate(snap, "c", 1)
    assert store.active() == snap
    assert store.last_sequence("c") == 1
    assert [r["id"] for r in advisories(store, "PyPI", "jinja2")] == ["A-1"]
    assert [r["id"] for r in advisories(store, "npm", "lodash")] == ["B-1"]
    assert advisories(store, "Debian:11", "zlib") == []
    assert lookup(store, DatasetType.KEV, "CVE-1") == {"id": "CVE-1", "dateAdded": "2025-01-01"}
    assert store.counts(snap) == {"osv": 3, "kev": 1}


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d.replace(b"A-2", b"A-3"), "the manifest declares"),
        (lambda d: d[:-1], "does not end with a newline"),
        (
            lambda d: b"\n".join(reversed(d.rstrip(b"\n").split(b"\n"))) + b"\n",
            "not strictly increasing",
        ),
        (lambda d: d + b'{"no":"id"}\n', "has no string id"),
        (lambda d: d + b"not json\n", "is not JSON"),
    ],
)
def test_load_refuses_what_the_manifest_does_not_declare(
    store: KnowledgeStore, mangle: Callable[[bytes], bytes], message: str
) -> None:
    entry, data = dataset(OSV)
    with pytest.raises(KnowledgeError, match=message), store.db.transaction():
        store.load_dataset(entry, chunks(mangle(data)))
    assert not store.has_dataset(entry.digest)
    assert advisories(store, "PyPI", "jinja2") == []


EPSS = [{"id": f"CVE-2024-{i:05d}", "epss": f"0.{i:05d}"} for i in range(1, 3001)]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d[:-1], "does not end with a newline"),
        (  # two lines swapped far into the stream: the chunk's own check must catch it
            lambda d: d.replace(b"CVE-2024-02001", b"CVE-2024-0200X", 1).replace(
                b"CVE-2024-02002", b"CVE-2024-02001", 1
            ),
            "not strictly increasing at 'CVE-2024-02001'",
        ),
        (  # a chunk starting with an id before the last one of the chunk ahead of it
            lambda d: d + b'{"epss":"0.9","id":"CVE-2024-00001"}\n',
            "not strictly increasing at 'CVE-2024-00001'",
        ),
        (lambda d: d + b'{"epss":"0.9","id":"CVE-2024-03000"}\n', "not strictly increasing"),
        (lambda d: d + b'{"no":"id"}\n', "has no string id"),
        (lambda d: d + b'{"id":7}\n', "has no string id"),
        (lambda d: d + b'{"id":""}\n', "has no string id"),
        (lambda d: d + b'["id"]\n', "has no string id"),
        (lambda d: d + b"not json\n", "is not JSON"),
        (lambda d: d + b"\n", "is not JSON"),
    ],
)
def test_block_dataset_refuses_bad_lines_by_name(
    store: KnowledgeStore, mangle: Callable[[bytes], bytes], message: str
) -> None:
    """A table dataset (EPSS) is parsed a chunk of lines at a time: every fault a line can
    have is still found and named as the line-by-line path names it."""
    entry, data = dataset(EPSS, "epss", DatasetType.EPSS)
    with pytest.raises(KnowledgeError, match=message), store.db.transaction():
        store.load_dataset(entry, chunks(mangle(data), 1 << 16))
    assert not store.has_dataset(entry.digest)


def test_block_dataset_keeps_its_bytes_across_chunk_sizes(store: KnowledgeStore) -> None:
    entry, data = dataset(EPSS, "epss", DatasetType.EPSS)
    with store.db.transaction():
        store.load_dataset(entry, chunks(data, 4093))
    assert store.dataset_bytes(entry.digest) == data


def test_record_count_must_match(store: KnowledgeStore) -> None:
    entry, data = dataset(OSV)
    wrong = DatasetEntry(entry.name, entry.type, entry.source, entry.digest, 4, entry.size)
    with (
        pytest.raises(KnowledgeError, match="3 records, the manifest declares 4"),
        store.db.transaction(),
    ):
        store.load_dataset(wrong, chunks(data))


def patch_for(base: list[Record], target: list[Record]) -> Patch:
    b_entry, _ = dataset(base)
    t_entry, _ = dataset(target)
    old = {r["id"]: canonical.dumps(r) for r in base}
    new = {r["id"]: canonical.dumps(r) for r in target}
    return Patch(
        base=b_entry.digest,
        target=t_entry.digest,
        removed=frozenset(k for k in old if k not in new),
        puts={k: v for k, v in new.items() if old.get(k) != v},
    )


records = st.lists(
    st.fixed_dictionaries(
        {"id": st.text("ABC-123", min_size=1, max_size=4), "v": st.integers(0, 3)}
    ),
    max_size=12,
    unique_by=lambda r: r["id"],
)


@settings(max_examples=40, deadline=None)
@given(records, records)
def test_any_patch_rebuilds_the_target_exactly(
    tmp_path_factory: pytest.TempPathFactory, base: list[Record], target: list[Record]
) -> None:
    store = KnowledgeStore.open(tmp_path_factory.mktemp("k") / "knowledge.db")
    try:
        b_entry, b_data = dataset(base)
        t_entry, t_data = dataset(target)
        load(store, b_entry, b_data)
        with store.db.transaction():
            store.apply_patch(t_entry, patch_for(base, target))
        assert store.dataset_bytes(t_entry.digest) == t_data
    finally:
        store.close()


def test_patch_needs_its_base(store: KnowledgeStore) -> None:
    t_entry, _ = dataset(OSV[:1])
    with (
        pytest.raises(KnowledgeError, match="base dataset sha256:.* is not in the knowledge store"),
        store.db.transaction(),
    ):
        store.apply_patch(t_entry, patch_for(OSV, OSV[:1]))


def test_wrong_patch_is_refused_and_rolled_back(store: KnowledgeStore) -> None:
    b_entry, b_data = dataset(OSV)
    load(store, b_entry, b_data)
    target: list[Record] = [*OSV[:2], {"id": "C-1"}]
    t_entry, _ = dataset(target)
    bad = patch_for(OSV, target)
    bad = Patch(bad.base, bad.target, frozenset(), bad.puts)  # forgets to remove B-1
    with pytest.raises(KnowledgeError, match="the manifest declares"), store.db.transaction():
        store.apply_patch(t_entry, bad)
    assert not store.has_dataset(t_entry.digest)


def test_parse_patch() -> None:
    header = (
        b'{"base":"sha256:'
        + b"a" * 64
        + b'","removed":["X"],"target":"sha256:'
        + b"b" * 64
        + b'"}\n'
    )
    patch = KnowledgeStore.parse_patch(chunks(header + b'{"id":"Y"}\n'), "p")
    assert (patch.removed, list(patch.puts)) == (frozenset({"X"}), ["Y"])
    with pytest.raises(KnowledgeError, match="put twice"):
        KnowledgeStore.parse_patch([header + b'{"id":"Y"}\n{"id":"Y"}\n'], "p")
    with pytest.raises(KnowledgeError, match="malformed patch header"):
        KnowledgeStore.parse_patch([b"{}\n"], "p")


def test_split_lines() -> None:
    assert list(split_lines([b"a\nb", b"c\n", b"d\n"])) == [b"a", b"bc", b"d"]


def _snapshot(store: KnowledgeStore, records: list[Record], seq: int, imported: str) -> Digest:
    return install_snapshot(
        store,
        [dataset(records)],
        sequence=seq,
        channel="c",
        created=imported,
        bundle=Digest.of_bytes(bytes([seq])),
    )


def test_prune_forgets_old_snapshots_but_never_the_active_one(store: KnowledgeStore) -> None:
    from appliance.store.knowledge import prune

    old = _snapshot(store, OSV, 1, "2024-01-01T00:00:00Z")
    shared = _snapshot(store, OSV, 2, "2024-06-01T00:00:00Z")  # same dataset as `old`
    assert old == shared  # identical content: one snapshot, imported twice
    newer = _snapshot(store, OSV[:2], 3, "2026-11-01T00:00:00Z")
    result = prune(store, before="2026-01-01T00:00:00Z")
    assert result.snapshots == (old,)
    assert result.datasets == 1
    assert result.records == 1  # B-1 only lived in the pruned dataset
    assert [s.digest for s in store.snapshots()] == [newer]
    assert [r["id"] for r in advisories(store, "PyPI", "jinja2")] == ["A-1"]
    assert advisories(store, "npm", "lodash") == []
    # Everything old, including the active snapshot's age: the active one stays.
    assert prune(store, before="2099-01-01T00:00:00Z").snapshots == ()
    assert store.active() == newer


def test_ecosystems_of_a_snapshot(store: KnowledgeStore) -> None:
    snap = _snapshot(store, OSV, 1, "2026-01-01T00:00:00Z")
    assert store.ecosystems(snap) == {"PyPI", "Debian:12", "npm"}
    newer = _snapshot(store, OSV[:1], 2, "2026-02-01T00:00:00Z")
    assert store.ecosystems(newer) == {"PyPI"}


def _expected(records: list[Record], ecosystem: str, name: str) -> list[Record]:
    """What a snapshot holding ``records`` answers for a package, computed without SQL."""
    from appliance.ecosystems import normalize_name

    wanted = normalize_name(ecosystem, name)
    return sorted(
        (
            r
            for r in records
            if any(
                a["package"]["ecosystem"] == ecosystem
                and normalize_name(ecosystem, a["package"]["name"]) == wanted
                for a in r.get("affected", ())
            )
        ),
        key=lambda r: r["id"],
    )


BATCH_V1 = [
    *OSV,
    {
        "id": "A-0",
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": "jinja2"}},
            {"package": {"ecosystem": "PyPI", "name": "Markup_Safe"}},
        ],
    },
    {"id": "C-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "markup-safe"}}]},
]
# The next snapshot: A-1 is revised (other bytes), C-1 is gone, D-1 is new.
BATCH_V2 = [
    {**r, "modified": "2026-02-01T00:00:00Z"} if r["id"] == "A-1" else r
    for r in BATCH_V1
    if r["id"] != "C-1"
] + [{"id": "D-1", "affected": [{"package": {"ecosystem": "npm", "name": "lodash"}}]}]
PACKAGES = [
    ("PyPI", "Jinja2"),
    ("PyPI", "jinja2"),  # the same package under another spelling: answered under both
    ("PyPI", "markup.safe"),
    ("npm", "lodash"),
    ("Debian:12", "zlib"),
    ("Debian:11", "zlib"),  # no records
    ("Go", "example.com/none"),
]


@pytest.mark.parametrize("chunk", [1, 2, 400])
def test_batch_answers_equal_per_package_answers_per_pinned_snapshot(
    store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from appliance.store import knowledge

    monkeypatch.setattr(knowledge, "QUERY_CHUNK", chunk)
    old = _snapshot(store, BATCH_V1, 1, "2026-01-01T00:00:00Z")
    new = _snapshot(store, BATCH_V2, 2, "2026-02-01T00:00:00Z")
    assert store.active() == new
    for snap, records in ((old, BATCH_V1), (new, BATCH_V2), (None, BATCH_V2)):
        batch = store.advisory_lines(PACKAGES, snap)
        assert set(batch) == {p for p in PACKAGES if _expected(records, *p)}
        for package in PACKAGES:
            expected = _expected(records, *package)
            lines = batch.get(package, [])
            assert [canonical.loads(line) for *_, line in lines] == expected
            assert [rid for rid, *_ in lines] == [r["id"] for r in expected]
            assert [line for *_, line in lines] == [canonical.dumps(r) for r in expected]
            assert advisories(store, *package, snap) == expected
        rows = list(store.advisory_rows(PACKAGES, snap))
        assert len(rows) == len(set(rows)) == sum(len(v) for v in batch.values())
        assert {(p, *rest) for p, lines in batch.items() for rest in lines} == set(rows)
    revised = store.advisory_lines([("PyPI", "jinja2")], old)[("PyPI", "jinja2")]
    assert "modified" not in canonical.loads(revised[-1][2])
    assert store.advisory_lines([], new) == {}


def test_a_record_two_datasets_of_a_snapshot_hold_is_answered_once(
    store: KnowledgeStore,
) -> None:
    both = install_snapshot(
        store,
        [dataset(OSV, "osv-a"), dataset(OSV[:1], "osv-b")],
        sequence=1,
        channel="c",
        created="2026-01-01T00:00:00Z",
    )
    lines = store.advisory_lines([("PyPI", "jinja2")], both)[("PyPI", "jinja2")]
    assert [rid for rid, *_ in lines] == ["A-1"]


@pytest.mark.parametrize("chunk", [1, 400])
def test_lookup_lines_answer_from_the_first_dataset_by_name(
    store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from appliance.store import knowledge

    monkeypatch.setattr(knowledge, "QUERY_CHUNK", chunk)
    first = [{"id": "CVE-1", "epss": "0.1"}, {"id": "CVE-2", "epss": "0.2"}]
    second = [{"id": "CVE-2", "epss": "0.9"}, {"id": "CVE-3", "epss": "0.3"}]
    snap = install_snapshot(
        store,
        [
            # the dataset named first answers an id both hold
            dataset(second, "epss-b", DatasetType.EPSS),
            dataset(first, "epss-a", DatasetType.EPSS),
            dataset([{"id": "CVE-3", "dateAdded": "x"}], "kev", DatasetType.KEV),
        ],
        sequence=1,
        channel="c",
        created="2026-01-01T00:00:00Z",
    )
    ids = ["CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-2"]
    found = store.lookup_lines(DatasetType.EPSS, ids, snap)
    assert set(found) == {"CVE-1", "CVE-2", "CVE-3"}
    assert {cve: canonical.loads(line) for cve, line in found.items()} == {
        "CVE-1": {"id": "CVE-1", "epss": "0.1"},
        "CVE-2": {"id": "CVE-2", "epss": "0.2"},
        "CVE-3": {"id": "CVE-3", "epss": "0.3"},
    }
    for cve in set(ids):  # asked one at a time, the same answers
        one = lookup(store, DatasetType.EPSS, cve, snap)
        assert one == (canonical.loads(found[cve]) if cve in found else None)
    assert store.lookup_lines(DatasetType.KEV, ids, snap) == {
        "CVE-3": canonical.dumps({"id": "CVE-3", "dateAdded": "x"})
    }
    later = _snapshot(store, OSV, 2, "2026-02-01T00:00:00Z")  # no EPSS at all
    assert store.lookup_lines(DatasetType.EPSS, ids, later) == {}
    assert store.lookup_lines(DatasetType.EPSS, ids) == {}
    assert store.lookup_lines(DatasetType.EPSS, [], snap) == {}


# ------------------------------------------------------------------------------ block layout


def epss(n: int, *, bump: frozenset[int] = frozenset()) -> list[Record]:
    return [
        {"id": f"CVE-2024-{i:05d}", "epss": "0.9" if i in bump else f"0.{i % 97:05d}"}
        for i in range(n)
    ]


def table_rows(store: KnowledgeStore, table: str) -> int:
    query = f"SELECT COUNT(*) FROM {table}"  # noqa: S608 - table names written in this file
    return int(store.db.connection.execute(query).fetchone()[0])


def test_epss_is_stored_in_blocks_and_reads_back_exactly(store: KnowledgeStore) -> None:
    records = epss(1300)  # three blocks of 512
    entry, data = dataset(records, "epss", DatasetType.EPSS)
    snap = install_snapshot(
        store, [(entry, data)], sequence=1, channel="c", created="2026-01-01T00:00:00Z"
    )
    assert table_rows(store, "dataset_records") == 0
    assert table_rows(store, "records") == 0
    assert table_rows(store, "dataset_blocks") == 3
    assert store.dataset_bytes(entry.digest) == data
    for i in (0, 511, 512, 1023, 1024, 1299):
        cve = f"CVE-2024-{i:05d}"
        assert lookup(store, DatasetType.EPSS, cve, snap) == records[i]
    assert lookup(store, DatasetType.EPSS, "CVE-2024-01300", snap) is None
    assert lookup(store, DatasetType.EPSS, "CVE-1999-0001", snap) is None
    asked = ["CVE-2024-00000", "CVE-2024-00700", "CVE-2024-01299", "CVE-2099-1", "CVE-0"]
    found = store.lookup_lines(DatasetType.EPSS, asked, snap)
    assert found == {cve: canonical.dumps(records[int(cve[-5:])]) for cve in asked[:3]}
    assert store.counts(snap) == {"epss": 1300}


def test_delta_onto_a_block_dataset_rebuilds_the_target_and_shares_blocks(
    store: KnowledgeStore,
) -> None:
    base = epss(1100)
    target = [*epss(1100, bump=frozenset({3, 5})), {"id": "CVE-2025-00001", "epss": "0.5"}]
    del target[600]
    b_entry, b_data = dataset(base, "epss", DatasetType.EPSS)
    t_entry, t_data = dataset(target, "epss", DatasetType.EPSS)
    load(store, b_entry, b_data)
    old = {r["id"]: canonical.dumps(r) for r in base}
    new = {r["id"]: canonical.dumps(r) for r in target}
    patch = Patch(
        base=b_entry.digest,
        target=t_entry.digest,
        removed=frozenset(k for k in old if k not in new),
        puts={k: v for k, v in new.items() if old.get(k) != v},
    )
    with store.db.transaction():
        store.apply_patch(t_entry, patch)
    assert store.dataset_bytes(t_entry.digest) == t_data
    assert store.dataset_bytes(b_entry.digest) == b_data
    # none of the target's three blocks is one of the base's: the first holds the changed
    # scores, and the removed record shifts every later boundary
    assert table_rows(store, "dataset_blocks") == 6
    assert table_rows(store, "blocks") == 6
    same = dataset(base, "epss-again", DatasetType.EPSS)
    install_snapshot(store, [same], sequence=1, channel="c", created="2026-01-01T00:00:00Z")
    assert table_rows(store, "blocks") == 6  # an identical dataset is not stored twice


def test_prune_drops_blocks_no_dataset_uses(store: KnowledgeStore) -> None:
    from appliance.store.knowledge import prune

    def snap(records: list[Record], seq: int, imported: str) -> Digest:
        return install_snapshot(
            store,
            [dataset(records, "epss", DatasetType.EPSS)],
            sequence=seq,
            channel="c",
            created=imported,
        )

    snap(epss(600), 1, "2024-01-01T00:00:00Z")
    newer = snap(epss(600, bump=frozenset({599})), 2, "2026-11-01T00:00:00Z")
    assert table_rows(store, "blocks") == 3  # the first block is shared
    result = prune(store, before="2026-01-01T00:00:00Z")
    assert (result.datasets, result.blocks) == (1, 1)
    assert table_rows(store, "blocks") == 2
    assert lookup(store, DatasetType.EPSS, "CVE-2024-00599", newer) == {
        "id": "CVE-2024-00599",
        "epss": "0.9",
    }


def test_a_damaged_block_is_a_clear_error(store: KnowledgeStore) -> None:
    """The error names the database file, the dataset's digest and the block, and says what
    to do; never an internal row id."""
    entry, data = dataset(epss(600), "epss", DatasetType.EPSS)  # two blocks
    snap = install_snapshot(
        store, [(entry, data)], sequence=1, channel="c", created="2026-01-01T00:00:00Z"
    )
    store.db.connection.execute(
        "UPDATE blocks SET body = ? WHERE id = "
        "(SELECT block FROM dataset_blocks WHERE first_id = 'CVE-2024-00512')",
        (b"\x00",),
    )
    assert lookup(store, DatasetType.EPSS, "CVE-2024-00001", snap) == epss(600)[1]
    where = f"{store.db.where}: dataset {entry.digest} block CVE-2024-00512"
    for read in (
        lambda: lookup(store, DatasetType.EPSS, "CVE-2024-00513", snap),
        lambda: store.dataset_bytes(entry.digest),
    ):
        with pytest.raises(BlockError) as caught:
            read()
        assert caught.value.message.startswith(f"{where}: block does not decompress: ")
        assert caught.value.diagnostics().endswith(
            "(knowledge.db is damaged: restore the appliance home from a backup and import "
            "the bundles made since (docs/runbooks.md, backup and restore))"
        )
