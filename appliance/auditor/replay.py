"""Re-run a verdict's evaluation from the inputs it pins, and compare predicates byte for byte.

The inputs come from the local stores, chosen by the digests in the signed predicate, never
by "what is current": the image by manifest digest (re-scanned for the inventory the matcher
needs), the knowledge snapshot by digest (old snapshots are retained for this), the policy
bundle by digest (the shipped default, a policy dataset of a retained snapshot, or a
directory given), and the SBOM and VEX statements from the evidence blobs the verdict cites.
The evaluation time is the recorded ``evaluationTime``. The result is MATCH when the
re-computed predicate is byte-identical to the signed one, else DIFF with every differing
field. A pinned input that is missing is an error naming its digest and where it would come
from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance.auditor.errors import ReplayInputMissingError
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import RvaVerification, SignedAt, verify_rva
from appliance.home import Home
from appliance.match.model import Inventory
from appliance.match.service import inventory_of, match_inventory
from appliance.policy.bundle import PolicyBundle
from appliance.policy.inputs import KnowledgeInfo
from appliance.rva.evaluate import GateInputs, SubjectInfo, evaluate
from appliance.rva.gate import attached_attestations
from appliance.scanner.image import ImageRef, open_image
from appliance.scanner.jobs import scan_bounded
from appliance.store import has_state, known_logs, open_knowledge_if_any, open_state
from appliance.store.audit import AuditAction, AuditLog
from appliance.store.knowledge import KnowledgeStore
from appliance.vex.model import VexStatement
from appliance.vex.service import snapshot_statements
from bundles import canonical, rfc3339
from bundles.digest import Digest
from bundles.errors import OCILayoutError
from bundles.oci import ImageIndex, OCILayout
from bundles.snapshot import DatasetType


class ReplayOutcome(StrEnum):
    MATCH = "MATCH"
    DIFF = "DIFF"


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One differing field; ``path`` is a JSON-pointer-like path (``/summary/affected``).
    A side that lacks the field holds None and ``missing`` names it."""

    path: str
    recorded: Any
    replayed: Any
    missing: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "recorded": self.recorded,
            "replayed": self.replayed,
            **({"missing": self.missing} if self.missing else {}),
        }


@dataclass(frozen=True, slots=True)
class ReplayResult:
    outcome: ReplayOutcome
    recorded: Digest  # digest of the signed predicate's canonical bytes
    replayed: Digest
    diffs: tuple[FieldDiff, ...]
    inputs: Mapping[str, Any]
    signed_at: SignedAt | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.outcome.value,
            "recordedPredicate": str(self.recorded),
            "replayedPredicate": str(self.replayed),
            "diffs": [d.to_dict() for d in self.diffs],
            "inputs": dict(self.inputs),
            "signingTime": self.signed_at.to_dict() if self.signed_at else None,
        }


def diff(recorded: Any, replayed: Any, path: str = "") -> Iterator[FieldDiff]:
    """Field-level differences between two JSON values, in document order."""
    if isinstance(recorded, Mapping) and isinstance(replayed, Mapping):
        for key in sorted(set(recorded) | set(replayed)):
            where = f"{path}/{key}"
            if key not in replayed:
                yield FieldDiff(where, recorded[key], None, "replayed")
            elif key not in recorded:
                yield FieldDiff(where, None, replayed[key], "recorded")
            else:
                yield from diff(recorded[key], replayed[key], where)
    elif isinstance(recorded, list) and isinstance(replayed, list):
        for i in range(max(len(recorded), len(replayed))):
            where = f"{path}/{i}"
            if i >= len(replayed):
                yield FieldDiff(where, recorded[i], None, "replayed")
            elif i >= len(recorded):
                yield FieldDiff(where, None, replayed[i], "recorded")
            else:
                yield from diff(recorded[i], replayed[i], where)
    elif recorded != replayed or type(recorded) is not type(replayed):
        yield FieldDiff(path or "/", recorded, replayed)


def _pinned_blob(layout: OCILayout, predicate: Mapping[str, Any], role: str) -> bytes | None:
    ref = predicate["evidence"].get(role)
    if ref is None:
        return None
    digest = Digest.parse(ref["digest"])
    if not layout.has_blob(digest):
        raise ReplayInputMissingError(
            f"the {role} evidence {digest} pinned in the verdict is not in the OCI store "
            f"{layout.path}",
            hint="import the audit package or images bundle that carries the verdict's "
            "evidence, or restore the store",
        )
    return layout.read_blob(digest)


def _scan_limit(policy_input: bytes | None) -> dict[str, Any] | None:
    """The bound that stopped the gate's scan, as its recorded policy input says (absent
    for every scan that finished)."""
    if policy_input is None:
        return None
    doc = canonical.loads(policy_input, source="policyInput evidence")
    found = doc.get("scanLimit") if isinstance(doc, dict) else None
    return found if isinstance(found, dict) else None


def _image_ref(layout: OCILayout, name: str, digest: Digest) -> str:
    """A store reference for the image: a tag of this name that still points at the manifest
    (or at an index holding it), as the gate saw it; else ``NAME@DIGEST``."""
    for tag, descriptor in sorted(layout.tags().items()):
        if tag.rpartition(":")[0] != name and tag != name:
            continue
        if descriptor.digest == digest:
            return tag
        try:
            for stored in layout.walk(descriptor):
                if isinstance(stored.manifest, ImageIndex) and any(
                    c.digest == digest for c in stored.manifest.manifests
                ):
                    return tag
        except OCILayoutError:
            continue
    return f"{name}@{digest}"


def _bundle_of(home: Home, snapshot: str) -> str:
    """The knowledge bundle that delivered ``snapshot``, from the audit log's import records."""
    if not has_state(home):
        return ""
    with open_state(home) as db:
        for record in AuditLog(db).records(action=AuditAction.IMPORT.value):
            if record.inputs.get("snapshot") == snapshot:
                return str(record.inputs.get("bundle", ""))
    return ""


def _policies(store: KnowledgeStore, first: Digest) -> Iterator[PolicyBundle]:
    """Policy bundles carried by the pinned snapshot, then by every other retained one."""
    seen: set[Digest] = set()
    order = [first, *(r.digest for r in store.snapshots() if r.digest != first)]
    for snap in order:
        for entry in store.manifest(snap).datasets:
            if entry.type is not DatasetType.POLICY or entry.digest in seen:
                continue
            seen.add(entry.digest)
            records = [
                canonical.loads(line, source=f"dataset {entry.name}")
                for line in store.dataset_lines(entry.digest)
            ]
            yield PolicyBundle.from_records(records, source=f"snapshot dataset {entry.name}")


def find_policy(
    pinned: Mapping[str, Any],
    store: KnowledgeStore | None,
    snapshot: Digest | None,
    policy_dir: Path | None,
) -> PolicyBundle:
    want = pinned["digest"]
    candidates: list[PolicyBundle] = []
    if policy_dir is not None:
        candidates.append(PolicyBundle.from_directory(policy_dir))
    candidates.append(PolicyBundle.default())
    for bundle in candidates:
        if str(bundle.digest) == want:
            return bundle
    if store is not None and snapshot is not None:
        for bundle in _policies(store, snapshot):
            if str(bundle.digest) == want:
                return bundle
    raise ReplayInputMissingError(
        f"policy {pinned['id']} {pinned['version']} ({want}) pinned in the verdict is not "
        "available: it is not the shipped default policy"
        + (f", not {policy_dir}" if policy_dir else "")
        + " and not carried by any retained knowledge snapshot",
        hint="pass the policy bundle directory the verdict was made with (--policy DIR), or "
        "import the knowledge bundle that carried it",
    )


def replay(
    home: Home,
    data: bytes,
    policy: TrustPolicy,
    *,
    source: str = "RVA",
    policy_dir: Path | None = None,
) -> ReplayResult:
    """Verify the verdict in ``data``, re-evaluate it from its pinned inputs and compare."""
    home.require()
    checked: RvaVerification = verify_rva(data, policy, source=source, logs=known_logs(home))
    predicate = checked.predicate
    recorded_bytes = canonical.dumps(dict(checked.statement.to_dict()["predicate"]))
    layout = OCILayout.open(home.oci)
    subject = predicate["subject"]
    digest = Digest.parse(subject["digest"])
    try:
        descriptor = layout.get_manifest(digest).descriptor
    except OCILayoutError as e:
        raise ReplayInputMissingError(
            f"image {subject['name']} ({digest}) pinned in the verdict is not in the OCI "
            f"store {layout.path}",
            hint="load the image again ('stella images load', or import the images bundle "
            "that carried it)",
        ) from e
    sbom = _pinned_blob(layout, predicate, "sbom")
    vex_blob = _pinned_blob(layout, predicate, "vexBundle")
    statements: list[VexStatement] = []
    if vex_blob is not None:
        doc = canonical.loads(vex_blob, source="vexBundle evidence")
        statements = [VexStatement.from_dict(s) for s in doc["statements"]]

    ref = _image_ref(layout, subject["name"], digest)
    platform = subject.get("platform") or None
    scan_limit = _scan_limit(_pinned_blob(layout, predicate, "policyInput"))
    if scan_limit is None:  # re-scanned within the home's bounds, as the gate scans
        scan = scan_bounded(home, ref, platform=platform, audit=False)
        inventory, notes = inventory_of(scan), [(f"file:{u.path}", u.reason) for u in scan.unknowns]
        seen, sbom_digest = (scan.platform, scan.index_digest, scan.tag), str(scan.sbom_digest())
    else:  # the gate's scan was stopped by its bound: that, not a scan, is the pinned input
        image = open_image(ImageRef.parse(ref), store=home.oci, platform=platform)
        inventory, notes = Inventory.of(()), []
        seen = (str(image.platform) if image.platform else None, image.index_digest, image.tag)
        sbom_digest = None
    scanned_platform, index_digest, tag = seen
    pinned_snapshot = predicate["knowledgeSnapshot"]
    store = open_knowledge_if_any(home)
    try:
        snapshot = Digest.parse(pinned_snapshot["digest"]) if pinned_snapshot else None
        knowledge, report = None, None
        if snapshot is not None:
            if store is None or not store.has_snapshot(snapshot):
                bundle = _bundle_of(home, str(snapshot)) or f"of snapshot {pinned_snapshot['id']}"
                raise ReplayInputMissingError(
                    f"knowledge snapshot {pinned_snapshot['id']} ({snapshot}) pinned in the "
                    f"verdict is not in the knowledge store "
                    f"{store.db.where if store is not None else home.knowledge_db}",
                    hint=f"import the knowledge bundle {bundle} "
                    "that delivered it (snapshots are retained for replay unless pruned)",
                )
            knowledge = KnowledgeInfo(
                str(snapshot), pinned_snapshot["id"], pinned_snapshot["created"]
            )
            report = match_inventory(store, inventory, snapshot)
            _, problems = snapshot_statements(store, snapshot)
            notes.extend((f"openvex:{rid}", why) for rid, why in problems)
        bundle_policy = find_policy(predicate["policy"], store, snapshot, policy_dir)
    finally:
        if store is not None:
            store.close()
    at = rfc3339.parse_time(predicate["evaluationTime"], where="predicate.evaluationTime")
    inputs = GateInputs(
        subject=SubjectInfo(
            name=subject["name"],
            digest=str(digest),
            media_type=descriptor.media_type,
            size=descriptor.size,
            platform=scanned_platform or "",
            index_digest=str(index_digest) if index_digest else None,
        ),
        at=at,
        policy=bundle_policy,
        report=report,
        statements=tuple(statements),
        knowledge=knowledge,
        sbom=sbom,
        attestations=attached_attestations(layout, digest, checked.keyid),
        notes=tuple(notes),
        image_names=tuple(n for n in (tag or "",) if n),
        scan_limit=scan_limit,
    )
    verdict = evaluate(inputs)
    replayed_bytes = verdict.predicate_bytes
    recorded_doc = canonical.loads(recorded_bytes)
    diffs = tuple(diff(recorded_doc, canonical.loads(replayed_bytes)))
    outcome = (
        ReplayOutcome.MATCH
        if replayed_bytes == recorded_bytes and not diffs
        else ReplayOutcome.DIFF
    )
    return ReplayResult(
        signed_at=checked.signed_at,
        outcome=outcome,
        recorded=Digest.of_bytes(recorded_bytes),
        replayed=Digest.of_bytes(replayed_bytes),
        diffs=diffs,
        inputs={
            "image": ref,
            "subject": str(digest),
            "evaluationTime": predicate["evaluationTime"],
            "knowledgeSnapshot": str(snapshot) if snapshot else None,
            "policy": str(bundle_policy.digest),
            "policySource": bundle_policy.source,
            "sbom": predicate["evidence"]["sbom"]["digest"] if sbom is not None else None,
            "vexStatements": len(statements),
            "rescannedSbom": sbom_digest,
            **({"scanLimit": scan_limit} if scan_limit is not None else {}),
        },
    )
