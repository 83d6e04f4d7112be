"""The operators' console over one appliance home: what the terminal UI reads and changes.

Nothing here decides anything new: findings are the matcher's, merged with VEX as the gate
merges them; a triage is :func:`appliance.vex.service.add` followed by
:func:`appliance.rva.gate.gate`, a revocation :func:`appliance.vex.service.revoke` followed by
the same gate; an import is :class:`appliance.intake.importer.Importer` under the
import lock every importer takes. The values it answers with are in
:mod:`appliance.console.views`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from appliance.auditor.package import export_package
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import attached_verdicts, verify_in_home
from appliance.console.views import (
    AUDIT_PAGE,
    EXPIRING_DAYS,
    SEVERITY_ORDER,
    Advisory,
    AuditCheck,
    AuditEntry,
    AuditPage,
    ConsoleError,
    Dashboard,
    ExpiringException,
    ExportedPackage,
    FeedFreshness,
    FindingRow,
    ImageFindings,
    ImageRow,
    ImportEvent,
    ImportOutcome,
    ImportStep,
    InboxEntry,
    NoDistroData,
    QuarantinedBundle,
    RevokeRequest,
    SeverityCount,
    SnapshotInfo,
    TriageRequest,
    TriageResult,
    VerdictChange,
    VerdictCheck,
    VerdictView,
    VexEntry,
)
from appliance.home import Home
from appliance.imagestore.catalog import ImageSummary, list_images
from appliance.intake.importer import Importer, ImportRefusedError
from appliance.intake.inbox import DEFAULT_SETTLE, WAITING_SUFFIX, ImportLock, scan_inbox
from appliance.keyring import load_ring
from appliance.match.model import UnknownKind
from appliance.rva.gate import gate, prepare
from appliance.rva.reader import read_verdict
from appliance.scanner.jobs import scan_bounded
from appliance.store import has_knowledge, open_knowledge, open_state
from appliance.store.audit import AuditLog, AuditRecord, os_actor
from appliance.store.knowledge import KnowledgeStore
from appliance.store.verdicts import VerdictRow, VerdictStore
from appliance.vex import service as vex_service
from appliance.vex.merge import merge
from appliance.vex.model import VexStatement, VexStatus, format_time
from appliance.vex.products import ImageIdentity
from bundles import canonical, rfc3339
from bundles.digest import Digest
from bundles.errors import StellaError
from bundles.oci import OCILayout
from bundles.oci.manifest import MAX_MANIFEST_SIZE, parse_manifest
from bundles.oci.mediatypes import INDEX_TYPES
from bundles.parts import PartsIncompleteError
from bundles.snapshot import DatasetEntry, DatasetType


def _now() -> datetime:
    return datetime.now(UTC)


def _days(created: str, at: datetime) -> int:
    return int(
        (at - rfc3339.parse_time(created, where="snapshot created")).total_seconds() // 86400
    )


_DATE_FIELDS: Final = (b'"modified":"', b'"published":"', b'"dateAdded":"')
_META_DATES: Final = ("dateReleased", "score_date")


def _newest_date(entry: DatasetEntry, store: KnowledgeStore) -> str | None:
    """The newest date a dataset's records carry: the catalog's or score file's own date
    when its manifest entry states one, else the latest ``modified`` (or ``published``,
    ``dateAdded``) of its records, found by a byte search of each canonical line (no record
    is parsed)."""
    for key in _META_DATES:
        if entry.meta.get(key):
            return entry.meta[key][:10]
    if entry.type not in (DatasetType.OSV, DatasetType.KEV, DatasetType.CVE):
        return None
    newest = b""
    for line in store.dataset_lines(entry.digest):
        for field in _DATE_FIELDS:
            at = line.find(field)
            if at >= 0:
                value = line[at + len(field) : at + len(field) + 10]
                newest = max(newest, value)
                break
    return newest.decode("ascii", "replace") or None


def _brief(result: Mapping[str, Any]) -> str:
    """An audit record's result in one line, for lists."""
    text = canonical.dumps(dict(result)).decode("utf-8")
    return text if len(text) <= 200 else text[:199] + "…"


# ---------------------------------------------------------------- the real service


class HomeConsole:
    """The :class:`Console` over one appliance home. ``clock`` gives every time it records or
    evaluates at (fixed in tests); ``settle`` is how long an inbox file must have been left
    unchanged (by the file system's clock) before it can be imported, as for the inbox
    service; ``actor`` is who the audit log and the signed statements name for the
    operator's changes (default: the OS user, ``alice (stella tui)``)."""

    def __init__(
        self,
        home: Home,
        *,
        clock: Callable[[], datetime] = _now,
        settle: float = DEFAULT_SETTLE,
        actor: str | None = None,
    ) -> None:
        self.home = home.require()
        self._clock = clock
        self._settle = settle
        self.actor = actor or os_actor("tui")
        self._newest: dict[str, str | None] = {}  # dataset digest -> its newest record's date

    def now(self) -> datetime:
        return self._clock()

    # -- reading ---------------------------------------------------------------------------

    def _snapshot(self) -> SnapshotInfo | None:
        if not has_knowledge(self.home):
            return None
        store = open_knowledge(self.home)
        try:
            row = next((r for r in store.snapshots() if r.active), None)
            if row is None:
                return None
            counts = store.counts(row.digest)
        finally:
            store.close()
        return SnapshotInfo(
            digest=str(row.digest),
            channel=row.channel,
            sequence=row.sequence,
            created=row.created,
            imported=row.imported,
            age_days=_days(row.created, self.now()),
            counts=tuple(sorted(counts.items())),
        )

    def _verdicts(self) -> dict[str, VerdictRow]:
        """The latest verdict per subject digest."""
        with open_state(self.home) as db:
            history = VerdictStore(db).history()
        return {row.subject: row for row in history}

    def _verdict_of(
        self, image: ImageSummary, latest: Mapping[str, VerdictRow]
    ) -> VerdictRow | None:
        """The newest verdict about the image a tag names now: by its digest or, for an index
        (gated through one of its platform manifests), by the newest of its manifests'."""
        row = latest.get(str(image.digest))
        if row is not None or image.media_type not in INDEX_TYPES:
            return row
        try:
            layout = OCILayout.open(self.home.oci)
            parsed = parse_manifest(layout.read_blob(image.digest, limit=MAX_MANIFEST_SIZE))
        except StellaError:
            return None
        rows = [r for c in parsed.children() if (r := latest.get(str(c.digest))) is not None]
        return max(rows, key=lambda r: r.audit_seq, default=None)

    def _predicate(self, row: VerdictRow) -> tuple[Mapping[str, Any], str]:
        layout = OCILayout.open(self.home.oci)
        data = layout.read_blob(Digest.parse(row.bundle))
        keys = [e.key for e in load_ring(self.home).entries]
        signed = read_verdict(data, keys, source=f"verdict {row.bundle}")
        return signed.predicate, signed.keyid

    def _evidence(self, predicate: Mapping[str, Any], role: str) -> Any:
        ref = (predicate.get("evidence") or {}).get(role)
        if not ref:
            return None
        layout = OCILayout.open(self.home.oci)
        return canonical.loads(layout.read_blob(Digest.parse(ref["digest"])), source=role)

    def _last(self, action: str, subject: str) -> str | None:
        with open_state(self.home) as db:
            found = AuditLog(db).records(action=action, subject=subject, limit=1)
        return found[0].time if found else None

    def images(self) -> tuple[ImageRow, ...]:
        latest = self._verdicts()
        rows = []
        for image in sorted(list_images(self.home), key=lambda i: i.tag):
            verdict = self._verdict_of(image, latest)
            severities: tuple[tuple[str, int], ...] = ()
            snapshot = None
            if verdict is not None:
                predicate, _ = self._predicate(verdict)
                by = predicate["summary"]["bySeverity"]
                severities = tuple((s.value, int(by.get(s.value, 0))) for s in SEVERITY_ORDER)
                knowledge = predicate.get("knowledgeSnapshot")
                snapshot = knowledge["id"] if knowledge else None
            subject = verdict.subject if verdict else str(image.digest)
            rows.append(
                ImageRow(
                    name=image.tag,
                    digest=subject,
                    verdict=verdict.verdict if verdict else None,
                    severities=severities,
                    last_scan=self._last("scan", subject),
                    last_gate=verdict.evaluation_time if verdict else None,
                    snapshot=snapshot,
                )
            )
        return tuple(rows)

    def _imports(self, limit: int) -> tuple[ImportEvent, ...]:
        with open_state(self.home) as db:
            records = AuditLog(db).records(action="import", limit=limit)
        events = []
        for r in reversed(records):
            accepted = r.action == "import"
            if accepted:
                detail = (
                    f"{r.result.get('kind', '?')} seq {r.result.get('sequence', '?')} "
                    f"on {r.result.get('channel', '?')}"
                )
            else:
                detail = str(r.result.get("reason", "")).splitlines()[0]
            events.append(ImportEvent(r.time, r.subject, accepted, detail))
        return tuple(events)

    def _quarantined(self) -> tuple[QuarantinedBundle, ...]:
        found = []
        for path in sorted(self.home.quarantine.glob("*.reason"), reverse=True):
            try:
                doc = canonical.loads(path.read_bytes(), source=str(path))
            except (OSError, StellaError) as e:
                found.append(QuarantinedBundle(path.name, "", f"reason file unreadable: {e}"))
                continue
            reason = str(doc.get("reason", "")) if isinstance(doc, dict) else ""
            name = str(doc.get("bundle", path.name)) if isinstance(doc, dict) else path.name
            time = str(doc.get("time", "")) if isinstance(doc, dict) else ""
            found.append(QuarantinedBundle(name, time, reason.splitlines()[0] if reason else ""))
        return tuple(found)

    def _feeds(self, snapshot: SnapshotInfo | None) -> tuple[FeedFreshness, ...]:
        """Each dataset of the active snapshot with its newest record's date. A dataset is
        immutable by digest, so its date is found once per console."""
        if snapshot is None:
            return ()
        store = open_knowledge(self.home)
        try:
            manifest = store.manifest(Digest.parse(snapshot.digest))
            feeds = []
            for entry in manifest.datasets:
                key = str(entry.digest)
                if key not in self._newest:
                    self._newest[key] = _newest_date(entry, store)
                newest = self._newest[key]
                feeds.append(
                    FeedFreshness(
                        name=entry.name,
                        type=entry.type.value,
                        records=entry.records,
                        newest=newest,
                        age_days=_days(newest + "T00:00:00Z", self.now()) if newest else None,
                    )
                )
        finally:
            store.close()
        return tuple(feeds)

    def _expiring(self, at: datetime) -> tuple[ExpiringException, ...]:
        """Exceptions in force that expire within :data:`EXPIRING_DAYS` days of ``at``."""
        statements = vex_service.stored_statements(self.home)
        revoked = {s.revokes for s in statements if s.revokes}
        horizon = at + timedelta(days=EXPIRING_DAYS)
        return tuple(
            ExpiringException(
                vulnerability=s.vulnerability,
                expires=format_time(s.expires),
                days=int((s.expires - at).total_seconds() // 86400),
                statement=s.key,
                product=", ".join(p.id for p in s.products),
            )
            for s in sorted(statements, key=lambda s: (s.expires or at, s.key))
            if s.expires is not None and at < s.expires <= horizon and s.key not in revoked
        )

    def _changed(self, since: str | None) -> tuple[VerdictChange, ...]:
        """Images whose newest verdict, made since ``since`` (the last import), differs from
        their last one before it."""
        if since is None:
            return ()
        with open_state(self.home) as db:
            history = VerdictStore(db).history()
        before: dict[str, VerdictRow] = {}
        after: dict[str, VerdictRow] = {}
        for row in history:
            (after if row.evaluation_time >= since else before)[row.subject] = row
        return tuple(
            VerdictChange(row.name, before[subject].verdict, row.verdict)
            for subject, row in sorted(after.items(), key=lambda kv: kv[1].name)
            if subject in before and before[subject].verdict != row.verdict
        )

    def dashboard(self) -> Dashboard:
        latest = self._verdicts()
        images = list_images(self.home)
        verdicts: Counter[str] = Counter()
        severities: Counter[str] = Counter()
        open_counts: Counter[str] = Counter()
        waived_counts: Counter[str] = Counter()
        no_data: list[NoDistroData] = []
        under_investigation = kev = 0
        for image in images:
            row = self._verdict_of(image, latest)
            verdicts[row.verdict if row else "not gated"] += 1
            if row is None:
                continue
            predicate, _ = self._predicate(row)
            summary = predicate["summary"]
            severities.update({k: int(v) for k, v in summary["bySeverity"].items()})
            under_investigation += int(summary["underInvestigation"])
            policy_input = self._evidence(predicate, "policyInput") or {}
            for f in policy_input.get("findings", ()):
                kev += bool(f.get("kev"))
                waived = f.get("status") in (VexStatus.NOT_AFFECTED, VexStatus.FIXED)
                (waived_counts if waived else open_counts)[str(f.get("severity"))] += 1
            missing = [
                u
                for u in policy_input.get("unknowns", ())
                if isinstance(u, dict) and u.get("kind") == UnknownKind.NO_DATA
            ]
            if missing:
                reason = str(missing[0].get("reason", ""))
                no_data.append(NoDistroData(image.tag, len(missing), reason))
        imports = self._imports(5)
        last_import = next((e.time for e in reversed(imports) if e.accepted), None)
        snapshot = self._snapshot()
        at = self.now()
        return Dashboard(
            snapshot=snapshot,
            imports=imports,
            quarantined=self._quarantined(),
            images=len(images),
            verdicts=tuple(sorted(verdicts.items())),
            severities=tuple((s.value, severities.get(s.value, 0)) for s in SEVERITY_ORDER),
            under_investigation=under_investigation,
            kev=kev,
            by_severity=tuple(
                SeverityCount(s.value, open_counts[s.value], waived_counts[s.value])
                for s in SEVERITY_ORDER
            ),
            expiring=self._expiring(at),
            audit=self.verify_audit(),
            feeds=self._feeds(snapshot),
            no_distro_data=tuple(no_data),
            changed=self._changed(last_import),
            last_import=last_import,
        )

    def findings(self, image: str) -> ImageFindings:
        """Scan (from the layer cache), match and merge VEX as a gate at ``now`` would; the
        UI's view is not an audited decision, so nothing is recorded."""
        at = self.now().replace(microsecond=0)
        scan = scan_bounded(self.home, image, audit=False)
        inputs, descriptor = prepare(self.home, scan, at=at, policy_dir=None)
        findings = inputs.report.findings if inputs.report else ()
        identity = ImageIdentity.of(
            inputs.subject.digest,
            index_digest=inputs.subject.index_digest,
            names=(inputs.subject.name, *inputs.image_names),
        )
        merged = merge(findings, inputs.statements, identity, at)
        return ImageFindings(
            name=image,
            digest=str(descriptor.digest),
            at=format_time(at),
            snapshot=inputs.knowledge.id if inputs.knowledge else None,
            rows=tuple(FindingRow.of(m) for m in merged.findings),
        )

    def vex_history(self, row: FindingRow) -> tuple[VexEntry, ...]:
        """Every statement stored on the appliance naming this vulnerability (by any alias),
        oldest first: operators' decisions, revocations and imported vendor statements."""
        names = {n.upper() for n in (row.id, *row.aliases)}
        statements: list[VexStatement] = [
            s for s in vex_service.stored_statements(self.home) if s.names & names
        ]
        statements.sort(key=lambda s: (s.timestamp, s.key))
        return tuple(
            VexEntry(
                key=s.key,
                status=s.status.value,
                origin=s.origin.value,
                timestamp=format_time(s.timestamp),
                justification=s.justification.value if s.justification else None,
                text=s.impact or s.action or s.notes,
                expires=format_time(s.expires) if s.expires else None,
                revokes=s.revokes,
            )
            for s in statements
        )

    def advisory(self, row: FindingRow) -> Advisory | None:
        """The advisory record behind a finding in the active snapshot (by its id, else by
        an alias), whole: the matcher keeps a one-line summary only."""
        if not has_knowledge(self.home):
            return None
        store = open_knowledge(self.home)
        try:
            ids = (row.id, *row.aliases)
            found = store.lookup_lines(DatasetType.OSV, ids)
        finally:
            store.close()
        rid = next((i for i in ids if i in found), None)
        if rid is None:
            return None
        record = canonical.loads(found[rid], source=f"advisory {rid}")
        if not isinstance(record, dict):
            return None
        references = tuple(
            str(r["url"])
            for r in record.get("references") or ()
            if isinstance(r, dict) and isinstance(r.get("url"), str)
        )
        return Advisory(
            id=rid,
            summary=str(record.get("summary") or ""),
            details=str(record.get("details") or ""),
            published=str(record["published"]) if record.get("published") else None,
            modified=str(record["modified"]) if record.get("modified") else None,
            references=references,
        )

    def verdict(self, image: str) -> VerdictView | None:
        """The latest verdict of a stored image (by tag), or of a verdict subject digest."""
        latest = self._verdicts()
        stored = next((i for i in list_images(self.home) if i.tag == image), None)
        row = self._verdict_of(stored, latest) if stored else None
        if row is None and image.startswith("sha256:"):
            row = latest.get(image)
        if row is None:
            return None
        predicate, keyid = self._predicate(row)
        evidence = predicate.get("evidence") or {}
        unknowns = (self._evidence(predicate, "unknowns") or {}).get("unknowns", ())
        return VerdictView(
            image=row.name,
            digest=row.subject,
            verdict=row.verdict,
            evaluation_time=row.evaluation_time,
            reason_codes=tuple(predicate["reasonCodes"]),
            reasons=tuple((r["code"], r.get("message", "")) for r in predicate.get("reasons", ())),
            explanation=str(predicate.get("explanation", "")),
            evidence=tuple((role, ref["digest"]) for role, ref in sorted(evidence.items()) if ref),
            policy=row.policy,
            snapshot=(predicate.get("knowledgeSnapshot") or {}).get("id"),
            bundle=row.bundle,
            referrer=row.referrer,
            audit_seq=row.audit_seq,
            signer=keyid,
            reason_findings=tuple(
                (str(r.get("vulnerability", "")), str(r.get("component", "")))
                for r in predicate.get("reasons", ())
            ),
            unknowns=tuple(
                (str(u.get("purl", "")), str(u.get("kind", "")), str(u.get("reason", "")))
                for u in unknowns
                if isinstance(u, dict)
            ),
        )

    def _newest_verdict(self, image: str) -> bytes:
        _, found = attached_verdicts(self.home, image)
        return found[0][1]

    def verify_verdict(self, image: str) -> VerdictCheck:
        """Verify the image's newest attached verdict as ``stella verify IMAGE`` does:
        signature by the appliance key, predicate schema, subject, every evidence blob by
        digest, and the gate's record in the verified audit chain."""
        policy = TrustPolicy.of_ring(load_ring(self.home))
        result = verify_in_home(
            self.home, self._newest_verdict(image), policy, source=f"verdict of {image}"
        )
        return VerdictCheck(
            verdict=str(result.predicate.get("verdict", "")),
            statement=str(result.statement_digest),
            signer=f"{result.signer} {result.keyid[:16]}",
            evidence=sum(1 for e in result.evidence if e.checked),
            audit_seq=result.audit.seq if result.audit else None,
        )

    def export_audit_package(self, image: str, out: Path) -> ExportedPackage:
        """Write the audit package of the image's newest verdict to ``out`` (as
        ``stella export-audit-package``); the verdict is verified before anything is
        written."""
        policy = TrustPolicy.of_ring(load_ring(self.home))
        package = export_package(self.home, self._newest_verdict(image), policy)
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            tmp.write_bytes(package)
            tmp.replace(out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ConsoleError(
                f"{out}: cannot write the audit package: {e.strerror}",
                hint="choose a directory the appliance user can write to",
            ) from e
        return ExportedPackage(str(out), str(Digest.of_bytes(package)), len(package))

    def inbox(self) -> tuple[InboxEntry, ...]:
        scan = scan_inbox(self.home.inbox, now=time.time(), settle=self._settle)
        return tuple(
            InboxEntry(
                name=b.name,
                files=tuple(p.name for p in b.files),
                ready=b.complete,
                sequence=b.sequence,
                channel=b.channel,
                missing=b.missing,
                companions=tuple(p.name for p in b.companions),
            )
            for b in (*scan.ready, *scan.waiting)
        ) + tuple(
            InboxEntry(
                name=p.name,
                files=(p.name,),
                ready=False,
                sequence=None,
                channel=None,
                missing=(),
                settling=True,
            )
            for p in scan.settling
        )

    def inbox_dir(self) -> str:
        return str(self.home.inbox)

    def audit(
        self, *, before: int | None = None, after: int | None = None, limit: int = AUDIT_PAGE
    ) -> AuditPage:
        """A page of the audit log, newest first: the newest records, or those older than
        sequence number ``before``, or newer than ``after`` (keyset paging on ``seq``, so a
        page deep in a log of months costs what the first does)."""
        with open_state(self.home) as db:
            page = AuditLog(db).page(before=before, after=after, limit=limit)
        records: tuple[AuditRecord, ...] = page.records
        return AuditPage(
            entries=tuple(
                AuditEntry(r.seq, r.time, r.actor, r.action, r.subject, _brief(r.result))
                for r in reversed(records)
            ),
            total=page.total,
            newer=page.newer,
            older=page.older,
        )

    def verify_audit(self) -> AuditCheck:
        with open_state(self.home) as db:
            result = AuditLog(db, public_key=self.home.public_key()).verify()
        return AuditCheck(
            ok=result.ok,
            records=result.records,
            verified=result.verified,
            problem=result.problem.message if result.problem else None,
            bad_seq=result.problem.seq if result.problem else None,
        )

    # -- changing --------------------------------------------------------------------------

    def triage(self, request: TriageRequest) -> TriageResult:
        """Sign and store the operator's VEX statement (audited), then gate the image again
        and return the verdict before and after."""
        at = self.now().replace(microsecond=0)
        before = self._verdicts().get(request.digest)
        needs_action = request.status is VexStatus.AFFECTED
        recorded = vex_service.add(
            self.home,
            vulnerability=request.vulnerability,
            image=vex_service.ImageTarget(Digest.parse(request.digest), request.image),
            components=(request.purl,),
            status=request.status,
            justification=request.justification,
            impact="" if needs_action else request.text,
            action=request.text if needs_action else "",
            expires=request.expires,
            at=at,
            author=self.actor,
        )
        return self._regate(request.image, at, recorded, before)

    def revoke(self, request: RevokeRequest) -> TriageResult:
        """Revoke the statement in force for a finding as ``stella vex revoke`` does (a signed
        ``under_investigation`` statement that supersedes it, audited as ``vex.revoke``), then
        gate the image again, as a triage does. Only an operator's or an imported statement
        stored on this appliance can be revoked, and not a revocation itself."""
        key = request.statement
        if not key:
            raise ConsoleError(
                "no VEX statement is in force for this finding: nothing to revoke",
                hint="press t to triage it instead",
            )
        reason = " ".join(request.reason.split())
        if not reason:
            raise ConsoleError(
                f"revoking {key} needs a reason",
                hint="say why the statement no longer holds; it is signed and audited",
            )
        stored = next((s for s in vex_service.stored_statements(self.home) if s.key == key), None)
        if stored is None:
            raise ConsoleError(
                f"VEX statement {key} is not stored on this appliance (it comes with the "
                "knowledge snapshot) and cannot be revoked here",
                hint="triage the finding: an operator statement overrides a vendor one",
            )
        if stored.revokes:
            raise ConsoleError(
                f"VEX statement {key} is itself the revocation of {stored.revokes}: "
                "nothing to revoke",
                hint="triage the finding to make a new decision",
            )
        at = self.now().replace(microsecond=0)
        before = self._verdicts().get(request.digest)
        recorded = vex_service.revoke(self.home, key, reason=reason, at=at, author=self.actor)
        return self._regate(request.image, at, recorded, before, change="revocation")

    def _regate(
        self,
        image: str,
        at: datetime,
        recorded: vex_service.Recorded,
        before: VerdictRow | None,
        *,
        change: str = "triage",
    ) -> TriageResult:
        """Gate ``image`` again after the VEX change ``recorded``; the verdict before and
        after."""
        result = gate(self.home, image, at=at, now=self._clock, actor=self.actor)
        return TriageResult(
            statement=recorded.statements[0].key,
            vex_audit_seq=recorded.audit_seq,
            before=before.verdict if before else None,
            after=result.kind.value,
            reason_codes=tuple(result.verdict.predicate["reasonCodes"]),
            change=change,
        )

    def import_bundle(self, name: str, progress: Callable[[ImportStep], None]) -> ImportOutcome:
        """Import one bundle of the inbox, as the inbox service would: under the import lock,
        verified and loaded in one pass; an imported bundle's files leave the inbox, a refused
        one is quarantined with its reason by the importer."""
        total = 3
        entry = next((b for b in self.inbox() if b.name == name), None)
        if entry is None:
            raise ConsoleError(f"no bundle {name!r} in {self.home.inbox}")
        if not entry.ready:
            return ImportOutcome(
                False, name, (), reason=f"parts missing: {', '.join(entry.missing)}"
            )
        paths = [self.home.inbox / f for f in entry.files]
        steps = [
            f"found {name}: sequence {entry.sequence} on channel {entry.channel} "
            "(as stated, not yet verified)"
        ]
        progress(ImportStep(1, total, steps[-1]))
        with ImportLock(self.home).hold(wait=False) as held:
            if not held:
                return ImportOutcome(
                    False, name, tuple(steps), reason="another import is running; try again"
                )
            try:
                result = Importer(self.home).run(paths, now=self.now())
            except PartsIncompleteError as e:
                return ImportOutcome(False, name, tuple(steps), reason=e.diagnostics())
            except ImportRefusedError as e:
                steps.append("refused: nothing was changed; the bundle was quarantined")
                progress(ImportStep(total, total, steps[-1]))
                return ImportOutcome(
                    False,
                    name,
                    tuple(steps),
                    reason=e.cause.diagnostics(),
                    quarantined=str(e.quarantined) if e.quarantined else None,
                )
            # imported: its files leave the inbox before anything else can go wrong
            leftovers = [self.home.inbox / f for f in (*entry.companions, name + WAITING_SUFFIX)]
            for path in (*paths, *leftovers):
                path.unlink(missing_ok=True)
            steps.append(
                f"verified: signed by {', '.join(k[:16] for k in result.keyids)}; "
                f"{result.kind} bundle, sequence {result.sequence} newer than the last on "
                f"{result.channel}; every member's digest checked"
            )
            progress(ImportStep(2, total, steps[-1]))
            steps.append(
                f"loaded: {len(result.datasets_loaded)} datasets loaded, "
                f"{len(result.datasets_patched)} patched, {result.datasets_reused} unchanged; "
                f"snapshot {result.snapshot} active"
                + (
                    f"; trust root rotated to v{result.trust_rotated_to}"
                    if result.trust_rotated_to
                    else ""
                )
            )
            progress(ImportStep(3, total, steps[-1]))
        return ImportOutcome(True, name, tuple(steps))
