"""``stella import``: verify a bundle, then load it, in one pass, atomically.

1. The first member (the signed statement) is read under a small size limit. Its channel picks
   the trust root; trust-root versions the bundle carries are accepted only as a valid
   rotation chain from the root trusted now (TUF's rule); the statement must then verify
   against the newest root, be unexpired, for this channel, and newer than the last
   sequence imported on it (shared/DESIGN.md §4).
2. Every other member streams straight into one ``knowledge.db`` transaction while it is
   hashed; a member whose digest or size differs from the signed statement, a dataset whose
   records disagree with the manifest, or a delta that does not rebuild the target digests
   exactly, aborts the transaction: nothing is half-written. Image blobs (which sort first)
   are written and synced on writer threads while the datasets load, and are moved into the
   OCI store, verified, before the transaction commits.
   If the trust root names the mirror's transparency-log keys, the statement's proof
   (``statement.tlog.json``) must verify against them and the mirror log's head must extend
   the last head of that log this appliance saw on the channel (docs/transparency.md): an
   unlogged bundle, a forked or a rolled-back log is refused before anything is loaded.
3. The images' tags are written, then the new snapshot is activated in that same
   transaction. Any failure up to its commit leaves the previous snapshot active; the bundle
   goes to ``quarantine/`` with a reason file. Nothing after the commit refuses the bundle.

Datasets are loaded into SQLite as they stream, never staged on disk, so an import needs no
free space beyond what the knowledge store itself grows by.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

from appliance import tlog
from appliance.faults import fault
from appliance.home import Home
from appliance.intake.trust_store import TrustStore
from appliance.rescan import mark_activated
from appliance.sigstore.upstream import (
    ImageVerification,
    PolicyStore,
    attach,
    subject_of,
    verify_import,
)
from appliance.store import has_own_knowledge, open_knowledge, open_state, record_decision
from appliance.store.audit import AuditAction, AuditLog
from appliance.store.knowledge import KnowledgeError, KnowledgeStore
from bundles import canonical, limits
from bundles.archive import ArchiveReader, MemberRefusedError, MemberStream
from bundles.bounded import Section, capped_lines, printable
from bundles.bundle import (
    BLOB_PREFIX,
    DATASET_PREFIX,
    IMAGES_INDEX,
    IMAGES_RECORDS,
    MANIFEST_MEMBER,
    PATCH_PREFIX,
    STATEMENT_MEMBER,
    TLOG_MEMBER,
    BundleKind,
    BundleNotLoggedError,
    BundleStatement,
    carried_roots,
    check_logged,
    format_time,
    hashed_file,
    newest_root,
    peek_statement,
    roots_from_json,
    verify_statement,
)
from bundles.digest import Digest
from bundles.errors import BundleError, StellaError
from bundles.files import atomic_write
from bundles.limits import Unit
from bundles.oci import Descriptor, OCILayout
from bundles.oci.sink import BlobSink
from bundles.parts import PartsIncompleteError, assemble, first_header, is_part, peek_manifest
from bundles.snapshot import DatasetEntry, Manifest
from bundles.tlog.carried import PROOF_LIMIT, BundleProofError, check_extends
from bundles.tlog.entry import EntryCheck
from bundles.trust import TrustRoot

MANIFEST_LIMIT: Final = 64 << 20
DATASET_LINE: Final = limits.cap(
    "bundle.dataset_line_bytes",
    16 << 20,
    Unit.BYTES,
    "one record line of a dataset or patch member of a bundle",
)
PENDING_BLOBS: Final = 16  # blobs still syncing on their own threads while the import goes on


class ImportRefusedError(BundleError):
    """The bundle was refused; ``quarantined`` says where it (or its reason file) went."""

    def __init__(self, cause: StellaError, quarantined: Path | None) -> None:
        hint = cause.hint
        if quarantined is not None:
            where = f"reason in {quarantined}"
            hint = f"{hint}; {where}" if hint else where
        super().__init__(printable(cause.message), hint=printable(hint) if hint else None)
        self.cause = cause
        self.quarantined = quarantined
        self.exit_code = cause.exit_code


class _DryRun(Exception):
    """Raised inside the transaction to roll a verified dry run back."""


@dataclass(slots=True)
class ImportResult:
    source: str
    bundle: Digest
    size: int
    kind: BundleKind
    sequence: int
    channel: str
    snapshot: Digest | None
    base: Digest | None
    keyids: tuple[str, ...]
    datasets_loaded: list[str] = field(default_factory=list)
    datasets_patched: list[str] = field(default_factory=list)
    datasets_reused: int = 0
    trust_rotated_to: int | None = None
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    blobs_stored: int = 0
    images: list[dict[str, str]] = field(default_factory=list)
    image_entries: list[Descriptor] = field(default_factory=list, repr=False)
    upstream_signatures: list[ImageVerification] = field(default_factory=list)
    rotation: list[TrustRoot] = field(default_factory=list, repr=False)
    logged: EntryCheck | None = field(default=None, repr=False)


def _lines_capped(member: MemberStream) -> Iterator[bytes]:
    """A dataset member's chunks, refused at the first line over ``bundle.dataset_line_bytes``
    (the store joins chunks into lines: a signed 1 GiB line must not grow one string)."""
    return capped_lines(member.chunks(), DATASET_LINE, f"member {member.name}")


def _choose_trust(
    store: TrustStore, channel: str, carried: list[TrustRoot], now: datetime
) -> tuple[TrustRoot, list[TrustRoot]]:
    """The root to verify with: the one trusted for ``channel``, advanced through any valid
    rotation chain the bundle carries; never an expired one."""
    newest, chain = newest_root(store.require(channel), carried, now=now)
    newest.check_unexpired(now=now)
    return newest, chain


class Importer:
    def __init__(self, home: Home) -> None:
        self.home = home.require()

    def reconcile(self, *, now: datetime) -> list[Digest]:
        """Audit every imported snapshot the log does not mention yet.

        The knowledge store and the audit log are two databases, so a process killed between
        an import's commit and its audit record leaves a snapshot the log lacks. The next
        import appends the missing record, marked ``recovered``."""
        if not has_own_knowledge(self.home):
            return []  # a tenant on the shared knowledge: the administrator's imports
        knowledge = open_knowledge(self.home, own=True)
        try:
            snapshots = knowledge.snapshots()
        finally:
            knowledge.close()
        if not snapshots:
            return []
        with open_state(self.home) as db:
            logged = {
                r.inputs.get("snapshot") for r in AuditLog(db).records(action=AuditAction.IMPORT)
            }
        recovered = []
        for snap in snapshots:
            if str(snap.digest) in logged:
                continue
            record_decision(
                self.home,
                AuditAction.IMPORT,
                str(snap.bundle),
                command="import",
                time=now,
                inputs={"bundle": str(snap.bundle), "snapshot": str(snap.digest), "base": None},
                result={
                    "recovered": True,
                    "imported": snap.imported,
                    "kind": snap.kind,
                    "sequence": snap.sequence,
                    "channel": snap.channel,
                },
            )
            recovered.append(snap.digest)
        return recovered

    def run(self, paths: Sequence[Path], *, now: datetime, dry_run: bool = False) -> ImportResult:
        """Import one bundle file, or the complete set of its parts (any order)."""
        if not dry_run:
            self.reconcile(now=now)
        paths = list(paths)
        path = paths[0]
        try:
            if len(paths) == 1 and not is_part(path):
                with open(path, "rb") as raw:
                    result = self._run(
                        raw,
                        os.fstat(raw.fileno()).st_size,
                        printable(path.name),
                        printable(str(path)),
                        None,
                        now=now,
                        dry_run=dry_run,
                    )
            else:
                result = self._run_parts(paths, now=now, dry_run=dry_run)
        except PartsIncompleteError:
            raise  # an incomplete set waits for its other parts; nothing is refused
        except StellaError as e:
            if dry_run:
                raise ImportRefusedError(e, None) from e
            quarantined = self._quarantine(paths, e, now)
            record_decision(
                self.home,
                AuditAction.IMPORT_REFUSED,
                printable(path.name),
                command="import",
                time=now,
                inputs={"paths": [printable(str(p)) for p in paths]},
                result={
                    "reason": printable(e.diagnostics()),
                    "error": type(e).__name__,
                    "quarantine": printable(str(quarantined)) if quarantined else None,
                },
            )
            raise ImportRefusedError(e, quarantined) from e
        if not dry_run:
            fault("import.after-commit")
            # After the commit, outside the refusal handling above: the snapshot is active
            # whatever happens here, so nothing below may quarantine the bundle. A failure
            # leaves the import record missing, which the next import reconciles; the
            # rotation is carried again by every later bundle.
            for root in result.rotation:
                TrustStore(self.home.trust).store_rotation(root)
            if result.logged is not None:
                # Lost only if this fails: the next import then checks against an older head
                # of the mirror's log, which a consistent head still extends.
                with suppress(OSError):
                    tlog.store_mirror_head(self.home, result.channel, result.logged.checkpoint)
            if result.trust_rotated_to is not None:
                record_decision(
                    self.home,
                    AuditAction.TRUST_ROTATE,
                    f"channel {result.channel}",
                    command="import",
                    time=now,
                    inputs={"bundle": str(result.bundle)},
                    result={
                        "version": result.trust_rotated_to,
                        "carriedBy": printable(path.name),
                    },
                )
            record_decision(
                self.home,
                AuditAction.IMPORT,
                str(result.bundle),
                command="import",
                time=now,
                inputs={
                    "bundle": str(result.bundle),
                    "snapshot": str(result.snapshot) if result.snapshot else None,
                    "base": str(result.base) if result.base else None,
                },
                result={
                    "kind": str(result.kind),
                    "sequence": result.sequence,
                    "channel": result.channel,
                    "activeSnapshot": str(result.snapshot) if result.snapshot else None,
                    "signedBy": list(result.keyids),
                    "trustRotatedTo": result.trust_rotated_to,
                    "datasetsLoaded": result.datasets_loaded,
                    "datasetsPatched": result.datasets_patched,
                    "images": result.images,
                    "blobsStored": result.blobs_stored,
                    "upstreamSignatures": [v.to_dict() for v in result.upstream_signatures],
                    "mirrorLog": result.logged.to_dict() if result.logged else None,
                },
            )
            mark_activated(self.home, result.snapshot, now)  # wakes stella-rescan.path
        return result

    def _run_parts(self, paths: list[Path], *, now: datetime, dry_run: bool) -> ImportResult:
        header, source = first_header(paths)
        peeked = peek_manifest(header, source=source)
        carried = roots_from_json(peeked.trust_roots, source=source)
        trust, _ = _choose_trust(TrustStore(self.home.trust), peeked.channel, carried, now)
        manifest, stream = assemble(paths, trust)
        with stream:
            return self._run(
                stream,  # type: ignore[arg-type]
                manifest.bundle_size,
                manifest.bundle_name,
                ", ".join(printable(str(p)) for p in paths),
                manifest.bundle_digest,
                now=now,
                dry_run=dry_run,
            )

    def _run(
        self,
        raw: BinaryIO,
        size: int,
        source: str,
        where: str,
        expected: Digest | None,
        *,
        now: datetime,
        dry_run: bool,
    ) -> ImportResult:
        # A tenant imports into its own knowledge store (never the shared one); its first
        # import creates that store, which is removed again if the import does not commit,
        # so a refused bundle leaves the tenant on the shared knowledge as it was.
        own = self.home.own_knowledge_db
        created = self.home.tenant is not None and not has_own_knowledge(self.home)
        knowledge = open_knowledge(self.home, own=True)
        committed = False
        try:
            result = self._import(
                knowledge, raw, size, source, where, expected, now=now, dry_run=dry_run
            )
            committed = not dry_run
            return result
        finally:
            knowledge.close()
            if created and not committed:
                for leftover in (
                    own,
                    own.with_name(own.name + "-wal"),
                    own.with_name(own.name + "-shm"),
                ):
                    leftover.unlink(missing_ok=True)

    def _import(
        self,
        knowledge: KnowledgeStore,
        raw: BinaryIO,
        size: int,
        source: str,
        where: str,
        expected: Digest | None,
        *,
        now: datetime,
        dry_run: bool,
    ) -> ImportResult:
        stream = hashed_file(
            raw,
            size,
            source,
            hint="the file changed while it was being imported; copy it again",
        )
        reader = ArchiveReader(stream.buffered(), source=source)
        envelope = reader.read_first(STATEMENT_MEMBER)
        peeked = peek_statement(envelope, source=source)
        carried = carried_roots(peeked, source=source)
        trust, chain = _choose_trust(
            TrustStore(self.home.trust), peeked.predicate.channel, carried, now
        )
        channel = trust.channel
        bundle = verify_statement(
            envelope,
            trust,
            now=now,
            last_sequence=knowledge.last_sequence(channel),
            source=source,
        )
        logged = self._check_logged(reader, envelope, trust, channel, source)
        fault("import.after-verify")
        predicate = bundle.predicate
        base = predicate.base_snapshot
        if base is not None and not knowledge.has_snapshot(base):
            raise BundleError(
                f"{source}: delta against snapshot {base}, which this appliance has not imported",
                hint="first import the full bundle of that snapshot or a newer one",
            )
        required = [Digest.parse(d) for d in predicate.extra.get("requiresBlobs", [])]
        missing_blobs = [d for d in required if not self._oci().has_blob(d)]
        if missing_blobs:
            shown = ", ".join(str(d) for d in missing_blobs[:3])
            more = f" and {len(missing_blobs) - 3} more" if len(missing_blobs) > 3 else ""
            raise BundleError(
                f"{source}: delta needs {len(missing_blobs)} image blob(s) this appliance "
                f"does not have: {shown}{more}",
                hint="first import the full bundle that carried them",
            )
        result = ImportResult(
            source=where,
            bundle=Digest.of_bytes(b""),  # replaced below
            size=0,
            kind=predicate.kind,
            sequence=predicate.sequence,
            channel=channel,
            snapshot=predicate.snapshot,
            base=base,
            keyids=bundle.keyids,
            dry_run=dry_run,
            trust_rotated_to=chain[-1].version if chain else None,
            logged=logged,
        )
        try:
            with knowledge.transaction("import bundle"), ExitStack() as sinks:
                self._load(reader, stream, bundle, knowledge, result, now, sinks)
                if expected is not None and result.bundle != expected:
                    raise BundleError(
                        f"{source}: reassembled bundle is {result.bundle}, the parts "
                        f"manifest names {expected}"
                    )
                if dry_run:
                    raise _DryRun
                # Tags go in last before the commit, so a failure to write them refuses
                # the bundle honestly (only a failing commit can leave them behind: they
                # name verified images).
                self._apply_images(result.image_entries, result.upstream_signatures)
                fault("import.before-commit")
        except _DryRun:
            pass
        result.rotation = chain
        return result

    def _check_logged(
        self,
        reader: ArchiveReader,
        envelope: bytes,
        trust: TrustRoot,
        channel: str,
        source: str,
    ) -> EntryCheck | None:
        """The statement's entry in the mirror's log, when the trust root names the log: its
        proof verified, and its head consistent with the last head seen on this channel."""
        proof = reader.read_second(TLOG_MEMBER, limit=PROOF_LIMIT)
        checked = check_logged(envelope, proof, trust, source=source)
        if checked is None:
            return None
        carried, entry = checked
        last = tlog.last_mirror_head(self.home, entry.origin, channel)
        try:
            check_extends(carried, entry, last, source=source)
        except BundleProofError as e:
            raise BundleNotLoggedError(e.message, hint=e.hint) from e
        return entry

    def _oci(self) -> OCILayout:
        return OCILayout.init(self.home.oci, exist_ok=True)

    def _apply_images(
        self, entries: list[Descriptor], verifications: list[ImageVerification]
    ) -> None:
        """Make the imported images visible: tags, and untagged referrers, once every member
        has verified (a refused bundle leaves no new tags behind); then attach each image's
        upstream signature verification as evidence (docs/upstream-signatures.md)."""
        if not entries:
            return
        oci = self._oci()
        for entry in entries:
            if not oci.has_blob(entry.digest):
                raise BundleError(f"image manifest {entry.digest} named by the bundle is missing")
            if entry.ref_name:
                oci.tag(entry.ref_name, entry)
            else:
                oci.put_manifest(
                    oci.read_blob(entry.digest), entry.media_type, check_references=False
                )
        for verification in verifications:
            attach(oci, subject_of(oci, verification.digest, entries), verification)

    def _load(
        self,
        reader: ArchiveReader,
        stream: Section,
        bundle: BundleStatement,
        knowledge: KnowledgeStore,
        result: ImportResult,
        now: datetime,
        sinks: ExitStack,
    ) -> None:
        """Load every member; ``sinks`` discards the blobs not committed if this fails."""
        predicate = bundle.predicate
        pending: deque[BlobSink] = deque()
        manifest: Manifest | None = None
        manifest_bytes = b""
        by_digest: dict[Digest, DatasetEntry] = {}

        def entry_for(member: MemberStream, prefix: str) -> DatasetEntry:
            if manifest is None:
                raise BundleError(f"member {member.name} comes before {MANIFEST_MEMBER}")
            hex_part = member.name[len(prefix) : -len(".jsonl")]
            try:
                digest = Digest(hex_part)
            except StellaError as e:
                raise MemberRefusedError(f"member {member.name}: name is not <sha256>.jsonl") from e
            entry = by_digest.get(digest)
            if entry is None:
                raise BundleError(f"member {member.name} is not a dataset of the snapshot manifest")
            return entry

        for member in reader.members(bundle.members):
            name = member.name
            if name == MANIFEST_MEMBER:
                manifest_bytes = member.read_all(limit=MANIFEST_LIMIT)
                if Digest.of_bytes(manifest_bytes) != predicate.snapshot:
                    raise BundleError(
                        f"{MANIFEST_MEMBER} is snapshot {Digest.of_bytes(manifest_bytes)}, "
                        f"the statement names {predicate.snapshot}"
                    )
                manifest = Manifest.from_bytes(manifest_bytes, source=MANIFEST_MEMBER)
                by_digest = {d.digest: d for d in manifest.datasets}
            elif name.startswith(DATASET_PREFIX) and name.endswith(".jsonl"):
                entry = entry_for(member, DATASET_PREFIX)
                if member.spec.digest != entry.digest:
                    raise BundleError(f"member {name} does not hold dataset {entry.digest}")
                knowledge.load_dataset(entry, _lines_capped(member))
                result.datasets_loaded.append(entry.name)
            elif name.startswith(PATCH_PREFIX) and name.endswith(".jsonl"):
                entry = entry_for(member, PATCH_PREFIX)
                patch = knowledge.parse_patch(_lines_capped(member), name)
                knowledge.apply_patch(entry, patch)
                result.datasets_patched.append(entry.name)
            elif name.startswith(BLOB_PREFIX):
                if result.dry_run or self._oci().has_blob(member.spec.digest):
                    # Still read (and so verify) the member: a blob kept from an earlier,
                    # refused import is not stored twice, but the stream must be consumed.
                    for _ in member.chunks():
                        pass
                    if not result.dry_run:
                        # Unreferenced until this import tags it: young again, so that
                        # ``stella gc`` (which spares young blobs) cannot take it meanwhile.
                        os.utime(self._oci().blob_path(member.spec.digest))
                else:
                    # The layer is hashed, written and synced on the sink's thread while
                    # this one goes on decompressing and verifying the member, and then with
                    # the members after it: blobs sort first, so their syncs overlap the
                    # knowledge load. Each is committed (checked and moved into place) later.
                    sink = sinks.enter_context(
                        self._oci().blob_sink(expected=member.spec.digest, size=member.spec.size)
                    )
                    for chunk in member.chunks():
                        sink.write(chunk)
                    sink.end()
                    fault("import.blob-written")
                    pending.append(sink)
                    if len(pending) > PENDING_BLOBS:
                        pending.popleft().commit()
                    result.blobs_stored += 1
            elif name == IMAGES_INDEX:
                doc = canonical.loads(member.read_all(limit=MANIFEST_LIMIT), source=name)
                entries = doc.get("manifests", []) if isinstance(doc, dict) else None
                if not isinstance(entries, list):
                    raise BundleError(f"{name}: not an OCI image index")
                result.image_entries = [Descriptor.from_dict(e, source=name) for e in entries]
            elif name == IMAGES_RECORDS:
                doc = canonical.loads(member.read_all(limit=MANIFEST_LIMIT), source=name)
                images = doc.get("images", {}) if isinstance(doc, dict) else {}
                result.images = [
                    {"reference": str(ref), "digest": str(rec.get("digest"))}
                    for ref, rec in sorted(images.items())
                    if isinstance(rec, dict)
                ]
            else:
                raise MemberRefusedError(
                    f"member {name} is of a kind this appliance does not understand",
                    hint="update the appliance software before importing this bundle",
                )
        while pending:
            pending.popleft().commit()
        fault("import.after-blobs")
        stream.skip()  # whatever follows the archive is part of the file and of its digest
        result.bundle = stream.digest()
        result.size = stream.size
        if result.images and not result.dry_run:
            # Before the transaction commits: a required upstream signer unmet refuses it all.
            result.upstream_signatures = verify_import(
                self._oci(),
                result.images,
                result.image_entries,
                PolicyStore(self.home.trust).load(),
            )
        if predicate.snapshot is None:
            return
        if manifest is None:
            raise BundleError(
                f"the bundle names snapshot {predicate.snapshot} but has no {MANIFEST_MEMBER}"
            )
        missing = [d.name for d in manifest.datasets if not knowledge.has_dataset(d.digest)]
        if missing:
            raise KnowledgeError(
                f"snapshot {predicate.snapshot} needs datasets this appliance does not have: "
                f"{', '.join(missing)}",
                hint="import the full bundle this delta was made against first",
            )
        result.datasets_reused = (
            len(manifest.datasets) - len(result.datasets_loaded) - len(result.datasets_patched)
        )
        knowledge.add_snapshot(
            manifest_bytes,
            manifest,
            sequence=predicate.sequence,
            channel=predicate.channel,
            kind=str(predicate.kind),
            base=predicate.base_snapshot,
            bundle=result.bundle,
            created=format_time(predicate.created),
            imported=format_time(now),
        )
        knowledge.activate(predicate.snapshot, predicate.channel, predicate.sequence)
        result.counts = knowledge.counts(predicate.snapshot)

    def _quarantine(self, paths: list[Path], error: StellaError, now: datetime) -> Path | None:
        """Move refused files out of the inbox (never deleting media elsewhere) and write why
        next to them."""
        quarantine = self.home.quarantine
        try:
            quarantine.mkdir(exist_ok=True)
            stamp = now.strftime("%Y%m%dT%H%M%SZ")
            inbox = self.home.inbox.resolve()
            moved = []
            for path in paths:
                if path.exists() and path.resolve().parent == inbox:
                    shutil.move(str(path), quarantine / f"{stamp}-{path.name}")
                    moved.append(printable(path.name))
            target = quarantine / f"{stamp}-{paths[0].name}"
            reason = {
                "bundle": printable(paths[0].name),
                "from": [printable(str(p)) for p in paths],
                "moved": moved,
                "reason": printable(error.diagnostics()),
                "error": type(error).__name__,
                "time": format_time(now),
            }
            reason_path = target.with_name(target.name + ".reason")
            atomic_write(reason_path, canonical.dumps(reason) + b"\n", tmp_dir=quarantine)
            return reason_path
        except OSError:
            return None
