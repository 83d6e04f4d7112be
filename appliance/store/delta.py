"""What changed between two snapshots of ``knowledge.db``, as the incremental rescan needs it:
the (ecosystem, normalized package name) keys of OSV records added, changed or removed, and
the CVE ids whose KEV or CVE-rating records changed (or that a changed OSV record names, since
a GitHub advisory's rating reaches every finding of the CVEs it aliases), and apart from them
the CVE ids whose EPSS score changed (scores move daily for most CVEs, and a policy that never
reads EPSS cannot be changed by them).

Datasets are content-addressed: a dataset both snapshots call by the same name and hold by
the same row is unchanged and never read. For a changed dataset the two memberships are
compared, by (record id, record key) for per-record datasets, by block for block-stored ones
(a block both hold is unchanged; the others are unpacked and compared line by line).

Each changed OSV record is kept with its body before and after (:attr:`Delta.changes`), so the
rescan can ask, by the matcher's own rules, which versions of a package either body affects:
a record id with more than one body in either snapshot is in :attr:`Delta.ambiguous` (the
matcher reads one of them for some packages, so the others' changes select by key alone).

A change this cannot narrow down to packages or CVEs (a policy or OpenVEX dataset, a dataset
of an unknown type, a dataset whose type changed, an ecosystem gained or lost, a snapshot no
longer stored) sets :attr:`Delta.everything` to the reason: every image is affected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from appliance.ecosystems import normalize_name
from appliance.store.blocks import unpack
from appliance.store.knowledge import KnowledgeStore
from bundles.digest import Digest
from bundles.snapshot import DatasetType

_CVE_TYPES: Final = frozenset({DatasetType.KEV, DatasetType.EPSS, DatasetType.CVE})


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One OSV record id whose body changed, came or went in one dataset: its bodies in the
    old snapshot's and the new snapshot's dataset (none on the side where it is absent)."""

    id: str
    before: tuple[Any, ...]
    after: tuple[Any, ...]

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        """The match-index keys either body is filed under."""
        return frozenset(k for doc in (*self.before, *self.after) for k in _osv_keys(doc))


@dataclass(frozen=True, slots=True)
class Delta:
    """The change from snapshot ``old`` to ``new`` as the images see it."""

    old: Digest
    new: Digest
    everything: str | None = None
    packages: frozenset[tuple[str, str]] = frozenset()
    cves: frozenset[str] = frozenset()
    epss: frozenset[str] = frozenset()  # CVE ids whose EPSS score alone changed
    datasets: tuple[str, ...] = ()  # names of the changed datasets
    records: int = 0  # records added, changed or removed
    changes: tuple[RecordChange, ...] = ()  # the OSV records added, changed or removed
    ambiguous: frozenset[str] = frozenset()  # OSV ids with several bodies in one snapshot

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": str(self.old),
            "to": str(self.new),
            "everything": self.everything,
            "datasets": list(self.datasets),
            "records": self.records,
            "packages": len(self.packages),
            "cves": len(self.cves),
            "epss": len(self.epss),
        }


@dataclass(frozen=True, slots=True)
class _Member:
    dataset: int
    type: str
    layout: str


def _members(store: KnowledgeStore, snapshot: Digest) -> dict[str, _Member]:
    rows = store.db.query(
        "SELECT sd.name, sd.dataset, sd.type, d.layout FROM snapshot_datasets sd "
        "JOIN datasets d ON d.id = sd.dataset WHERE sd.snapshot = ?",
        (str(snapshot),),
    )
    return {str(r[0]): _Member(int(r[1]), str(r[2]), str(r[3])) for r in rows}


def _record_rows(store: KnowledgeStore, dataset: int | None) -> set[tuple[str, int]]:
    if dataset is None:
        return set()
    rows = store.db.query(
        "SELECT record_id, record FROM dataset_records WHERE dataset = ?", (dataset,)
    )
    return {(str(r[0]), int(r[1])) for r in rows}


def _osv_changes(store: KnowledgeStore, old: int | None, new: int | None) -> list[RecordChange]:
    """The records of one OSV dataset present on one side only, by id, with their bodies."""
    a, b = _record_rows(store, old), _record_rows(store, new)
    gone, came = a - b, b - a
    bodies = dict(_keyed_bodies(store, {k for _, k in gone | came}))
    before: dict[str, list[Any]] = {}
    after: dict[str, list[Any]] = {}
    for side, rows in ((before, gone), (after, came)):
        for rid, key in sorted(rows):
            side.setdefault(rid, []).append(orjson.loads(bodies[key]))
    return [
        RecordChange(rid, tuple(before.get(rid, ())), tuple(after.get(rid, ())))
        for rid in sorted(before.keys() | after.keys())
    ]


def _ambiguous(store: KnowledgeStore, snapshot: Digest, ids: Iterable[str]) -> set[str]:
    """The ids among ``ids`` that the OSV datasets of ``snapshot`` hold with more than one
    body (two datasets, two versions of one record)."""
    found: set[str] = set()
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 400):
        part = wanted[start : start + 400]
        marks = ", ".join("?" for _ in part)
        rows = store.db.query(
            "SELECT dr.record_id FROM snapshot_datasets sd "  # noqa: S608
            "JOIN dataset_records dr ON dr.dataset = sd.dataset "
            f"WHERE sd.snapshot = ? AND sd.type = ? AND dr.record_id IN ({marks}) "
            "GROUP BY dr.record_id HAVING COUNT(DISTINCT dr.record) > 1",
            [str(snapshot), DatasetType.OSV.value, *part],
        )
        found.update(str(r[0]) for r in rows)
    return found


def _changed_records(
    store: KnowledgeStore, old: int | None, new: int | None
) -> tuple[set[int], set[str]]:
    """Record keys and ids present on one side only."""
    a, b = _record_rows(store, old), _record_rows(store, new)
    changed = a ^ b
    return {k for _, k in changed}, {rid for rid, _ in changed}


def _keyed_bodies(store: KnowledgeStore, keys: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    wanted = sorted(set(keys))
    for start in range(0, len(wanted), 400):
        part = wanted[start : start + 400]
        marks = ", ".join("?" for _ in part)
        for key, body in store.db.query(
            f"SELECT id, body FROM records WHERE id IN ({marks})",  # noqa: S608
            part,
        ):
            yield int(key), bytes(body)


def _block_lines(store: KnowledgeStore, dataset: int | None, skip: set[int]) -> dict[str, bytes]:
    """id -> line of every block of ``dataset`` not in ``skip``."""
    if dataset is None:
        return {}
    rows = store.db.query(
        "SELECT x.first_id, x.block, b.ids, b.body FROM dataset_blocks x "
        "JOIN blocks b ON b.id = x.block WHERE x.dataset = ?",
        (dataset,),
    )
    lines: dict[str, bytes] = {}
    for first, block, ids, body in rows:
        if int(block) in skip:
            continue
        where = f"{store.db.where}: dataset row {dataset} block {first}"
        lines.update(
            zip(bytes(ids).decode().split("\n"), unpack(bytes(body), where=where), strict=True)
        )
    return lines


def _block_keys(store: KnowledgeStore, dataset: int | None) -> set[int]:
    if dataset is None:
        return set()
    rows = store.db.query("SELECT block FROM dataset_blocks WHERE dataset = ?", (dataset,))
    return {int(r[0]) for r in rows}


def _changed_block_ids(store: KnowledgeStore, old: int | None, new: int | None) -> set[str]:
    shared = _block_keys(store, old) & _block_keys(store, new)
    a, b = _block_lines(store, old, shared), _block_lines(store, new, shared)
    return {rid for rid in a.keys() | b.keys() if a.get(rid) != b.get(rid)}


def _osv_keys(doc: Any) -> Iterator[tuple[str, str]]:
    """The match-index keys of one OSV record, as the knowledge store indexes them."""
    for affected in doc.get("affected") or ():
        package = affected.get("package") if isinstance(affected, dict) else None
        if not isinstance(package, dict):
            continue
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if isinstance(ecosystem, str) and isinstance(name, str):
            yield ecosystem, normalize_name(ecosystem, name)


def _cves_of(doc: Any) -> Iterator[str]:
    for i in (doc.get("id"), *(doc.get("aliases") or ())):
        if isinstance(i, str) and i.startswith("CVE-"):
            yield i


def snapshot_delta(store: KnowledgeStore, old: Digest, new: Digest) -> Delta:
    """The change from ``old`` to ``new`` (both snapshots of ``store``)."""
    if old == new:
        return Delta(old, new)
    if not store.has_snapshot(old):
        return Delta(old, new, everything=f"snapshot {old} is no longer in the knowledge store")
    if store.ecosystems(old) != store.ecosystems(new):
        gained = sorted(store.ecosystems(new) - store.ecosystems(old))
        lost = sorted(store.ecosystems(old) - store.ecosystems(new))
        return Delta(
            old,
            new,
            everything=f"ecosystems covered changed (gained {gained}, lost {lost})",
        )
    before, after = _members(store, old), _members(store, new)
    packages: set[tuple[str, str]] = set()
    cves: set[str] = set()
    epss: set[str] = set()
    changed: list[str] = []
    changes: list[RecordChange] = []
    records = 0
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is not None and b is not None and a.dataset == b.dataset:
            continue
        changed.append(name)
        types = {m.type for m in (a, b) if m is not None}
        layouts = {m.layout for m in (a, b) if m is not None}
        if len(types) != 1 or len(layouts) != 1:
            return Delta(old, new, everything=f"dataset {name} changed its type or layout")
        (kind,) = types
        old_id, new_id = (a.dataset if a else None), (b.dataset if b else None)
        if kind == DatasetType.OSV.value:
            found = _osv_changes(store, old_id, new_id)
            records += len(found)
            changes.extend(found)
            for change in found:
                packages.update(change.keys)
                for doc in (*change.before, *change.after):
                    cves.update(_cves_of(doc))
        elif kind in {t.value for t in _CVE_TYPES}:
            if layouts == {"blocks"}:
                ids = _changed_block_ids(store, old_id, new_id)
            else:
                ids = _changed_records(store, old_id, new_id)[1]
            records += len(ids)
            (epss if kind == DatasetType.EPSS.value else cves).update(ids)
        else:
            return Delta(old, new, everything=f"{kind} dataset {name} changed")
    return Delta(
        old,
        new,
        packages=frozenset(packages),
        cves=frozenset(cves),
        epss=frozenset(epss - cves),
        datasets=tuple(changed),
        records=records,
        changes=tuple(changes),
        ambiguous=frozenset(
            _ambiguous(store, old, ids) | _ambiguous(store, new, ids)
            if (ids := {c.id for c in changes})
            else ()
        ),
    )
