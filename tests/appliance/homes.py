"""The small world many appliance tests share: an image with requests 2.19.0 in site-packages,
the real-shaped advisory that affects it (PYSEC-2018-0001 / CVE-2018-18074, critical), its KEV
entry, and a snapshot holding them installed the way an import would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from appliance.home import Home
from appliance.store import open_knowledge
from appliance.store.knowledge import install_snapshot
from bundles.digest import Digest
from bundles.snapshot import DatasetType, build_dataset

SITE = "usr/local/lib/python3.11/site-packages"
CVE = "CVE-2018-18074"
OSV: dict[str, Any] = {
    "id": "PYSEC-2018-0001",
    "aliases": [CVE],
    "modified": "2026-01-01T00:00:00Z",
    "summary": "requests sends credentials on redirect",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}
#: The same advisory without a CVSS vector: its severity is unknown, so the default policy alone
#: does not fail the image (a KEV entry or a reachable critical does).
OSV_UNRATED: dict[str, Any] = {k: v for k, v in OSV.items() if k != "severity"}
KEV: dict[str, Any] = {"id": CVE, "cveID": CVE, "dateAdded": "2026-01-02"}


def install_knowledge(
    home: Home,
    *,
    osv: Sequence[Mapping[str, Any]] = (OSV,),
    kev: Sequence[Mapping[str, Any]] = (),
    reach: Sequence[Mapping[str, Any]] = (),
    sequence: int = 1,
    created: str = "2026-11-20T00:00:00Z",
    imported: str | None = None,
    bundle: Digest | None = None,
) -> Digest:
    """Install and activate a snapshot of ``osv`` (and ``kev``, and curated ``reach``
    records) in ``home``'s knowledge store."""
    parts = [build_dataset("osv-pypi", DatasetType.OSV, osv)]
    if kev:
        parts.append(build_dataset("kev", DatasetType.KEV, kev))
    if reach:
        parts.append(build_dataset("reachability-pypi", DatasetType.REACHABILITY, reach))
    store = open_knowledge(home)
    try:
        return install_snapshot(
            store,
            parts,
            sequence=sequence,
            channel="stable",
            created=created,
            imported=imported,
            bundle=bundle or Digest.of_bytes(b"bundle"),
        )
    finally:
        store.close()
