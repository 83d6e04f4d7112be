"""``stella gc``: delete blobs of the OCI store that nothing references.

What is kept (the roots, and everything reachable from them: a manifest's config and layers,
an index's children):

- every ``index.json`` entry: tags, and referrers (RVAs, SBOM attestations, evidence, VEX),
  which the store records as untagged entries so they outlive their subject's tag;
- every digest the verdict store names (subject, Sigstore bundle, referrer manifest) and every
  digest cited inside a verdict's signed statement (its evidence: SBOM, VEX, findings...);
- every digest cited anywhere in an audit record (subject, inputs, result, rule digest), so an
  audited decision can always be re-examined against the exact bytes it was made on;
- blobs younger than ``grace`` (an upload to ``stella serve`` whose manifest has not arrived
  yet must not be collected under it).

Temporary files in ``.stella/tmp`` whose writer was killed (its lock is free) are removed
whatever their age; a live writer's are never touched; files of no known writer go once older
than ``grace``.

The sweep runs under the store's ``index.json`` lock, so no tag or referrer can be added while
the set of roots is computed and blobs are deleted. A dry run lists what would go and deletes
nothing; a real run is recorded in the audit log, naming every blob it deleted (a blob that
arrives again later with one of those digests is then pinned by that record: kept, the safe
side).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from appliance.home import Home
from appliance.store import has_state, open_state, record_decision
from appliance.store.audit import AuditAction, AuditLog
from appliance.store.verdicts import VerdictStore
from bundles import canonical
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, DigestError, OCILayoutError, SizeLimitError
from bundles.files import exclusive_lock
from bundles.oci import OCILayout, parse_manifest
from bundles.oci.manifest import MAX_MANIFEST_SIZE, ManifestError

DEFAULT_GRACE: Final = 3600.0  # seconds
_DIGEST_TEXT: Final = re.compile(r"sha256:[0-9a-f]{64}")
_BUNDLE_LIMIT: Final = 64 << 20


@dataclass(frozen=True, slots=True)
class Collected:
    """One blob that was (or, in a dry run, would be) deleted."""

    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class GcReport:
    dry_run: bool
    examined: int
    kept: int
    removed: tuple[Collected, ...]
    young: int  # unreferenced but within the grace period
    temporary_files: int  # stale files left in .stella/tmp by interrupted writers

    @property
    def bytes_freed(self) -> int:
        return sum(c.size for c in self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "examined": self.examined,
            "kept": self.kept,
            "removed": [{"digest": str(c.digest), "size": c.size} for c in self.removed],
            "bytesFreed": self.bytes_freed,
            "keptYoung": self.young,
            "temporaryFiles": self.temporary_files,
        }


def cited_digests(text: str) -> set[Digest]:
    """Every ``sha256:<hex>`` written in ``text``."""
    return {Digest.parse(m) for m in _DIGEST_TEXT.findall(text)}


def _statement_digests(layout: OCILayout, bundle: Digest) -> set[Digest]:
    """Digests cited by the in-toto statement inside a stored Sigstore bundle (its payload),
    read without trusting it: it only ever adds roots, never removes them."""
    if not layout.has_blob(bundle):
        return set()
    try:
        doc = json.loads(layout.read_blob(bundle, limit=_BUNDLE_LIMIT))
        payload = base64.b64decode(doc["dsseEnvelope"]["payload"], validate=True)
        return cited_digests(payload.decode("utf-8"))
    except (
        ValueError,
        KeyError,
        TypeError,
        binascii.Error,
        OCILayoutError,
        SizeLimitError,
        DigestError,
    ):
        return set()


def pinned(home: Home, layout: OCILayout) -> set[Digest]:
    """Digests the verdict store and the audit log reference."""
    found: set[Digest] = set()
    if not has_state(home):
        return found
    with open_state(home) as db:
        for row in VerdictStore(db).history():
            for text in (row.subject, row.bundle, row.referrer, row.policy, row.snapshot or ""):
                found |= cited_digests(text)
            found |= _statement_digests(layout, Digest.parse(row.bundle))
        for record in AuditLog(db).records():
            found |= cited_digests(canonical.dumps(record.to_dict()).decode("utf-8"))
    return found


def _closure(layout: OCILayout, roots: set[Digest]) -> set[Digest]:
    """``roots`` and every blob a manifest or index among them (transitively) names. Blobs
    that are not manifests are leaves; absent blobs are skipped."""
    keep: set[Digest] = set()
    stack = list(roots)
    while stack:
        digest = stack.pop()
        if digest in keep:
            continue
        keep.add(digest)
        if not layout.has_blob(digest) or layout.blob_size(digest) > MAX_MANIFEST_SIZE:
            continue
        try:
            raw = layout.read_blob(digest, limit=MAX_MANIFEST_SIZE)
            if not raw.lstrip().startswith(b"{"):
                continue
            manifest = parse_manifest(raw, source=f"blob {digest}")
        except (ManifestError, CanonicalJSONError, OCILayoutError, SizeLimitError, DigestError):
            continue
        stack.extend(child.digest for child in manifest.children())
    return keep


def collect(
    home: Home,
    *,
    dry_run: bool = False,
    grace: float = DEFAULT_GRACE,
    now: datetime | None = None,
) -> GcReport:
    """Sweep the home's OCI store; see the module docstring for what is kept."""
    home.require()
    if not (home.oci / "oci-layout").is_file():
        return GcReport(dry_run, 0, 0, (), 0, 0)
    layout = OCILayout.open(home.oci)
    pins = pinned(home, layout)
    cutoff = time.time() - grace
    removed: list[Collected] = []
    examined = young = stale = 0
    (layout.path / ".stella").mkdir(exist_ok=True)
    with exclusive_lock(layout.path / ".stella" / "lock"):
        roots = {entry.digest for entry in layout.entries()} | pins
        keep = _closure(layout, roots)
        blobs_dir = layout.path / "blobs" / "sha256"
        for path in sorted(blobs_dir.iterdir()) if blobs_dir.is_dir() else []:
            try:
                digest = Digest(path.name)
            except DigestError:
                continue  # not a blob this code wrote; verify() reports it
            examined += 1
            if digest in keep:
                continue
            stat = path.stat()
            if stat.st_mtime > cutoff:
                young += 1
                continue
            removed.append(Collected(digest, stat.st_size))
            if not dry_run:
                path.unlink(missing_ok=True)
        swept = layout.leftovers(remove=not dry_run, unowned_age=grace)
        stale = sum(1 for f in swept if not f.lock)
    report = GcReport(
        dry_run=dry_run,
        examined=examined,
        kept=examined - len(removed) - young,
        removed=tuple(removed),
        young=young,
        temporary_files=stale,
    )
    if not dry_run and (removed or stale):
        record_decision(
            home,
            AuditAction.GC,
            str(Digest.of_bytes(canonical.dumps([str(c.digest) for c in removed]))),
            command="gc",
            time=now or datetime.now(UTC),
            inputs={"graceSeconds": grace, "pinned": len(pins)},
            result={
                "removed": [str(c.digest) for c in removed],
                "bytesFreed": report.bytes_freed,
                "temporaryFiles": stale,
            },
        )
    return report
