"""What matching asks of ``knowledge.db``: the records affecting packages, looked up by id or
alias, in the active snapshot or a named one; and what a snapshot holds."""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable, Iterator, Sequence

from appliance.ecosystems import normalize_name
from appliance.store.blocks import find_many
from appliance.store.knowledge.schema import (
    Layout,
    in_chunks,
)
from appliance.store.knowledge.snapshots import Snapshots
from bundles.digest import Digest
from bundles.snapshot import DatasetType


class Queries(Snapshots):
    """Queries for matching and reports."""

    def advisory_lines(
        self, packages: Iterable[tuple[str, str]], snapshot: Digest | None = None
    ) -> dict[tuple[str, str], list[tuple[str, int, bytes]]]:
        """For many (ecosystem, name) packages at once, the OSV records of ``snapshot``
        (default: the active one) affecting each, as (record id, record key, canonical line)
        in record id order, each distinct line once; the key is the line's 64-bit content key
        (same key, same line). A package without records is absent from the answer. See
        :meth:`advisory_rows`."""
        answer: dict[tuple[str, str], list[tuple[str, int, bytes]]] = {}
        for package, record_id, record, line in self.advisory_rows(packages, snapshot):
            rows = answer.get(package)
            if rows is None:
                answer[package] = [(record_id, record, line)]
            else:
                rows.append((record_id, record, line))
        by_id = operator.itemgetter(0, 1)
        for rows in answer.values():
            rows.sort(key=by_id)  # never on the query plan's order
        return answer

    def advisory_rows(
        self, packages: Iterable[tuple[str, str]], snapshot: Digest | None = None
    ) -> Iterator[tuple[tuple[str, str], str, int, bytes]]:
        """The rows of :meth:`advisory_lines` as the database yields them, unordered: (the
        package as given, record id, record key, canonical line), once per package and
        distinct line. Names compare normalized; a package asked under two spellings gets
        the rows under both.

        One query per :data:`QUERY_CHUNK` packages instead of one per package: a scan asks
        for every component of an image at once."""
        snap = snapshot or self.active()
        wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for ecosystem, name in packages:
            wanted.setdefault((ecosystem, normalize_name(ecosystem, name)), []).append(
                (ecosystem, name)
            )
        if snap is None or not wanted:
            return
        keys = list(wanted)
        for chunk, values in in_chunks(keys, "(?, ?)"):
            # EXISTS, not a join: a record two datasets of the snapshot hold is one row, so
            # no set of rows seen is kept; the body is read only for the rows kept
            rows = self._conn.execute(
                f"WITH wanted(ecosystem, name) AS (VALUES {values}) "  # noqa: S608
                "SELECT a.ecosystem, a.name, a.record_id, a.record, r.body FROM wanted w "
                "JOIN affected a ON a.ecosystem = w.ecosystem AND a.name = w.name "
                "JOIN records r ON r.id = a.record "
                "WHERE EXISTS (SELECT 1 FROM snapshot_datasets sd "
                "JOIN dataset_records dr ON dr.dataset = sd.dataset "
                "AND dr.record_id = a.record_id AND dr.record = a.record "
                "WHERE sd.snapshot = ?)",
                [*(v for key in chunk for v in key), str(snap)],
            )
            # the columns are text, integer and bytes: both backends give str, int and bytes
            for ecosystem, name, record_id, record, body in rows:
                for asked in wanted[(ecosystem, name)]:
                    yield asked, record_id, record, body

    def lookup_lines(
        self, dataset_type: DatasetType, record_ids: Iterable[str], snapshot: Digest | None = None
    ) -> dict[str, bytes]:
        """For many ids at once (KEV and EPSS by CVE), the line of the first dataset (by name)
        of this type in ``snapshot`` (default: the active one) that has a record with that
        id, unparsed, in one query per :data:`QUERY_CHUNK` ids (or per block). Ids without a
        record are absent."""
        answer: dict[str, bytes] = {}
        for lines in reversed(self._lookup_each(dataset_type, record_ids, snapshot)):
            answer.update(lines)  # the first dataset by name is applied last and wins
        return answer

    def lookup_all(
        self, dataset_type: DatasetType, record_ids: Iterable[str], snapshot: Digest | None = None
    ) -> dict[str, list[bytes]]:
        """Like :meth:`lookup_lines`, but the lines of every dataset of the type that has the
        id, in dataset name order (CVE ratings from NVD and from the CVE list add up)."""
        answer: dict[str, list[bytes]] = {}
        for lines in self._lookup_each(dataset_type, record_ids, snapshot):
            for rid, line in lines.items():
                answer.setdefault(rid, []).append(line)
        return answer

    def alias_lines(
        self, aliases: Iterable[str], snapshot: Digest | None = None
    ) -> dict[str, list[tuple[str, bytes]]]:
        """For many ids at once (CVEs), the GitHub advisories of ``snapshot`` (default: the
        active one) that alias each, as (record id, canonical line) in record id order, each
        distinct line once. Ids no advisory aliases are absent."""
        snap = snapshot or self.active()
        wanted = sorted(set(aliases))
        answer: dict[str, list[tuple[str, bytes]]] = {}
        if snap is None or not wanted:
            return answer
        for chunk, marks in in_chunks(wanted):
            rows = self._conn.execute(
                "SELECT a.alias, a.record_id, r.body FROM advisory_aliases a "  # noqa: S608
                "JOIN records r ON r.id = a.record "
                f"WHERE a.alias IN ({marks}) AND EXISTS (SELECT 1 FROM snapshot_datasets sd "
                "JOIN dataset_records dr ON dr.dataset = sd.dataset "
                "AND dr.record_id = a.record_id AND dr.record = a.record "
                "WHERE sd.snapshot = ?)",
                [*chunk, str(snap)],
            )
            for alias, record_id, body in rows:
                answer.setdefault(str(alias), []).append((str(record_id), bytes(body)))
        for found in answer.values():
            found.sort()
        return answer

    def _lookup_each(
        self, dataset_type: DatasetType, record_ids: Iterable[str], snapshot: Digest | None
    ) -> list[dict[str, bytes]]:
        """Per dataset of the type in the snapshot, in name order: the lines of those ids."""
        snap = snapshot or self.active()
        ids = sorted(set(record_ids))
        if snap is None or not ids:
            return []
        datasets = self._conn.execute(
            "SELECT d.id, d.digest, d.layout FROM snapshot_datasets sd "
            "JOIN datasets d ON d.id = sd.dataset "
            "WHERE sd.snapshot = ? AND sd.type = ? ORDER BY sd.name",
            (str(snap), dataset_type.value),
        ).fetchall()
        return [
            self._block_lines(int(dataset), str(digest), ids)
            if Layout(layout) is Layout.BLOCKS
            else self._record_lines(int(dataset), ids)
            for dataset, digest, layout in datasets
        ]

    def _record_lines(self, dataset: int, ids: Sequence[str]) -> dict[str, bytes]:
        answer: dict[str, bytes] = {}
        for chunk, marks in in_chunks(ids):
            rows = self._conn.execute(
                f"SELECT dr.record_id, r.body FROM dataset_records dr "  # noqa: S608
                "JOIN records r ON r.id = dr.record "
                f"WHERE dr.dataset = ? AND dr.record_id IN ({marks})",
                [dataset, *chunk],
            )
            for record_id, body in rows:
                answer[str(record_id)] = bytes(body)
        return answer

    def _block_lines(self, dataset: int, digest: str, ids: Sequence[str]) -> dict[str, bytes]:
        """The lines of ``ids`` (sorted) in a block-stored dataset (row ``dataset``, named by
        ``digest`` in errors): each id belongs to the block with the greatest first id not
        above it; each block is read once."""
        starts = [
            str(first)
            for (first,) in self._conn.execute(
                "SELECT first_id FROM dataset_blocks WHERE dataset = ? ORDER BY first_id",
                (dataset,),
            )
        ]
        wanted: dict[str, list[str]] = {}
        for rid in ids:
            at = bisect.bisect_right(starts, rid) - 1
            if at >= 0:
                wanted.setdefault(starts[at], []).append(rid)
        answer: dict[str, bytes] = {}
        firsts = list(wanted)
        for chunk, marks in in_chunks(firsts):
            rows = self._conn.execute(
                "SELECT x.first_id, b.ids, b.body FROM dataset_blocks x "  # noqa: S608
                "JOIN blocks b ON b.id = x.block "
                f"WHERE x.dataset = ? AND x.first_id IN ({marks})",
                [dataset, *chunk],
            )
            for first, block_ids, body in rows:
                where = f"{self.db.where}: dataset {digest} block {first}"
                answer.update(find_many(block_ids, body, wanted[first], where=where))
        return answer

    def ecosystems(self, snapshot: Digest | None = None) -> frozenset[str]:
        """Every ecosystem the snapshot's OSV datasets have at least one record for."""
        snap = snapshot or self.active()
        if snap is None:
            return frozenset()
        rows = self._conn.execute(
            "SELECT DISTINCT de.ecosystem FROM snapshot_datasets sd "
            "JOIN dataset_ecosystems de ON de.dataset = sd.dataset WHERE sd.snapshot = ?",
            (str(snap),),
        )
        return frozenset(str(e) for (e,) in rows)

    def counts(self, snapshot: Digest) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT sd.type, SUM(d.records) FROM snapshot_datasets sd "
            "JOIN datasets d ON d.id = sd.dataset WHERE sd.snapshot = ? GROUP BY sd.type",
            (str(snapshot),),
        )
        return {str(t): int(n) for t, n in rows}
