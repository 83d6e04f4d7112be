"""``stella-mirror export``: a knowledge snapshot as one signed bundle, full or delta.

Members, in the order the archive writer fixes (statement first, then by name)::

    statement.dsse.json                   the signed statement (bundles.bundle)
    knowledge.json                        the snapshot manifest, exact canonical bytes
    knowledge/datasets/<hex>.jsonl        a whole dataset (full bundles; new datasets in deltas)
    knowledge/patches/<hex>.jsonl         a delta to dataset <hex>: a header line
                                          {"base", "target", "removed": [ids]} then the added or
                                          changed records, in id order

Every trust-root version kept beside the signing key (``history/``) travels inside the
statement's predicate as ``trustRoots``: each is self-signed under TUF's rules, so an appliance
can walk a rotation from the root it trusts before it checks the statement's signature (which,
after a signing-key rotation, only the newer root can vouch for).

``knowledge.json`` sorts before ``knowledge/…`` ('.' < '/'), so the appliance reads the
manifest before the datasets it describes and loads everything in one pass. Applying a delta
must reproduce every target dataset digest and the target snapshot digest exactly, or the
appliance applies nothing.

Sequence numbers come from ``exports.jsonl`` in the workspace (the last one plus one) unless
given; they must only ever go up per channel, or appliances refuse the bundle as a rollback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import click

from bundles import canonical
from bundles.archive import DEFAULT_LEVEL, MemberSource, write_archive
from bundles.bounded import printable
from bundles.bundle import (
    BLOB_PREFIX,
    DATASET_PREFIX,
    IMAGES_INDEX,
    IMAGES_RECORDS,
    MANIFEST_MEMBER,
    PATCH_PREFIX,
    STATEMENT_MEMBER,
    BundleKind,
    BundlePredicate,
    format_time,
    hashed_file,
    make_statement,
    newest_root,
    roots_from_json,
    sign_statement,
    verify_bundle,
)
from bundles.clikit import CliContext, pass_ctx
from bundles.digest import Digest
from bundles.errors import BundleError
from bundles.keys import passphrase_from_env
from bundles.oci import OCILayout
from bundles.parts import (
    PartError,
    assemble,
    first_header,
    is_part,
    parse_size,
    part_name,
    peek_manifest,
    split_bundle,
    verify_part,
)
from bundles.pkcs11_uri import is_pkcs11_uri
from bundles.signer import Signer, load_signer
from bundles.snapshot import Manifest, record_id
from bundles.trust import TrustRoot
from mirror.snapshot import SnapshotStore

DEFAULT_VALIDITY: Final = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    digest: Digest
    size: int
    kind: BundleKind
    sequence: int
    snapshot: Digest
    base: Digest | None
    members: int
    payload_size: int


def _lines(data: bytes) -> Iterator[tuple[str, bytes]]:
    for line in data.splitlines():
        yield record_id(line), line


def make_patch(base: bytes, target: bytes, base_digest: Digest, target_digest: Digest) -> bytes:
    """The patch member that turns dataset ``base`` into ``target`` (see the module docstring)."""
    old = dict(_lines(base))
    new = dict(_lines(target))
    removed = sorted(k for k in old if k not in new)
    puts = [new[k] for k in sorted(new) if old.get(k) != new[k]]
    header = canonical.dumps(
        {"base": str(base_digest), "target": str(target_digest), "removed": removed}
    )
    return b"".join(line + b"\n" for line in (header, *puts))


def knowledge_members(
    store: SnapshotStore, snapshot: Digest, base: Digest | None
) -> tuple[list[MemberSource], Manifest]:
    manifest = store.manifest(snapshot)
    members = [MemberSource.from_bytes(MANIFEST_MEMBER, store.manifest_bytes(snapshot))]
    base_by_name = {}
    if base is not None:
        base_by_name = {d.name: d for d in store.manifest(base).datasets}
    for entry in manifest.datasets:
        old = base_by_name.get(entry.name)
        if old is not None and old.digest == entry.digest:
            continue  # the appliance has it already
        if old is None:
            path = store.dataset_path(entry.digest)
            store.dataset_bytes(entry.digest)  # verifies the stored bytes
            members.append(
                MemberSource.from_file(f"{DATASET_PREFIX}{entry.digest.hex}.jsonl", path)
            )
        else:
            patch = make_patch(
                store.dataset_bytes(old.digest),
                store.dataset_bytes(entry.digest),
                old.digest,
                entry.digest,
            )
            members.append(
                MemberSource.from_bytes(f"{PATCH_PREFIX}{entry.digest.hex}.jsonl", patch)
            )
    return members, manifest


def trust_history(key_dir: Path) -> list[dict[str, object]]:
    """Every trust-root version beside the signing key, oldest first, as JSON documents."""
    history = key_dir / "history"
    roots = (
        [TrustRoot.load(p) for p in history.glob("trust-root.v*.json")] if history.is_dir() else []
    )
    return [json.loads(r.to_bytes()) for r in sorted(roots, key=lambda r: r.version)]


def image_members(
    workspace: Path, omit: set[Digest]
) -> tuple[list[MemberSource], list[Digest], list[Digest]]:
    """The mirrored images as members: every blob reachable from the workspace layout's
    index.json (except ``omit``, blobs the base bundle carried), the exact index.json, and the
    tag -> digest records. Returns the members, the blobs carried, and the blobs omitted."""
    path = workspace / "oci"
    if not (path / "index.json").is_file():
        return [], [], []
    layout = OCILayout.open(path)
    if not layout.entries():
        return [], [], []
    reachable = layout.reachable()
    carried: list[Digest] = []
    omitted: list[Digest] = []
    members: list[MemberSource] = []
    for digest in sorted(reachable.blobs - reachable.missing):
        if digest in omit:
            omitted.append(digest)
            continue
        members.append(
            MemberSource.from_file(f"{BLOB_PREFIX}{digest.hex}", layout.blob_path(digest))
        )
        carried.append(digest)
    members.append(MemberSource.from_bytes(IMAGES_INDEX, (path / "index.json").read_bytes()))
    records = workspace / "images.json"
    if records.is_file():
        members.append(MemberSource.from_bytes(IMAGES_RECORDS, records.read_bytes()))
    return members, carried, omitted


def blobs_carried_by(workspace: Path, snapshot: Digest) -> set[Digest]:
    """Blobs the latest export of ``snapshot`` carried (what a delta against it may omit)."""
    found: set[Digest] = set()
    log = _exports_log(workspace)
    if log.is_file():
        for line in log.read_bytes().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("snapshot") == str(snapshot):
                found = {Digest.parse(d) for d in entry.get("blobs", [])}
    return found


def _exports_log(workspace: Path) -> Path:
    return workspace / "exports.jsonl"


def last_sequence(workspace: Path) -> int:
    log = _exports_log(workspace)
    best = 0
    if log.is_file():
        for line in log.read_bytes().splitlines():
            try:
                best = max(best, int(json.loads(line)["sequence"]))
            except (ValueError, KeyError, TypeError):
                continue
    return best


def export_bundle(
    workspace: Path,
    out: Path,
    *,
    key: Signer,
    trust: TrustRoot | None,
    key_dir: Path | None,
    now: datetime,
    snapshot_ref: str = "latest",
    base_ref: str | None = None,
    channel: str | None = None,
    sequence: int | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
    level: int = DEFAULT_LEVEL,
    threads: int | None = None,
) -> ExportResult:
    store = SnapshotStore(workspace)
    snapshot = store.resolve(snapshot_ref)
    base = store.resolve(base_ref) if base_ref else None
    if base == snapshot:
        raise BundleError(
            f"the base snapshot is the snapshot being exported ({snapshot})",
            hint="a delta needs an older base; build a new snapshot first",
        )
    if trust is not None and key.keyid not in trust.bundle_keys:
        raise BundleError(
            f"signing key {key.keyid[:16]} is not a bundle key of trust root v{trust.version}",
            hint="appliances would refuse this bundle; sign with the key the trust root names",
        )
    chosen_channel = channel or (trust.channel if trust else None)
    if chosen_channel is None:
        raise BundleError(
            "no channel: put trust-root.json beside the signing key or pass --channel"
        )
    seq = sequence if sequence is not None else last_sequence(workspace) + 1
    members, _ = knowledge_members(store, snapshot, base)
    omit = blobs_carried_by(workspace, base) if base else set()
    images, carried, omitted = image_members(workspace, omit)
    members += images
    roots = trust_history(key_dir) if key_dir is not None else []
    extra: dict[str, object] = {}
    if roots:
        extra["trustRoots"] = roots
    if omitted:
        extra["requiresBlobs"] = [str(d) for d in omitted]
    predicate = BundlePredicate(
        kind=BundleKind.DELTA if base else BundleKind.FULL,
        sequence=seq,
        created=now,
        expires=now + validity,
        channel=chosen_channel,
        snapshot=snapshot,
        base_snapshot=base,
        extra=extra,
    )
    statement = make_statement(predicate, [m.spec for m in members])
    first = MemberSource.from_bytes(STATEMENT_MEMBER, sign_statement(statement, key))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write_archive(fh, first, members, level=level, threads=threads)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    digest, size = Digest.of_file(out)
    result = ExportResult(
        path=out,
        digest=digest,
        size=size,
        kind=predicate.kind,
        sequence=seq,
        snapshot=snapshot,
        base=base,
        members=len(members),
        payload_size=sum(m.spec.size for m in members),
    )
    with open(_exports_log(workspace), "ab") as log:
        log.write(
            canonical.dumps(
                {
                    "bundle": str(digest),
                    "channel": chosen_channel,
                    "created": statement.predicate["created"],
                    "kind": str(predicate.kind),
                    "path": str(out),
                    "sequence": seq,
                    "snapshot": str(snapshot),
                    "base": str(base) if base else None,
                    "blobs": [str(d) for d in carried],
                }
            )
            + b"\n"
        )
    return result


def _load_signing_key(home: Path, key: str | None) -> tuple[Signer, Path]:
    if key is not None and is_pkcs11_uri(key):  # the trust root: in the workspace's keys/
        return load_signer(key), home / "mirror" / "keys" / "signing.uri"
    path = Path(key) if key else home / "mirror" / "keys" / "signing.key"
    if key is None and not path.exists():
        raise BundleError(
            "no signing key given", hint="pass --key DIR/signing.key (from 'keys generate')"
        )
    return load_signer(path, passphrase=passphrase_from_env()), path


@click.command("export")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="NAME.stella.tar.zst",
)
@click.option(
    "--snapshot", "snapshot_ref", default="latest", show_default=True, help="Snapshot to export."
)
@click.option(
    "--base", "base_ref", default=None, help="Export a delta against this older snapshot."
)
@click.option("--key", help="Signing key: a key file, DIR/signing.uri, or a pkcs11: URI.")
@click.option("--channel", default=None, help="Channel [default: the trust root's beside the key].")
@click.option("--sequence", type=click.IntRange(1), default=None, help="[default: last export + 1]")
@click.option("--expires-days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option(
    "--level",
    type=click.IntRange(1, 22),
    default=DEFAULT_LEVEL,
    show_default=True,
    help="zstd level.",
)
@click.option("--split", default=None, help="Split into parts of this size (e.g. 4480M for a DVD).")
@pass_ctx
def export_cmd(
    ctx: CliContext,
    out: Path,
    snapshot_ref: str,
    base_ref: str | None,
    key: str | None,
    channel: str | None,
    sequence: int | None,
    expires_days: int,
    level: int,
    split: str | None,
) -> None:
    """Export a snapshot as a signed bundle (full, or a delta with --base)."""
    part_size = parse_size(split) if split else None
    signing, key_path = _load_signing_key(ctx.home, key)
    root_path = key_path.parent / "trust-root.json"
    trust = TrustRoot.load(root_path) if root_path.exists() else None
    result = export_bundle(
        ctx.home / "mirror",
        out,
        key=signing,
        trust=trust,
        key_dir=key_path.parent,
        now=datetime.now(UTC),
        snapshot_ref=snapshot_ref,
        base_ref=base_ref,
        channel=channel,
        sequence=sequence,
        validity=timedelta(days=expires_days),
        level=level,
    )
    parts: list[Path] = []
    parts_manifest: Path | None = None
    if part_size is not None:
        channel_used = channel or (trust.channel if trust else "")
        parts, parts_manifest = split_bundle(
            result.path, part_size, signing, channel_used, trust_history(key_path.parent)
        )
    ctx.emit(
        {
            "parts": [str(p) for p in parts],
            "partsManifest": str(parts_manifest) if parts_manifest else None,
            "bundle": str(result.path),
            "digest": str(result.digest),
            "size": result.size,
            "kind": str(result.kind),
            "sequence": result.sequence,
            "snapshot": str(result.snapshot),
            "base": str(result.base) if result.base else None,
            "members": result.members,
            "payloadSize": result.payload_size,
        },
        lambda: (
            f"{result.path}: {result.kind} bundle, sequence {result.sequence}, "
            f"{result.size:,} bytes ({result.payload_size:,} uncompressed), "
            f"{result.members} members\n"
            f"snapshot {result.snapshot}"
            + (f"\nbase     {result.base}" if result.base else "")
            + f"\ndigest   {result.digest}"
            + "".join(f"\npart     {p}" for p in parts)
        ),
    )


@click.command("verify")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--trust-root",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The trust-root.json the appliances hold.",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Check only the parts given, each on its own; without it a missing part is an error.",
)
@pass_ctx
def verify_cmd(
    ctx: CliContext, files: tuple[Path, ...], trust_root: Path, partial: bool = False
) -> None:
    """Check a bundle, or its parts, before they are carried: signature, trust, expiry, every
    member. Each part is checked on its own; a complete set is also checked as a whole, and
    a set with a part missing fails unless --partial says only these parts are checked."""
    trust = TrustRoot.load(trust_root)
    now = datetime.now(UTC)
    trust.check_signed(now=now)
    bundle = files[0]
    if len(files) > 1 or is_part(bundle):
        _verify_parts(ctx, list(files), trust, now, partial=partial)
        return
    with open(bundle, "rb") as fh:  # hashed as it is verified: one read of the file, not two
        stream = hashed_file(
            fh,
            os.fstat(fh.fileno()).st_size,
            printable(str(bundle)),
            hint="the file changed while it was being verified; verify it again",
        )
        statement = verify_bundle(stream.buffered(), trust, now=now, source=printable(bundle.name))
        stream.skip()  # whatever follows the archive is part of the file and of its digest
    predicate = statement.predicate
    digest, size = stream.digest(), stream.size
    ctx.emit(
        {
            "bundle": printable(str(bundle)),
            "digest": str(digest),
            "size": size,
            "verified": True,
            "kind": str(predicate.kind),
            "sequence": predicate.sequence,
            "channel": predicate.channel,
            "expires": format_time(predicate.expires),
            "snapshot": str(predicate.snapshot) if predicate.snapshot else None,
            "members": len(statement.members),
            "keyids": list(statement.keyids),
        },
        lambda: (
            f"{printable(str(bundle))}: OK — {predicate.kind} bundle, sequence "
            f"{predicate.sequence}, channel {predicate.channel}, {len(statement.members)} "
            "members verified, expires "
            f"{format_time(predicate.expires)}"
        ),
    )


def _verify_parts(
    ctx: CliContext, files: list[Path], trust: TrustRoot, now: datetime, *, partial: bool
) -> None:
    header, source = first_header(files)
    carried = roots_from_json(peek_manifest(header, source=source).trust_roots, source=source)
    newest, _ = newest_root(trust, carried, now=now)
    checks = [verify_part(p, newest) for p in files]
    manifest = checks[0].manifest
    present = {c.index for c in checks}
    complete = present == set(range(1, manifest.count + 1))
    statement = None
    if complete:
        _, stream = assemble(files, newest)
        with stream:
            statement = verify_bundle(stream, trust, now=now, source=manifest.bundle_name)  # type: ignore[arg-type]
    missing = sorted(set(range(1, manifest.count + 1)) - present)
    if missing and not partial:
        names = ", ".join(part_name(manifest.bundle_name, i, manifest.count) for i in missing)
        raise PartError(
            f"{manifest.bundle_name}: {len(missing)} of {manifest.count} parts missing: {names}",
            hint="give every part to check the set as a whole, or pass --partial to check only "
            "the parts given",
        )
    ctx.emit(
        {
            "bundle": manifest.bundle_name,
            "digest": str(manifest.bundle_digest),
            "parts": [
                {"file": printable(str(c.path)), "index": c.index, "verified": True} for c in checks
            ],
            "count": manifest.count,
            "missing": missing,
            "verified": True,
            "complete": complete,
            "sequence": statement.predicate.sequence if statement else None,
        },
        lambda: "\n".join(
            [f"{printable(c.path.name)}: OK — part {c.index} of {c.count}" for c in checks]
            + (
                [f"{manifest.bundle_name}: complete set verified as a whole"]
                if complete
                else [f"{manifest.bundle_name}: parts not given here: {missing}"]
            )
        ),
    )
