"""Matching against ``knowledge.db``: the store-backed advisory source and one entry point.

The matcher stays pure; this module is the edge that reads the store. A source is pinned to
one snapshot (the active one unless named), so a scan and its replay read the same records.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Mapping, Sequence
from typing import Any

from appliance.match.matcher import match
from appliance.match.model import FindingsReport, Inventory, Reachability, ReachabilityFact
from appliance.match.source import Advisory
from appliance.scanner.service import ScanResult
from appliance.store.knowledge import KnowledgeError, KnowledgeStore
from bundles.digest import Digest
from bundles.snapshot import DatasetType


class NoKnowledge(KnowledgeError):
    """There is no snapshot to match against."""


class KnowledgeAdvisories:
    """An :class:`~appliance.match.source.AdvisorySource` reading one snapshot of the store.

    Answers are memoized per source object: one scan asks for each package once, and the
    store does not change under a pinned snapshot.
    """

    def __init__(self, store: KnowledgeStore, snapshot: Digest | None = None) -> None:
        pinned = snapshot or store.active()
        if pinned is None:
            raise NoKnowledge(
                "the knowledge store has no active snapshot",
                hint="import a knowledge bundle with 'stella import' first",
            )
        if not store.has_snapshot(pinned):
            raise NoKnowledge(
                f"snapshot {pinned} is not in the knowledge store",
                hint="list the imported snapshots with 'stella snapshot list'",
            )
        self.store = store
        self._snapshot = pinned
        self._advisories: dict[tuple[str, str], list[Advisory]] = {}
        self._tables: dict[tuple[DatasetType, str], Mapping[str, Any] | None] = {}
        self._kev: dict[str, Mapping[str, Any]] | None = None
        self._ecosystems: frozenset[str] | None = None

    @property
    def snapshot(self) -> str | None:
        return str(self._snapshot)

    def advisories(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        key = (ecosystem, name)
        found = self._advisories.get(key)
        if found is None:
            records = self.store.advisories(ecosystem, name, self._snapshot)
            found = self._advisories[key] = [
                Advisory(r) for r in sorted(records, key=lambda r: str(r["id"]))
            ]
        return found

    def _table(self, dtype: DatasetType, cve: str) -> Mapping[str, Any] | None:
        key = (dtype, cve)
        if key not in self._tables:
            rows = self.store.lookup(dtype, cve, self._snapshot)
            self._tables[key] = rows[0] if rows else None
        return self._tables[key]

    def kev(self, cve: str) -> Mapping[str, Any] | None:
        if self._kev is None:
            # the whole catalog (about 1,500 entries) costs less than a query per CVE
            self._kev = {}
            for entry in self.store.manifest(self._snapshot).datasets:
                if entry.type is DatasetType.KEV:
                    for line in self.store.dataset_lines(entry.digest):
                        record = json.loads(line)
                        self._kev.setdefault(str(record["id"]), record)
        return self._kev.get(cve)

    def epss(self, cve: str) -> Mapping[str, Any] | None:
        return self._table(DatasetType.EPSS, cve)

    def ecosystems(self) -> frozenset[str] | None:
        if self._ecosystems is None:
            self._ecosystems = self.store.ecosystems(self._snapshot)
        return self._ecosystems


def match_inventory(
    store: KnowledgeStore, inventory: Inventory, snapshot: Digest | None = None
) -> FindingsReport:
    """Findings for ``inventory`` under ``snapshot`` (default: the active snapshot).

    The cyclic garbage collector is paused for the match, as for a scan: matching allocates
    many short-lived records and nothing in it forms cycles worth collecting mid-way; pausing
    saves about a quarter of a cold match."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return match(inventory, KnowledgeAdvisories(store, snapshot))
    finally:
        if enabled:
            gc.enable()


def inventory_of(scan: ScanResult) -> Inventory:
    """What to match, from a scan: packages, OS, the layer of each file, and the components
    the entrypoint trace reaches (the others stay ``unknown``, never ``unreachable``)."""
    file_layers = {
        e.path: str(e.layer_digest)
        for found in scan.packages
        for e in found.evidence
        if e.layer_digest is not None
    }
    reach: dict[str, list[str]] = {}
    for r in scan.entry_trace.reachable:
        reach.setdefault(r.purl, []).extend(r.chain[:1] or (r.file,))
    return Inventory.of(
        [found.package for found in scan.packages],
        scan.analysis.os,
        file_layers=file_layers,
        reachability=[
            ReachabilityFact(purl, Reachability.REACHABLE, tuple(sorted(set(chain))))
            for purl, chain in reach.items()
        ],
        target=scan.ref,
    )
