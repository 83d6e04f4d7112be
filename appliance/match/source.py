"""Where the matcher reads advisories from: one small protocol, and an in-memory index.

The matcher asks three questions: the OSV records for an (ecosystem, package name), the KEV
entry of a CVE, the EPSS row of a CVE; a source that is also :class:`Rated` answers two more
for severity: the GitHub advisories that alias a CVE, and the CVE's ``cve`` table records.
:class:`KnowledgeAdvisories` in :mod:`appliance.match.service` answers them from
``knowledge.db``; :class:`MemoryAdvisories` answers them from records held in memory (tests,
benchmarks, replay of an exported slice). Each record travels with the SHA-256 of its canonical
bytes, which is how the knowledge store and the snapshot's dataset files name it. A source that
answers in batches faster than one question at a time (a database) is also
:class:`Prefetching`; the matcher then tells it everything it will ask before it asks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

from appliance.ecosystems import normalize_name
from appliance.match.aliases import record_ids
from bundles import canonical

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
# Where a number can stand in compact JSON: after a key (``":``), after ``[`` or ``,``. A
# text without such a number having a fraction, an exponent or 16+ digits holds no float and
# no unsafe integer (a cheap first look; strings can only cause a false alarm).
_MAYBE_NOT_PLAIN = re.compile(rb'(?:":|[,\[])-?[0-9]+(?:[.eE]|[0-9]{15})')
# After the strings are removed: a fraction or exponent, or an integer too long to be safe.
_NOT_PLAIN = re.compile(rb"[0-9][.eE]|[.eE][0-9]|[0-9]{16,}")
# UTF-8 lead bytes of U+E000..U+10FFFF: the only characters whose UTF-16 order (RFC 8785's
# key order) differs from code-point order.
_ORDER_SENSITIVE = re.compile(rb"[\xee-\xf4]")


def record_digest(record: Mapping[str, Any]) -> str:
    """The hex SHA-256 of a record's canonical JSON line (as stored in a dataset file).

    orjson with sorted keys writes exactly RFC 8785 for strings, safe integers, booleans and
    null, as long as no key order could differ (no character at or above U+E000); anything
    else (floats, big integers, such characters) goes through :mod:`bundles.canonical`.
    """
    try:
        data: bytes | None = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        data = None
    if (
        data is None
        or _ORDER_SENSITIVE.search(data) is not None
        or (
            _MAYBE_NOT_PLAIN.search(data) is not None
            and _NOT_PLAIN.search(_STRING.sub(b"", data)) is not None
        )
    ):
        data = canonical.dumps(record)
    return hashlib.sha256(data).hexdigest()


class Advisory:
    """An OSV record and its digest: given, or computed on first use from the record's
    stored canonical line when there is one (a hash, no re-serializing), else from the
    record itself: a record no finding cites never needs its digest."""

    __slots__ = ("_digest", "_ids", "line", "record")

    def __init__(
        self, record: Mapping[str, Any], digest: str | None = None, line: bytes | None = None
    ) -> None:
        self.record = record
        self._digest = digest
        self._ids: tuple[str, ...] | None = None
        self.line = line

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def ids(self) -> tuple[str, ...]:
        """The record's id and aliases (:func:`~appliance.match.aliases.record_ids`), read
        once: the matcher asks for them to prefetch CVEs and again to merge findings."""
        if self._ids is None:
            self._ids = record_ids(self.record)
        return self._ids

    @property
    def digest(self) -> str:
        if self._digest is None:
            if self.line is not None:
                self._digest = hashlib.sha256(self.line).hexdigest()
            else:
                self._digest = record_digest(self.record)
        return self._digest


class AdvisorySource(Protocol):
    """What the matcher needs from a knowledge snapshot."""

    @property
    def snapshot(self) -> str | None:
        """The digest of the snapshot answering, recorded in every match explanation."""
        ...

    def advisories(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        """Records with an affected entry for (ecosystem, name); names compare normalized."""
        ...

    def kev(self, cve: str) -> Mapping[str, Any] | None: ...

    def epss(self, cve: str) -> Mapping[str, Any] | None: ...

    def ecosystems(self) -> frozenset[str] | None:
        """Every ecosystem with at least one record, or None when the source cannot tell
        cheaply. A distribution release missing from it makes its packages unknowns instead
        of silently clean."""
        ...


@runtime_checkable
class Prefetching(Protocol):
    """An :class:`AdvisorySource` that answers many questions at once faster than one at a
    time (a database): before asking, the matcher hands it every (ecosystem, name) it will
    ask for, then every CVE whose KEV and EPSS rows it may ask for."""

    def prefetch(self, packages: Iterable[tuple[str, str]]) -> None: ...

    def prefetch_cves(self, cves: Iterable[str]) -> None: ...


@runtime_checkable
class Rated(Protocol):
    """An :class:`AdvisorySource` that also answers who else rates a vulnerability: the
    GitHub advisories that alias a CVE, and the CVE's records in the ``cve`` table (CVSS by
    CNA, NVD and ADP). Without it a finding is rated by its matched records only."""

    def ghsa_records(self, cve: str) -> Sequence[Mapping[str, Any]]: ...

    def cve_records(self, cve: str) -> Sequence[Mapping[str, Any]]: ...


@runtime_checkable
class Curated(Protocol):
    """An :class:`AdvisorySource` that also answers which modules and functions hold an
    advisory's vulnerable code, from the snapshot's curated ``reachability`` datasets
    (records keyed by advisory id; :mod:`appliance.match.pysymbols` reads them)."""

    def reach_records(self, ids: Iterable[str]) -> Sequence[Mapping[str, Any]]: ...


@dataclass(frozen=True, slots=True, order=True)
class Probe:
    """What the matcher compares one looked-up package key's records against: everything its
    decision on a record depends on besides the record itself. ``module`` is None when the
    release's feed does not name module streams, ``""`` for a non-modular package of a feed
    that does, else the package's ``name:stream``. :func:`appliance.match.matcher.record_outcome`
    answers for a record and a probe as the matcher would for that package."""

    ecosystem: str
    name: str  # normalized, as the match index keys records
    version: str  # the version records are compared with (a distribution's source version)
    distro: bool  # judged as a distribution package (status entries, fixed-version ranges)
    module: str | None = None


@runtime_checkable
class Probing(Protocol):
    """An :class:`AdvisorySource` that wants to know what each lookup was compared with (the
    incremental rescan indexes it, so a changed record re-gates only the images whose
    version it can affect)."""

    def probed(self, probes: Iterable[Probe]) -> None: ...


class MemoryAdvisories:
    """An :class:`AdvisorySource` over records in memory, indexed like ``knowledge.db``."""

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        kev: Iterable[Mapping[str, Any]] = (),
        epss: Iterable[Mapping[str, Any]] = (),
        cve: Iterable[Mapping[str, Any]] = (),
        reach: Iterable[Mapping[str, Any]] = (),
        snapshot: str | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._reach: dict[str, list[Mapping[str, Any]]] = {}
        for r in reach:
            self._reach.setdefault(str(r["id"]), []).append(r)
        self._index: dict[tuple[str, str], list[Advisory]] = {}
        self._aliases: dict[str, list[Mapping[str, Any]]] = {}
        for record in records:
            rid = str(record.get("id", ""))
            if rid.startswith("GHSA-"):
                for alias in record.get("aliases") or ():
                    self._aliases.setdefault(str(alias), []).append(record)
            # digests are computed here, once, as the knowledge store computes them at import
            advisory = Advisory(record, record_digest(record))
            seen: set[tuple[str, str]] = set()
            for entry in record.get("affected") or ():
                package = entry.get("package") if isinstance(entry, Mapping) else None
                if not isinstance(package, Mapping):
                    continue
                eco, name = package.get("ecosystem"), package.get("name")
                if isinstance(eco, str) and isinstance(name, str):
                    key = (eco, normalize_name(eco, name))
                    if key not in seen:
                        seen.add(key)
                        self._index.setdefault(key, []).append(advisory)
        self._ecosystems: frozenset[str] | None = None
        self._kev = {str(r["id"]): r for r in kev}
        self._epss = {str(r["id"]): r for r in epss}
        self._cve: dict[str, list[Mapping[str, Any]]] = {}
        for r in cve:
            self._cve.setdefault(str(r["id"]), []).append(r)
        for rows in self._aliases.values():
            rows.sort(key=lambda r: str(r["id"]))

    @property
    def snapshot(self) -> str | None:
        return self._snapshot

    def advisories(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        return self._index.get((ecosystem, normalize_name(ecosystem, name)), ())

    def kev(self, cve: str) -> Mapping[str, Any] | None:
        return self._kev.get(cve)

    def reach_records(self, ids: Iterable[str]) -> Sequence[Mapping[str, Any]]:
        return [r for i in sorted(set(ids)) for r in self._reach.get(i, ())]

    def epss(self, cve: str) -> Mapping[str, Any] | None:
        return self._epss.get(cve)

    def ghsa_records(self, cve: str) -> Sequence[Mapping[str, Any]]:
        return self._aliases.get(cve, ())

    def cve_records(self, cve: str) -> Sequence[Mapping[str, Any]]:
        return self._cve.get(cve, ())

    def ecosystems(self) -> frozenset[str] | None:
        if self._ecosystems is None:  # the index does not change: made once
            self._ecosystems = frozenset(eco for eco, _ in self._index)
        return self._ecosystems
