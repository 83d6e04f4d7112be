"""The audit package: one ZIP that proves a verdict with nothing but itself and this program.

Layout (every path fixed, so the hand check in docs/auditing.md can name them)::

    SHA256SUMS                 sha256sum -c input for every other file
    manifest.json              {version, subject, statement, files: [{path, sha256, size}]}
    rva/rva.sigstore.json      the RVA as a Sigstore bundle v0.3 (what the gate wrote)
    rva/rva.dsse.json          the same DSSE envelope on its own
    rva/statement.json         the exact signed payload (the in-toto Statement)
    rva/rva.pae                the DSSE pre-authentication encoding of that payload
    rva/rva.sig                the raw signature over rva.pae
    policy/files.json          canonical [{path, sha256}]: its SHA-256 is the policy digest
    policy/files/<path>        the policy bundle's files
    knowledge/manifest.json    the snapshot manifest: its SHA-256 is the snapshot digest
    evidence/<role>.json       each evidence blob the verdict cites
    explanation/explanation.html, explanation/explanation.md
    keys/appliance.pub         the appliance public key (compare it with one you hold)
    keys/tlog.vkey             the verifier key of the transparency log holding the RVA
    tlog/entry.json            the RVA's log entry: inclusion proof and the timestamped
                               checkpoint of the append that logged it (the proof of when it
                               was signed; also inside rva/rva.sigstore.json)
    tlog/checkpoint.txt        that checkpoint on its own (a C2SP signed note)
    keys/trust-policy.json     every appliance key: what it may sign, its validFor window
    keys/sigstore-trusted-root.json   the Sigstore trusted root shipped with the appliance
    keys/trust/<channel>.json  the knowledge-bundle trust roots of the appliance
    audit/records.jsonl        the audit log up to its signed head, one canonical record a line
    audit/head.json            the signed head checkpoint (DSSE)

:func:`verify_package` needs the package and a public key only: no home, no network.
"""

from __future__ import annotations

import base64
import io
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Final

from appliance import tlog
from appliance.auditor import explain
from appliance.auditor.errors import AuditPackageError, AuditRecordError
from appliance.auditor.replay import find_policy
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import (
    AuditInfo,
    LayoutBlobs,
    MappingBlobs,
    RvaVerification,
    gate_record,
    verify_rva,
)
from appliance.home import Home
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.tsa import TimestampAuthority
from appliance.store import known_logs, open_knowledge_if_any, open_state
from appliance.store.audit import GENESIS, AuditHead, AuditLog, AuditRecord
from bundles import canonical, dsse, limits
from bundles.bounded import read_capped, zip_directory
from bundles.canonical import kind_of
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, SignatureError, StellaError
from bundles.keys import PublicKey
from bundles.limits import Unit
from bundles.oci import OCILayout
from bundles.tlog import TlogError
from bundles.tlog.entry import check_entry, log_id
from bundles.tlog.note import Verifier

FORMAT_VERSION: Final = 1
PACKAGE_MEMBERS: Final = limits.cap(
    "audit_package.members", 10_000, Unit.COUNT, "the member count of an audit package ZIP"
)
DIRECTORY_BYTES: Final = limits.cap(
    "audit_package.directory_bytes",
    16 << 20,
    Unit.BYTES,
    "the central directory of an audit package ZIP",
)
MEMBER_BYTES: Final = limits.cap(
    "audit_package.member_bytes",
    64 << 20,
    Unit.BYTES,
    "the unpacked size of an audit package member",
)
TOTAL_BYTES: Final = limits.cap(
    "audit_package.total_bytes",
    256 << 20,
    Unit.BYTES,
    "the unpacked size of all audit package members together",
)
MEMBER_RATIO: Final = limits.cap(
    "audit_package.ratio",
    200,
    Unit.RATIO,
    "the compression ratio of an audit package member over 1 MiB",
)
RATIO_FLOOR: Final = 1 << 20  # smaller members cannot be bombs worth refusing
TRUSTED_ROOT: Final = (
    Path(__file__).resolve().parent.parent / "data" / ("sigstore-public-good-trusted-root.json")
)
_FIXED_TIME: Final = (2000, 1, 1, 0, 0, 0)  # ZIP entries carry no wall-clock time


@dataclass(frozen=True, slots=True)
class PackageReport:
    """What :func:`verify_package` proved."""

    verification: RvaVerification
    files: int
    audit_records: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.verification.to_dict(),
            "files": self.files,
            "auditRecords": self.audit_records,
            "checks": list(CHECKS),
        }


CHECKS: Final = (
    "every file matches SHA256SUMS and manifest.json; no file unlisted",
    "RVA signature by a key of the trust policy allowed to sign risk verdicts",
    "DSSE envelope, statement, PAE and raw signature files are the bundle's own",
    "predicate valid against rva-v1.json; subject bound to the statement",
    "every evidence file matches the digest the signed predicate pins",
    "policy files digest and knowledge manifest digest equal the pinned ones",
    "audit chain from genesis to the signed head; the gate record names this statement",
    "the RVA's transparency-log entry: inclusion proof and checkpoint under the log the gate "
    "record names (keys/tlog.vkey)",
    "signing time inside the key's window and before any revocation: proven by the log's "
    "timestamped checkpoint where the log is trusted, else as claimed (an unproven signature "
    "by a revoked key is refused)",
    "explanation files are the rendering of the verified verdict",
)


def _role_path(role: str) -> str:
    return f"evidence/{role}.json"


def _evidence_blobs(files: Mapping[str, bytes]) -> MappingBlobs:
    roles = {
        path[len("evidence/") : -len(".json")]: data
        for path, data in files.items()
        if path.startswith("evidence/") and path.endswith(".json")
    }
    return MappingBlobs(roles, "the package's evidence/ files")


def _sums(files: Mapping[str, bytes]) -> bytes:
    return "".join(
        f"{Digest.of_bytes(data).hex}  {path}\n" for path, data in sorted(files.items())
    ).encode("ascii")


def _write_zip(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, files[path])
    return buf.getvalue()


def seal(files: Mapping[str, bytes], subject: str, statement: str) -> bytes:
    """The ZIP of ``files`` plus ``manifest.json`` and ``SHA256SUMS`` over them."""
    body = {k: v for k, v in files.items() if k not in ("manifest.json", "SHA256SUMS")}
    manifest = {
        "version": FORMAT_VERSION,
        "subject": subject,
        "statement": statement,
        "files": [
            {"path": p, "sha256": Digest.of_bytes(d).hex, "size": len(d)}
            for p, d in sorted(body.items())
        ],
    }
    body["manifest.json"] = canonical.dumps(manifest)
    body["SHA256SUMS"] = _sums(body)
    return _write_zip(body)


def _audit_files(home: Home) -> tuple[bytes, bytes]:
    with open_state(home) as db:
        log = AuditLog(db, public_key=home.public_key())
        head = log.head()
        records = log.records()
    if head is None:
        raise AuditRecordError(f"the audit log of {home.root} has no signed head checkpoint")
    lines = canonical.dumps_lines([r.to_dict() for r in records if r.seq <= head.seq])
    return lines, head.to_json()


def export_package(
    home: Home, bundle: bytes, policy: TrustPolicy, *, policy_dir: Path | None = None
) -> bytes:
    """The audit package of one verdict made on this appliance (see the module docstring).
    The verdict is fully verified first: a package is never made of a verdict that fails."""
    layout = OCILayout.open(home.oci)
    logs = known_logs(home)  # its own, and the other homes' on a shared state
    checked = verify_rva(bundle, policy, source="RVA", blobs=LayoutBlobs(layout), logs=logs)
    if not checked.is_verdict:
        raise AuditPackageError("only risk verdicts are exported as audit packages")
    record = gate_record(home, checked.statement_digest)
    checked = _with_audit(checked, record)
    p = checked.predicate
    read = sigstore.read(bundle)
    envelope = read.envelope
    files: dict[str, bytes] = {
        "rva/rva.sigstore.json": bundle,
        "rva/rva.dsse.json": envelope.to_json(),
        "rva/statement.json": envelope.payload,
        "rva/rva.pae": envelope.pae(),
        "rva/rva.sig": next(
            s.sig for s in envelope.signatures if policy.rule_for(s.keyid) is not None
        ),
    }
    for role, ref in p["evidence"].items():
        if ref is not None:
            files[_role_path(role)] = layout.read_blob(Digest.parse(ref["digest"]))
    store = open_knowledge_if_any(home)
    try:
        snap = p["knowledgeSnapshot"]
        snapshot = Digest.parse(snap["digest"]) if snap else None
        if store is not None and snapshot is not None:
            files["knowledge/manifest.json"] = store.manifest_bytes(snapshot)
        bundle_policy = find_policy(p["policy"], store, snapshot, policy_dir)
    finally:
        if store is not None:
            store.close()
    files["policy/files.json"] = canonical.dumps(
        [{"path": f.path, "sha256": f.sha256} for f in bundle_policy.files]
    )
    for f in bundle_policy.files:
        files[f"policy/files/{f.path}"] = f.content.encode("utf-8")
    blobs = _evidence_blobs(files)
    explanation = explain.build(checked, blobs)
    files["explanation/explanation.html"] = explain.render_html(explanation).encode("utf-8")
    files["explanation/explanation.md"] = explain.render_markdown(explanation).encode("utf-8")
    files["keys/appliance.pub"] = home.public_key().pem()
    logged = record.result.get("tlog")
    if isinstance(logged, Mapping):
        for log in logs:
            if base64.b64encode(log_id(log)).decode() == logged.get("logId"):
                files["keys/tlog.vkey"] = (log.vkey() + "\n").encode()
    entry = next((e for e in read.entries if tlog.is_own_log_entry(e, logs)), None)
    if entry is not None:  # the proof of when it was signed, on its own for the hand check
        files["tlog/entry.json"] = canonical.dumps(entry)
        note = entry["inclusionProof"]["checkpoint"]["envelope"]
        files["tlog/checkpoint.txt"] = str(note).encode("utf-8")
    files["keys/trust-policy.json"] = canonical.dumps(policy.to_dict())  # every key, validFor
    files["keys/sigstore-trusted-root.json"] = TRUSTED_ROOT.read_bytes()
    for root in sorted(home.trust.glob("*/*.json")):
        files[f"keys/trust/{root.parent.name}/{root.name}"] = root.read_bytes()
    files["audit/records.jsonl"], files["audit/head.json"] = _audit_files(home)
    return seal(files, p["subject"]["digest"], str(checked.statement_digest))


def _with_audit(checked: RvaVerification, record: AuditRecord) -> RvaVerification:
    return replace(checked, audit=AuditInfo(record.seq, record.time, record.hash, record.actor))


# ---------------------------------------------------------------- verification


def _zip_directory(fh: BinaryIO, source: str) -> None:
    """Refuse a ZIP whose end record declares more members or a larger central directory than
    the caps, before :mod:`zipfile` reads the directory into memory."""
    try:
        end = zip_directory(fh)
    except OSError as e:
        raise AuditPackageError(f"{source}: cannot read: {e.strerror}") from e
    if not end:
        raise AuditPackageError(
            f"{source}: not a ZIP file (no end of central directory record)",
            hint="pass the FILE.zip written by 'stella export-audit-package'",
        )
    limits.check(PACKAGE_MEMBERS, end.entries, source)
    limits.check(DIRECTORY_BYTES, end.size, source)


def _bad_name(name: str) -> str | None:
    """Why a member name is not acceptable in a package, or None."""
    if not name or "\x00" in name:
        return "is empty or holds a NUL byte"
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "is an absolute or Windows path"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' component"
    return None


def _check_members(infos: list[zipfile.ZipInfo], source: str) -> None:
    """Names, encryption, compression, declared sizes and ratios of every member, checked from
    the central directory before any member is read."""
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        subject = f"{source}: member {name[:200]!r}"
        if info.is_dir():
            continue
        why = _bad_name(name)
        if why is not None:
            raise AuditPackageError(
                f"{subject} {why}", hint="a package holds only relative paths inside it"
            )
        if name in seen:
            raise AuditPackageError(
                f"{subject} appears twice", hint="a package holds each path once"
            )
        seen.add(name)
        if info.flag_bits & 0x1:
            raise AuditPackageError(
                f"{subject} is encrypted", hint="audit packages are never encrypted"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise AuditPackageError(
                f"{subject} uses compression method {info.compress_type}",
                hint="audit packages are stored or deflated",
            )
        limits.check(MEMBER_BYTES, info.file_size, subject)
        if info.file_size > RATIO_FLOOR:
            ratio = info.file_size // max(info.compress_size, 1)
            limits.check(MEMBER_RATIO, ratio, subject)
        total += info.file_size
        limits.check(TOTAL_BYTES, total, source)


def _listed_paths(manifest: Any, source: str) -> dict[str, Mapping[str, Any]]:
    """manifest.json's files by path, each field checked for its type."""
    where = f"{source}: manifest.json"
    if not isinstance(manifest, Mapping):
        raise AuditPackageError(f"{where} is {kind_of(manifest)}, not an object")
    if manifest.get("version") != FORMAT_VERSION:
        raise AuditPackageError(f"{where} is not an audit package manifest v{FORMAT_VERSION}")
    for name in ("subject", "statement"):
        if not isinstance(manifest.get(name), str):
            raise AuditPackageError(
                f"{where}: {name} must be a string, not {kind_of(manifest.get(name))}"
            )
    entries = manifest.get("files")
    if not isinstance(entries, list):
        raise AuditPackageError(f"{where}: files must be an array, not {kind_of(entries)}")
    listed: dict[str, Mapping[str, Any]] = {}
    for i, entry in enumerate(entries):
        here = f"{where}: files[{i}]"
        if not isinstance(entry, Mapping):
            raise AuditPackageError(f"{here} must be an object, not {kind_of(entry)}")
        for name, kind in (("path", str), ("sha256", str), ("size", int)):
            value = entry.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise AuditPackageError(
                    f"{here}.{name} must be {'a string' if kind is str else 'a whole number'}, "
                    f"not {kind_of(value)}"
                )
        listed[entry["path"]] = entry
    return listed


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    subject = f"{source}: member {info.filename}"
    try:
        with z.open(info) as member:
            data = read_capped(member, MEMBER_BYTES, subject, limit=info.file_size)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise AuditPackageError(f"{subject} cannot be read: {e}") from e
    if len(data) != info.file_size:
        raise AuditPackageError(
            f"{subject} holds {len(data)} bytes, its ZIP entry declares {info.file_size}"
        )
    return data


def read_package(data: bytes | BinaryIO, *, source: str) -> dict[str, bytes]:
    """Every member of the ZIP, each read within the caps; refuses what an audit package never
    holds before reading it: too many members, paths that escape or repeat, encrypted or
    oddly compressed members, declared sizes or ratios past the caps, and members that
    manifest.json does not list."""
    fh: BinaryIO = io.BytesIO(data) if isinstance(data, bytes) else data
    _zip_directory(fh, source)
    try:
        z = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, ValueError, EOFError) as e:
        raise AuditPackageError(f"{source}: not a ZIP file: {e}") from e
    files: dict[str, bytes] = {}
    with z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        _check_members(infos, source)
        by_name = {i.filename: i for i in infos}
        if "manifest.json" in by_name:
            files["manifest.json"] = _read_member(z, by_name["manifest.json"], source)
            try:
                manifest = canonical.loads(files["manifest.json"], source=f"{source} manifest.json")
            except CanonicalJSONError as e:
                raise AuditPackageError(e.message) from e
            listed = _listed_paths(manifest, source)
            for name in by_name:
                if name not in listed and name not in ("manifest.json", "SHA256SUMS"):
                    raise AuditPackageError(
                        f"{source}: {name} is not listed in manifest.json", hint="a file was added"
                    )
        for info in infos:
            if info.filename not in files:
                files[info.filename] = _read_member(z, info, source)
    return files


def _need(files: Mapping[str, bytes], path: str, source: str) -> bytes:
    if path not in files:
        raise AuditPackageError(f"{source}: {path} is missing from the package")
    return files[path]


def _check_listing(files: Mapping[str, bytes], source: str) -> None:
    manifest = canonical.loads(_need(files, "manifest.json", source), source=f"{source} manifest")
    listed = _listed_paths(manifest, source)
    for path, data in files.items():
        if path in ("manifest.json", "SHA256SUMS"):
            continue
        entry = listed.get(path)
        if entry is None:
            raise AuditPackageError(
                f"{source}: {path} is not listed in manifest.json", hint="a file was added"
            )
        actual = Digest.of_bytes(data).hex
        if actual != entry["sha256"] or len(data) != entry["size"]:
            raise AuditPackageError(
                f"{source}: {path} has sha256 {actual}, manifest.json lists {entry['sha256']}",
                hint="the file was changed after the package was made",
            )
    for path in listed:
        if path not in files:
            raise AuditPackageError(f"{source}: {path} is listed in manifest.json but missing")
    expected = _sums({k: v for k, v in files.items() if k != "SHA256SUMS"})
    if _need(files, "SHA256SUMS", source) != expected:
        raise AuditPackageError(
            f"{source}: SHA256SUMS does not list exactly the package's files and digests",
            hint="the file list was edited",
        )


def _check_forms(files: Mapping[str, bytes], bundle: bytes, source: str) -> None:
    envelope = sigstore.read(bundle, source=f"{source} rva/rva.sigstore.json").envelope
    try:
        dsse_form = dsse.Envelope.from_json(files["rva/rva.dsse.json"], source="rva/rva.dsse.json")
    except (KeyError, SignatureError) as e:
        raise AuditPackageError(f"{source}: rva/rva.dsse.json is missing or malformed") from e
    if dsse_form != envelope:
        raise AuditPackageError(
            f"{source}: rva/rva.dsse.json is not the envelope of rva/rva.sigstore.json"
        )
    if _need(files, "rva/statement.json", source) != envelope.payload:
        raise AuditPackageError(f"{source}: rva/statement.json is not the signed payload")
    if _need(files, "rva/rva.pae", source) != envelope.pae():
        raise AuditPackageError(
            f"{source}: rva/rva.pae is not the DSSE pre-authentication encoding of the payload"
        )
    if _need(files, "rva/rva.sig", source) not in {s.sig for s in envelope.signatures}:
        raise AuditPackageError(f"{source}: rva/rva.sig is not a signature of the envelope")


def _check_inputs(files: Mapping[str, bytes], p: Mapping[str, Any], source: str) -> None:
    listing = _need(files, "policy/files.json", source)
    if str(Digest.of_bytes(listing)) != p["policy"]["digest"]:
        raise AuditPackageError(
            f"{source}: policy/files.json has digest {Digest.of_bytes(listing)}, the verdict "
            f"pins policy {p['policy']['digest']}"
        )
    for entry in canonical.loads(listing, source="policy/files.json"):
        path = f"policy/files/{entry['path']}"
        if Digest.of_bytes(_need(files, path, source)).hex != entry["sha256"]:
            raise AuditPackageError(f"{source}: {path} does not match policy/files.json")
    snap = p["knowledgeSnapshot"]
    if snap is not None:
        manifest = _need(files, "knowledge/manifest.json", source)
        if str(Digest.of_bytes(manifest)) != snap["digest"]:
            raise AuditPackageError(
                f"{source}: knowledge/manifest.json has digest {Digest.of_bytes(manifest)}, the "
                f"verdict pins snapshot {snap['digest']}"
            )


def check_audit_chain(
    records_data: bytes,
    head_data: bytes,
    key: PublicKey | TrustPolicy,
    statement: Digest,
    *,
    source: str,
) -> AuditRecord:
    """Walk the exported audit log from genesis to its signed head; returns the gate record
    that names ``statement``. The head may be signed by any key of a policy (after a
    rotation, the newest)."""
    keys = [key] if isinstance(key, PublicKey) else [r.key for r in reversed(key.rules)]
    try:
        envelope = dsse.Envelope.from_json(head_data, source=f"{source} audit/head.json")
        signers = {s.keyid for s in envelope.signatures}
        chosen = next((k for k in keys if k.keyid in signers), keys[0])
        head = AuditHead.from_envelope(envelope, chosen, source=f"{source} audit/head.json")
    except StellaError as e:
        raise AuditRecordError(f"{source}: audit head checkpoint: {e.message}") from e
    prev = GENESIS
    found: AuditRecord | None = None
    count = 0
    for n, line in enumerate(records_data.splitlines(), 1):
        doc = canonical.loads(line, source=f"{source} audit/records.jsonl line {n}")
        if not isinstance(doc, dict):
            raise AuditRecordError(
                f"{source}: audit/records.jsonl line {n} is {kind_of(doc)}, not an audit record"
            )
        body = {k: v for k, v in doc.items() if k != "hash"}
        seq = doc.get("seq")
        if AuditRecord.hash_of(body) != doc.get("hash"):
            raise AuditRecordError(
                f"{source}: audit record {seq} ({doc.get('action')}) was edited: its hash "
                f"{doc.get('hash')} does not match its content",
                hint="the exported audit log was altered",
            )
        if doc.get("prev") != prev or seq != n:
            raise AuditRecordError(
                f"{source}: audit record {seq} does not follow record {n - 1} (chain broken)",
                hint="records were removed, inserted or reordered",
            )
        prev = str(doc["hash"])
        count = n
        if doc.get("action") == "gate" and doc.get("result", {}).get("statement") == str(statement):
            found = AuditRecord(
                seq=n,
                time=doc["time"],
                actor=doc["actor"],
                action=doc["action"],
                subject=doc["subject"],
                inputs=doc["inputs"],
                versions=doc["versions"],
                rule_digest=doc["ruleDigest"],
                result=doc["result"],
                prev=doc["prev"],
                hash=doc["hash"],
            )
    if count != head.seq or prev != head.hash:
        raise AuditRecordError(
            f"{source}: the audit log ends at record {count}, the signed head says {head.seq} "
            f"({head.hash})",
            hint="records were removed from or added to the end",
        )
    if found is None:
        raise AuditRecordError(
            f"{source}: no gate record in the audit log names statement {statement}"
        )
    return found


def _check_log_entry(
    files: Mapping[str, bytes], bundle: bytes, record: AuditRecord, source: str
) -> None:
    """The verdict's transparency-log entry verifies under the log key the package carries,
    and that key is the log the signed gate record names (so the appliance key vouches for
    it). Verdicts made before the appliance logged them carry no entry and no record of one."""
    logged = record.result.get("tlog")
    read = sigstore.read(bundle, source=f"{source} rva/rva.sigstore.json")
    if not isinstance(logged, Mapping):
        if read.entries:
            raise AuditPackageError(
                f"{source}: the RVA carries a log entry its gate record does not name"
            )
        return
    vkey = _need(files, "keys/tlog.vkey", source)
    log = Verifier.from_vkey(vkey.decode("utf-8", "replace"), source=f"{source} keys/tlog.vkey")
    if base64.b64encode(log_id(log)).decode() != logged.get("logId"):
        raise AuditPackageError(
            f"{source}: keys/tlog.vkey is not the log the signed gate record names",
            hint="the log key was swapped",
        )
    try:
        check_entry(next(iter(read.entries), None), [log], read.envelope)
    except TlogError as e:
        raise AuditPackageError(f"{source}: rva/rva.sigstore.json: {e.message}", hint=e.hint) from e


def _package_logs(files: Mapping[str, bytes], policy: TrustPolicy, source: str) -> list[Verifier]:
    """The package's own log key, trusted to prove when the verdict was signed only when the
    audit head (which vouches for it through the gate record, see :func:`_check_log_entry`)
    is signed by keys none of which is revoked: a stolen key could sign a head naming a log
    of the thief's making. Otherwise the auditor names the log (``--trusted-root``)."""
    vkey, head = files.get("keys/tlog.vkey"), files.get("audit/head.json")
    if vkey is None or head is None:
        return []
    try:
        envelope = dsse.Envelope.from_json(head, source=f"{source} audit/head.json")
        log = Verifier.from_vkey(vkey.decode("utf-8", "replace"), source=f"{source} keys/tlog.vkey")
    except StellaError:
        return []  # reported by the checks that read them
    rules = [policy.rule_for(s.keyid) for s in envelope.signatures]
    if not rules or any(r is None or r.revoked is not None for r in rules):
        return []
    return [log]


def _check_log_files(files: Mapping[str, bytes], bundle: bytes, source: str) -> None:
    """``tlog/entry.json`` and ``tlog/checkpoint.txt``, when present, are the RVA's own."""
    if "tlog/entry.json" not in files and "tlog/checkpoint.txt" not in files:
        return
    entries = sigstore.read(bundle, source=f"{source} rva/rva.sigstore.json").entries
    entry = canonical.loads(_need(files, "tlog/entry.json", source), source=f"{source} tlog")
    if entry not in [canonical.loads(canonical.dumps(e)) for e in entries]:
        raise AuditPackageError(f"{source}: tlog/entry.json is not an entry the RVA carries")
    note = entry.get("inclusionProof", {}).get("checkpoint", {}).get("envelope")
    if _need(files, "tlog/checkpoint.txt", source) != str(note).encode("utf-8"):
        raise AuditPackageError(f"{source}: tlog/checkpoint.txt is not the entry's checkpoint")


def verify_package(
    data: bytes | BinaryIO,
    key: PublicKey | TrustPolicy,
    *,
    source: str = "audit package",
    logs: Sequence[Verifier] | None = None,
    authorities: Sequence[TimestampAuthority] = (),
) -> PackageReport:
    """Check an audit package with ``key`` as the only trust anchor (see :data:`CHECKS`):
    the appliance's public key, or its exported keys with their validity windows. ``logs``
    (an auditor's trusted root) prove when the verdict was signed; by default the package's
    own log key does, where :func:`_package_logs` allows; ``authorities`` (the same trusted
    root's time-stamping authorities) by the RFC 3161 timestamps the RVA carries."""
    files = read_package(data, source=source)
    _check_listing(files, source)
    bundle = _need(files, "rva/rva.sigstore.json", source)
    policy = TrustPolicy.appliance(key) if isinstance(key, PublicKey) else key
    evidence = _evidence_blobs(files)
    trusted = _package_logs(files, policy, source) if logs is None else logs
    checked = verify_rva(
        bundle,
        policy,
        source=f"{source} RVA",
        blobs=evidence,
        logs=trusted,
        authorities=authorities,
    )
    if not checked.is_verdict:
        raise AuditPackageError(f"{source}: rva/rva.sigstore.json is not a risk verdict")
    manifest = canonical.loads(files["manifest.json"])
    if (
        manifest.get("statement") != str(checked.statement_digest)
        or manifest.get("subject") != checked.predicate["subject"]["digest"]
    ):
        raise AuditPackageError(
            f"{source}: manifest.json names subject {manifest.get('subject')} and statement "
            f"{manifest.get('statement')}, the signed verdict is about "
            f"{checked.predicate['subject']['digest']} (statement {checked.statement_digest})",
            hint="the package was assembled around another verdict",
        )
    _check_forms(files, bundle, source)
    _check_log_files(files, bundle, source)
    _check_inputs(files, checked.predicate, source)
    record = check_audit_chain(
        _need(files, "audit/records.jsonl", source),
        _need(files, "audit/head.json", source),
        key,
        checked.statement_digest,
        source=source,
    )
    checked = _with_audit(checked, record)
    _check_log_entry(files, bundle, record, source)
    explanation = explain.build(checked, evidence)
    for path, render in (
        ("explanation/explanation.html", explain.render_html),
        ("explanation/explanation.md", explain.render_markdown),
    ):
        if _need(files, path, source) != render(explanation).encode("utf-8"):
            raise AuditPackageError(
                f"{source}: {path} is not the explanation of the verified verdict",
                hint="the explanation was edited",
            )
    return PackageReport(checked, len(files), record.seq)
