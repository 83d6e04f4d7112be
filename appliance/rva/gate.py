"""``gate``: scan an image, match it, merge VEX, evaluate the policy, and sign, attach and
record the Risk Verdict Attestation. The CLI (``stella gate``) and the TUI call this.

The steps that read the appliance's stores are here; the decision itself is
:func:`appliance.rva.evaluate.evaluate`, a pure function of :class:`GateInputs`, so a verdict
can be recomputed from its recorded inputs (replay) and tested without images or stores.

Policy choice: ``policy_dir`` when given; else the policy bundle carried in the active
knowledge snapshot (its first policy dataset by name); else the default policy that ships
with the appliance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from appliance import tlog
from appliance.faults import fault
from appliance.home import Home
from appliance.match.matcher import match
from appliance.match.model import FindingsReport, Inventory
from appliance.match.service import KnowledgeAdvisories, inventory_of, match_inventory
from appliance.match.source import AdvisorySource
from appliance.notation.service import sign_verdict
from appliance.policy.bundle import PolicyBundle, PolicyMode
from appliance.policy.engine import CompiledPolicy, engine_version
from appliance.policy.inputs import AttestationInfo, KnowledgeInfo
from appliance.rva.evaluate import GateInputs, SubjectInfo, Verdict, VerdictKind, evaluate
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.scanner.image import ImageRef, InputKind
from appliance.scanner.jobs import ScanBounds, ScanLimitError, StoppedScan, scan_bounded
from appliance.scanner.result import ScanResult
from appliance.scanner.service import ScanRecord, audit_scan, collection_paused
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import attach_attestation, attach_evidence, attestations
from appliance.store import has_knowledge, open_knowledge, open_state
from appliance.store.audit import AuditAction, AuditLog, os_actor
from appliance.store.db import Database
from appliance.store.knowledge import KnowledgeStore
from appliance.store.verdicts import VerdictRow, VerdictStore
from appliance.vex.model import VexStatement, format_time
from appliance.vex.service import snapshot_statements, stored_statements
from bundles import __version__, canonical
from bundles.digest import Digest
from bundles.errors import OCILayoutError, StellaError
from bundles.intoto import Statement, Subject
from bundles.oci import Descriptor, OCILayout
from bundles.signer import Signer
from bundles.snapshot import DatasetType
from bundles.tlog.note import Verifier

CYCLONEDX_PREDICATE: Final = "https://cyclonedx.org/bom"


class GateError(StellaError):
    """The gate cannot produce a verdict for this input."""


@dataclass(frozen=True, slots=True)
class GateResult:
    """A signed, attached and recorded verdict."""

    verdict: Verdict
    bundle: bytes  # the Sigstore bundle JSON (what ``--out`` writes)
    statement_digest: Digest
    referrer: Descriptor  # the RVA's referrer manifest in the OCI store
    evidence: Descriptor  # the evidence referrer manifest
    sbom_referrer: Descriptor | None
    audit_seq: int
    mode: PolicyMode

    @property
    def kind(self) -> VerdictKind:
        return self.verdict.verdict

    @property
    def exit_code(self) -> int:
        """0 PASS/PASS_WITH_EXCEPTIONS, 3 FAIL, 4 INDETERMINATE; always 0 in audit mode."""
        return 0 if self.mode is PolicyMode.AUDIT else self.kind.exit_code

    def summary(self) -> dict[str, object]:
        predicate = self.verdict.predicate
        return {
            "verdict": self.kind.value,
            "subject": predicate["subject"],
            "policy": predicate["policy"],
            "knowledgeSnapshot": predicate["knowledgeSnapshot"],
            "reasonCodes": predicate["reasonCodes"],
            "summary": predicate["summary"],
            "evaluationTime": predicate["evaluationTime"],
            "statement": str(self.statement_digest),
            "bundle": str(Digest.of_bytes(self.bundle)),
            "referrer": str(self.referrer.digest),
            "evidence": str(self.evidence.digest),
            "auditSeq": self.audit_seq,
        }


def subject_descriptor(home: Home, scan: ScanResult | StoppedScan) -> Descriptor:
    """The image manifest's descriptor, from the appliance store or the ``oci:`` layout the
    image was read from."""
    if scan.manifest_digest is None:
        raise GateError(
            f"image {scan.ref} has no manifest (a root file system): a verdict binds to a "
            "manifest digest",
            hint="load the image with 'stella images load' and gate it by name",
        )
    places = [home.oci]
    ref = ImageRef.parse(scan.ref)
    if ref.kind is InputKind.OCI:
        places.append(Path(ref.location))
    for place in places:
        if not (place / "oci-layout").is_file():
            continue
        try:
            return OCILayout.open(place).get_manifest(scan.manifest_digest).descriptor
        except OCILayoutError:
            continue
    raise GateError(
        f"the manifest {scan.manifest_digest} of {scan.ref} is not in an OCI layout here",
        hint="load the image into the store with 'stella images load' first",
    )


def _store_layout(home: Home) -> OCILayout:
    return OCILayout.init(home.oci, exist_ok=True)


def attestation_info(
    digest: str,
    predicate_type: str,
    bundle: sigstore.SigstoreBundle | None,
    logs: Sequence[Verifier] = (),
    trusted_witnesses: Sequence[Verifier] = (),
) -> AttestationInfo:
    """One attestation as the policy sees it. An entry that names one of ``logs`` (this
    appliance's transparency logs) counts as an inclusion proof only when it verifies."""
    proof, witnessed = (bundle.inclusion_proof, 0) if bundle else (False, 0)
    if bundle and any(tlog.is_own_log_entry(e, logs) for e in bundle.entries):
        check, witnessed, _ = tlog.check_bundle_entries(
            bundle.entries, bundle.envelope, logs, trusted_witnesses
        )
        proof = check is not None
    return AttestationInfo(
        predicate_type=predicate_type,
        digest=digest,
        signer=(bundle.key_hint if bundle else "") or "certificate",
        tlog_entries=bundle.tlog_entries if bundle else 0,
        inclusion_proof=proof,
        witnesses=witnessed,
    )


def attached_attestations(
    layout: OCILayout,
    subject: Digest,
    own_keyid: str,
    logs: Sequence[Verifier] = (),
    trusted_witnesses: Sequence[Verifier] = (),
) -> tuple[AttestationInfo, ...]:
    """Attestations others attached to the image, as the policy sees them. The appliance's
    own outputs (verdicts, SBOM attestations) are left out, so gating again does not change
    the inputs, and unread where their referrer says what they are (an image gated again and
    again holds one verdict and one SBOM attestation of the appliance per gate): verdicts by
    their predicate type annotation, the others by the signer annotation naming
    ``own_keyid`` (:data:`~appliance.sigstore.attach.ANNOTATION_SIGNER`). A referrer without
    it (attached before the appliance wrote it, or by others) is read, and passed over when
    its bundle's key hint is ``own_keyid`` (looked up without parsing the rest). Annotations
    and hint are taken at their word alike, unverified (nothing signs them): a referrer that
    claims to be the appliance's is left out as if it had not been attached, and none can
    hide another, whose manifest it cannot change."""
    out = []
    own = (own_keyid,) if own_keyid else ()
    for referrer, data in attestations(
        layout, subject, leave_out=(PREDICATE_TYPE,), leave_out_signers=own
    ):
        predicate_type = referrer.annotations.get("dev.sigstore.bundle.predicateType", "")
        if own_keyid and sigstore.key_hint(data) == own_keyid:
            continue
        try:
            bundle = sigstore.read(data, source=f"referrer {referrer.digest}")
        except StellaError:
            bundle = None
        out.append(
            attestation_info(str(referrer.digest), predicate_type, bundle, logs, trusted_witnesses)
        )
    return tuple(sorted(out))


def sign_and_log(
    home: Home, statements: Sequence[Statement], key: Signer, *, now: datetime | None = None
) -> list[bytes]:
    """Sign ``statements`` and append them to the appliance's transparency log in one durable
    append: the Sigstore bundles' JSON, each carrying its entry and inclusion proof under a
    checkpoint the log timestamps with ``now`` (the proof of when they were signed). Nothing
    is attached yet."""
    signed = [sigstore.sign(s, key) for s in statements]
    entries = tlog.log_envelopes(
        home, [b.envelope for b in signed], {key.keyid: key.public_key}, now=now
    )
    return [sigstore.with_entry(b, e).to_json() for b, e in zip(signed, entries, strict=True)]


def choose_policy(
    policy_dir: Path | None, store: KnowledgeStore | None, snapshot: Digest | None
) -> PolicyBundle:
    if policy_dir is not None:
        return PolicyBundle.from_directory(policy_dir)
    if store is not None and snapshot is not None:
        manifest = store.manifest(snapshot)
        for entry in manifest.datasets:
            if entry.type is DatasetType.POLICY:
                records = [
                    canonical.loads(line, source=f"dataset {entry.name}")
                    for line in store.dataset_lines(entry.digest)
                ]
                return PolicyBundle.from_records(records, source=f"snapshot dataset {entry.name}")
    return PolicyBundle.default()


@dataclass(frozen=True, slots=True)
class SnapshotReading:
    """What the active knowledge snapshot says of one scan: its findings and the vendor VEX
    statements it carries (with the records that could not be read as statements)."""

    snapshot: Digest
    info: KnowledgeInfo
    report: FindingsReport
    vendor: tuple[VexStatement, ...]
    problems: tuple[tuple[str, str], ...]  # (record id, why)


def read_snapshot(store: KnowledgeStore, scan: ScanResult | None) -> SnapshotReading | None:
    """Match ``scan`` against the active snapshot and read its vendor statements, as the gate
    does (no scan: a stopped one, whose packages are unknown, matches nothing); None when no
    snapshot is active."""
    snapshot = store.active()
    if snapshot is None:
        return None
    row = next(r for r in store.snapshots() if r.digest == snapshot)
    inventory = inventory_of(scan) if scan is not None else Inventory.of(())
    report = match_inventory(store, inventory, snapshot)
    vendor, problems = snapshot_statements(store, snapshot)
    return SnapshotReading(
        snapshot=snapshot,
        info=KnowledgeInfo(str(snapshot), f"{row.channel}/{row.sequence}", row.created),
        report=report,
        vendor=tuple(vendor),
        problems=tuple(problems),
    )


class GateSession:
    """What every image gated in one run shares, opened and read once: the knowledge store and
    its active snapshot (the vendor statements it carries, and one advisory cache that every
    image's match reads, so each package's records are parsed once per run), the stored VEX
    statements, the policy (compiled once), the OCI layout and the transparency logs trusted.
    ``stella gate`` opens one per image; ``stella rescan`` one per run. Close it (or use
    ``with``)."""

    def __init__(self, home: Home, *, policy_dir: Path | None = None) -> None:
        self.home = home
        self.statements: tuple[VexStatement, ...] = tuple(stored_statements(home))
        self.store: KnowledgeStore | None = None
        self.snapshot: Digest | None = None
        self.info: KnowledgeInfo | None = None
        self.vendor: tuple[VexStatement, ...] = ()
        self.problems: tuple[tuple[str, str], ...] = ()
        self.source: KnowledgeAdvisories | None = None
        if has_knowledge(home):
            self.store = open_knowledge(home)
        try:
            if self.store is not None:
                self.snapshot = self.store.active()
            if self.store is not None and self.snapshot is not None:
                snapshot = self.snapshot
                row = next(r for r in self.store.snapshots() if r.digest == snapshot)
                self.info = KnowledgeInfo(
                    str(snapshot), f"{row.channel}/{row.sequence}", row.created
                )
                vendor, problems = snapshot_statements(self.store, snapshot)
                self.vendor, self.problems = tuple(vendor), tuple(problems)
                self.source = KnowledgeAdvisories(self.store, snapshot)
            self.policy = choose_policy(policy_dir, self.store, self.snapshot)
            self.compiled = CompiledPolicy(self.policy)
        except BaseException:
            self.close()
            raise
        self.layout = _store_layout(home)
        self.own = home.public_key().keyid
        self.logs = tuple(tlog.trusted_logs(home))
        self.witnesses = tuple(tlog.witnesses(home))

    def close(self) -> None:
        compiled = getattr(self, "compiled", None)
        if compiled is not None:
            compiled.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> GateSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reading(
        self, scan: ScanResult | None, source: AdvisorySource | None = None
    ) -> SnapshotReading | None:
        """What the active snapshot says of ``scan`` (as :func:`read_snapshot`), matched
        through ``source`` (by default the session's shared advisory cache); no scan (a
        stopped one, whose packages are unknown) matches nothing."""
        if self.snapshot is None or self.info is None or self.source is None:
            return None
        inventory = inventory_of(scan) if scan is not None else Inventory.of(())
        with collection_paused():
            report = match(inventory, source or self.source)
        return SnapshotReading(
            snapshot=self.snapshot,
            info=self.info,
            report=report,
            vendor=self.vendor,
            problems=self.problems,
        )

    def prepare(
        self,
        scan: ScanResult | StoppedScan,
        *,
        at: datetime,
        source: AdvisorySource | None = None,
    ) -> tuple[GateInputs, Descriptor]:
        """Read everything the decision needs (steps 2 and 3 of the gate). A stopped scan
        gives no SBOM and no findings, and its bound is an input of the verdict."""
        scanned = scan if isinstance(scan, ScanResult) else None
        descriptor = subject_descriptor(self.home, scan)
        subject = SubjectInfo(
            name=scan.name,
            digest=str(descriptor.digest),
            media_type=descriptor.media_type,
            size=descriptor.size,
            platform=scan.platform or "",
            index_digest=str(scan.index_digest) if scan.index_digest else None,
        )
        statements: list[VexStatement] = list(self.statements)
        notes: list[tuple[str, str]] = [
            (f"file:{u.path}", u.reason) for u in (scanned.unknowns if scanned else ())
        ]
        reading = self.reading(scanned, source)
        if reading is not None:
            statements.extend(reading.vendor)
            notes.extend((f"openvex:{rid}", why) for rid, why in reading.problems)
        inputs = GateInputs(
            subject=subject,
            at=at,
            policy=self.policy,
            report=reading.report if reading else None,
            statements=tuple(statements),
            knowledge=reading.info if reading else None,
            sbom=scanned.sbom_bytes() if scanned else None,
            attestations=attached_attestations(
                self.layout, descriptor.digest, self.own, self.logs, self.witnesses
            ),
            notes=tuple(notes),
            image_names=tuple(n for n in (scan.tag or "",) if n),
            scan_limit=scan.to_dict() if isinstance(scan, StoppedScan) else None,
        )
        return inputs, descriptor

    def decide(
        self,
        scan: ScanResult | StoppedScan,
        *,
        at: datetime,
        source: AdvisorySource | None = None,
        record_scan: bool = False,
    ) -> Decided:
        """Prepare and evaluate one scanned image: its verdict, not yet signed or stored.
        With ``record_scan`` the scan's audit record is written with the verdict's (the scan
        was made with ``audit=False``)."""
        inputs, descriptor = self.prepare(scan, at=at, source=source)
        verdict = evaluate(inputs, self.compiled)
        recorded = scan if record_scan and isinstance(scan, ScanResult) else None
        return Decided(inputs, verdict, descriptor, recorded)


@dataclass(frozen=True, slots=True)
class Decided:
    """One image's verdict, decided and not yet signed, attached or recorded; ``scan`` is
    the scan it was decided from when its audit record is still to be written with the
    verdict's."""

    inputs: GateInputs
    verdict: Verdict
    descriptor: Descriptor
    scan: ScanResult | ScanRecord | None = None

    def portable(self) -> Decided:
        """This decision as another process hands it over to be signed, attached and
        recorded (appliance/rva/pool.py): what those steps read, and neither the findings,
        the VEX statements nor the scan it was decided from (the scan's audit record stands
        for the scan). Its verdict is final: the inputs left out are not evaluated again."""
        scan = ScanRecord.of(self.scan) if isinstance(self.scan, ScanResult) else self.scan
        inputs = dataclasses.replace(self.inputs, report=None, statements=())
        return Decided(inputs, self.verdict, self.descriptor, scan)


def prepare(
    home: Home, scan: ScanResult | StoppedScan, *, at: datetime, policy_dir: Path | None
) -> tuple[GateInputs, Descriptor]:
    """Read everything the decision needs from the stores (steps 2 and 3 of the gate). A
    stopped scan gives no SBOM and no findings, and its bound is an input of the verdict."""
    with GateSession(home, policy_dir=policy_dir) as session:
        return session.prepare(scan, at=at)


def sign_and_attach(
    home: Home,
    inputs: GateInputs,
    verdict: Verdict,
    descriptor: Descriptor,
    *,
    key: Signer,
    now: datetime,
    actor: str | None = None,
) -> GateResult:
    """Steps 5 and 6: sign the RVA (and the SBOM as a CycloneDX attestation), store both and
    the evidence as referrers of the image, index the verdict and append the audit record
    (naming ``actor``, by default the OS user running ``stella gate``)."""
    decided = Decided(inputs, verdict, descriptor)
    return sign_and_attach_many(home, [decided], key=key, now=now, actor=actor)[0]


Recorded = Callable[[Database, Decided, "GateResult"], None]


def sign_and_attach_many(
    home: Home,
    decided: Sequence[Decided],
    *,
    key: Signer,
    now: datetime,
    actor: str | None = None,
    layout: OCILayout | None = None,
    also: Recorded | None = None,
) -> list[GateResult]:
    """Steps 5 and 6 for several images at once, as :func:`sign_and_attach` for each: every
    statement signed, then put into the transparency log in one durable append (each entry
    with its own inclusion proof), every referrer attached with one ``index.json`` rewrite,
    then every verdict row with its audit record (and the scan's, for a :class:`Decided` that
    carries its scan; and what ``also`` writes) in one state transaction: a crash before it
    commits leaves none of these images recorded, after it all of them, never half an image.
    """
    if not decided:
        return []
    statements: list[Statement] = []
    places: list[tuple[int, int | None]] = []  # each image's RVA and SBOM statement
    for item in decided:
        subject = Subject.of(item.inputs.subject.name, item.descriptor.digest)
        rva = len(statements)
        # both predicates' canonical bytes are at hand (the verdict's, the scan's SBOM): each
        # statement's bytes are assembled around them, not serialized again
        predicate = item.verdict.predicate
        statements.append(
            Statement.of_canonical(
                (subject,), PREDICATE_TYPE, predicate, item.verdict.predicate_bytes
            )
        )
        sbom: int | None = None
        if item.inputs.sbom is not None:
            sbom = len(statements)
            # the scan's own canonical bytes, not a document from outside: signed as they are,
            # parsed only if the statement's predicate is read
            statements.append(
                Statement.of_canonical((subject,), CYCLONEDX_PREDICATE, None, item.inputs.sbom)
            )
        places.append((rva, sbom))
    bundles = sign_and_log(home, statements, key, now=now)  # logged before attached
    fault("gate.after-log")
    layout = layout if layout is not None else _store_layout(home)
    attached: list[tuple[int, Descriptor, Descriptor, Descriptor | None]] = []
    with layout.batch():
        for item, (rva, sbom) in zip(decided, places, strict=True):
            created = format_time(item.inputs.at)
            referrer = attach_attestation(
                layout, item.descriptor, bundles[rva], PREDICATE_TYPE, created, keyid=key.keyid
            )
            sign_verdict(home, layout, referrer, key, now)  # a Notary Project signature too
            fault("gate.after-attach")
            evidence = attach_evidence(layout, item.descriptor, item.verdict.evidence, created)
            sbom_referrer = None
            if sbom is not None:
                sbom_referrer = attach_attestation(
                    layout,
                    item.descriptor,
                    bundles[sbom],
                    CYCLONEDX_PREDICATE,
                    created,
                    keyid=key.keyid,
                )
            attached.append((rva, referrer, evidence, sbom_referrer))
    fault("gate.before-record")
    results: list[GateResult] = []
    with open_state(home) as db:
        verdicts, log = VerdictStore(db), AuditLog(db, key=key)
        with db.transaction("record verdicts"):  # the index rows and their audit records
            for item, (rva, referrer, evidence, sbom_referrer) in zip(
                decided, attached, strict=True
            ):
                if item.scan is not None:
                    audit_scan(log, item.scan, now)
                result = _record(
                    verdicts,
                    log,
                    item,
                    statements[rva],
                    bundles[rva],
                    referrer,
                    evidence,
                    sbom_referrer,
                    actor=actor,
                    now=now,
                )
                if also is not None:
                    also(db, item, result)
                results.append(result)
    fault("gate.after-record")
    return results


def _record(
    verdicts: VerdictStore,
    log: AuditLog,
    item: Decided,
    statement: Statement,
    bundle: bytes,
    referrer: Descriptor,
    evidence: Descriptor,
    sbom_referrer: Descriptor | None,
    *,
    actor: str | None,
    now: datetime,
) -> GateResult:
    """One verdict's audit record and index row (inside the caller's transaction)."""
    inputs, verdict, descriptor = item.inputs, item.verdict, item.descriptor
    predicate = verdict.predicate
    record = log.append(
        AuditAction.GATE,
        str(descriptor.digest),
        actor=actor or os_actor("gate"),
        time=now,
        inputs={
            "image": inputs.subject.name,
            "evaluationTime": predicate["evaluationTime"],
            "policy": predicate["policy"],
            "knowledgeSnapshot": predicate["knowledgeSnapshot"],
            "evidence": predicate["evidence"],
        },
        versions={"stella": __version__, "policyEngine": engine_version()},
        result={
            "verdict": verdict.verdict.value,
            "reasonCodes": predicate["reasonCodes"],
            "statement": str(statement.digest()),
            "referrer": str(referrer.digest),
            "tlog": _logged(bundle),
        },
        rule_digest=str(inputs.policy.digest),
    )
    snapshot = predicate["knowledgeSnapshot"]
    verdicts.add(
        VerdictRow(
            subject=str(descriptor.digest),
            name=inputs.subject.name,
            verdict=verdict.verdict.value,
            evaluation_time=predicate["evaluationTime"],
            policy=str(inputs.policy.digest),
            snapshot=snapshot["digest"] if snapshot else None,
            predicate=str(Digest.of_bytes(verdict.predicate_bytes)),
            bundle=str(Digest.of_bytes(bundle)),
            referrer=str(referrer.digest),
            reason_codes=tuple(predicate["reasonCodes"]),
            audit_seq=record.seq,
        )
    )
    return GateResult(
        verdict=verdict,
        bundle=bundle,
        statement_digest=statement.digest(),
        referrer=referrer,
        evidence=evidence,
        sbom_referrer=sbom_referrer,
        audit_seq=record.seq,
        mode=inputs.policy.mode,
    )


def _logged(bundle: bytes) -> dict[str, object]:
    """Where the verdict is in the transparency log, for its audit record: the signed audit
    chain so vouches for the log an audit package names."""
    (entry,) = sigstore.read(bundle).entries
    return {"logIndex": int(entry["logIndex"]), "logId": entry["logId"]["keyId"]}


def gate(
    home: Home,
    image_ref: str,
    *,
    at: datetime,
    policy_dir: Path | None = None,
    platform: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    actor: str | None = None,
    bounds: ScanBounds | None = None,
) -> GateResult:
    """Scan, match, merge VEX, evaluate, sign, attach and record (docs/rva.md).

    ``at`` is the evaluation time recorded in the verdict; ``now`` gives the audit records'
    time only, so the predicate never depends on the wall clock. ``actor`` is who the gate's
    audit record names (the operators' console passes its own). The scan runs as a bounded
    job (``bounds``, by default the home's); one stopped by its bound gives a signed
    INDETERMINATE verdict with ``RISK.UNKNOWN.SCAN_LIMIT``.
    """
    home.require()
    if at.tzinfo is None or at.utcoffset() is None:
        raise GateError(f"evaluation time {at.isoformat()} has no time zone")
    key = home.signing_key(at=at, now=now())
    if policy_dir is not None:  # a bad bundle is refused before the scan records anything
        PolicyBundle.from_directory(policy_dir)
    scan: ScanResult | StoppedScan
    try:
        scan = scan_bounded(home, image_ref, platform=platform, bounds=bounds, now=now)
    except ScanLimitError as e:
        scan = e.stopped
    fault("gate.after-scan")
    with GateSession(home, policy_dir=policy_dir) as session:
        decided = session.decide(scan, at=at)
        (result,) = sign_and_attach_many(
            home, [decided], key=key, now=now(), actor=actor, layout=session.layout
        )
    return result
