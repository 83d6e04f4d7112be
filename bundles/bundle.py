"""The bundle statement: the signed first member of every ``NAME.stella.tar.zst``.

It is an in-toto Statement v1 in a DSSE envelope. Its subjects are every other member of the
archive, by name and SHA-256; its predicate says what the bundle is::

    {
      "kind": "full" | "delta",
      "sequence": 42,                       # only ever goes up, per channel (anti-rollback)
      "created": "2026-11-23T06:00:00Z",
      "expires": "2026-12-23T06:00:00Z",    # after this the bundle is refused (freeze)
      "channel": "default",                 # must match the appliance's trust root
      "snapshot": "sha256:…",               # the knowledge snapshot it carries or produces
      "baseSnapshot": "sha256:…",           # deltas only: the snapshot it applies to
      "sizes": {"member/name": 1234, …}     # every subject's exact size (bomb protection)
    }

Fields a newer writer adds are kept and covered by the signature, never interpreted.
Verification takes ``now`` and the last accepted sequence explicitly; each refusal says what
bundle would be accepted instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, BinaryIO, Final

from bundles import canonical, dsse, rfc3339
from bundles.archive import ArchiveReader, MemberSpec
from bundles.bounded import Section
from bundles.digest import Digest
from bundles.errors import BundleError, DigestError, SignatureError, TrustError
from bundles.intoto import PAYLOAD_TYPE, Statement, Subject
from bundles.signer import Signer
from bundles.trust import TrustRoot

BUNDLE_PREDICATE_TYPE: Final = "https://stella-ops.org/attestations/bundle/v1"
STATEMENT_MEMBER: Final = "statement.dsse.json"
BUNDLE_SUFFIX: Final = ".stella.tar.zst"

# The members a bundle carries besides its statement (written by stella-mirror export, read by
# stella import). knowledge.json sorts before knowledge/... ('.' < '/'), so the manifest arrives
# before the datasets it describes; images/... arrive first of all.
MANIFEST_MEMBER: Final = "knowledge.json"
DATASET_PREFIX: Final = "knowledge/datasets/"  # <sha256 hex>.jsonl: a whole dataset
PATCH_PREFIX: Final = "knowledge/patches/"  # <target sha256 hex>.jsonl: a delta to a dataset
BLOB_PREFIX: Final = "images/blobs/sha256/"  # <hex>: a blob of the mirrored images
IMAGES_INDEX: Final = "images/index.json"  # the mirror's OCI index.json, exact bytes
IMAGES_RECORDS: Final = "images/images.json"  # reference -> digest records of the mirror

_KNOWN: Final = frozenset(
    {"kind", "sequence", "created", "expires", "channel", "snapshot", "baseSnapshot", "sizes"}
)


class BundleKind(StrEnum):
    FULL = "full"
    DELTA = "delta"


class BundleRefusedError(BundleError, TrustError):
    """A well-formed bundle that this appliance must not accept (trust, channel, time, order)."""


class BundleRollbackError(BundleRefusedError):
    """The bundle's sequence is not newer than the last one accepted."""


class BundleExpiredError(BundleRefusedError):
    """The bundle's expiry has passed (freeze attack, or a stale copy)."""


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with a ``Z``, whole seconds: the only time format written in bundles."""
    return rfc3339.format_time(when)


def parse_time(text: Any, where: str) -> datetime:
    try:
        return rfc3339.parse_time(text, where=where)
    except rfc3339.TimeFormatError as e:
        raise BundleError(e.message, hint=e.hint) from e


@dataclass(frozen=True, slots=True)
class BundlePredicate:
    kind: BundleKind
    sequence: int
    created: datetime
    expires: datetime
    channel: str
    snapshot: Digest | None = None
    base_snapshot: Digest | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise BundleError(f"bundle sequence must be a positive integer, got {self.sequence}")
        if self.expires <= self.created:
            raise BundleError("bundle expires before it was created")
        if (self.kind is BundleKind.DELTA) != (self.base_snapshot is not None):
            raise BundleError("a delta bundle names its base snapshot; a full bundle names none")

    def to_dict(self, sizes: Mapping[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "kind": str(self.kind),
                "sequence": self.sequence,
                "created": format_time(self.created),
                "expires": format_time(self.expires),
                "channel": self.channel,
                "sizes": dict(sorted(sizes.items())),
            }
        )
        if self.snapshot is not None:
            out["snapshot"] = str(self.snapshot)
        if self.base_snapshot is not None:
            out["baseSnapshot"] = str(self.base_snapshot)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str) -> BundlePredicate:
        where = f"{source}: predicate"
        try:
            kind = BundleKind(str(doc.get("kind")))
        except ValueError as e:
            raise BundleError(f"{where}.kind is {doc.get('kind')!r}, expected full or delta") from e
        sequence = doc.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise BundleError(f"{where}.sequence must be an integer, got {sequence!r}")
        channel = doc.get("channel")
        if not isinstance(channel, str) or not channel:
            raise BundleError(f"{where}.channel must be a non-empty string, got {channel!r}")

        def digest(name: str) -> Digest | None:
            value = doc.get(name)
            if value is None:
                return None
            try:
                return Digest.parse(value)
            except DigestError as e:
                raise BundleError(f"{where}.{name}: {e.message}") from e

        return cls(
            kind=kind,
            sequence=sequence,
            created=parse_time(doc.get("created"), f"{where}.created"),
            expires=parse_time(doc.get("expires"), f"{where}.expires"),
            channel=channel,
            snapshot=digest("snapshot"),
            base_snapshot=digest("baseSnapshot"),
            extra={k: v for k, v in doc.items() if k not in _KNOWN},
        )


@dataclass(frozen=True, slots=True)
class BundleStatement:
    """A verified bundle statement: what it is, and every member it vouches for."""

    predicate: BundlePredicate
    members: Mapping[str, MemberSpec]
    statement: Statement
    keyids: tuple[str, ...] = ()

    @property
    def total_size(self) -> int:
        return sum(m.size for m in self.members.values())


def make_statement(predicate: BundlePredicate, members: Iterable[MemberSpec]) -> Statement:
    specs = sorted(members, key=lambda m: m.name)
    if not specs:
        raise BundleError("a bundle must carry at least one member besides its statement")
    if any(m.name == STATEMENT_MEMBER for m in specs):
        raise BundleError(f"member name {STATEMENT_MEMBER} is reserved for the statement")
    subjects = tuple(Subject.of(m.name, m.digest) for m in specs)
    body = predicate.to_dict({m.name: m.size for m in specs})
    return Statement(subjects, BUNDLE_PREDICATE_TYPE, body)


def sign_statement(statement: Statement, keys: Signer | Iterable[Signer]) -> bytes:
    """The envelope bytes that become the bundle's first member."""
    return dsse.sign(statement.to_bytes(), PAYLOAD_TYPE, keys).to_json()


def parse_statement(statement: Statement, source: str) -> BundleStatement:
    """Read the bundle facts out of a (verified) statement."""
    if statement.predicate_type != BUNDLE_PREDICATE_TYPE:
        raise BundleError(
            f"{source}: predicate type is {statement.predicate_type!r}, "
            f"expected {BUNDLE_PREDICATE_TYPE!r}",
            hint="this is not a Stella Ops bundle statement",
        )
    predicate = BundlePredicate.from_dict(statement.predicate, source)
    sizes = statement.predicate.get("sizes")
    if not isinstance(sizes, Mapping):
        raise BundleError(f"{source}: predicate.sizes must be an object of member sizes")
    members: dict[str, MemberSpec] = {}
    for subject in statement.subjects:
        if subject.name in members:
            raise BundleError(f"{source}: subject {subject.name!r} is listed twice")
        size = sizes.get(subject.name)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError(f"{source}: predicate.sizes has no valid size for {subject.name!r}")
        members[subject.name] = MemberSpec(subject.name, subject.sha256, size)
    if set(sizes) != set(members):
        extra = sorted(set(sizes) - set(members))
        raise BundleError(f"{source}: predicate.sizes names members that are not subjects: {extra}")
    return BundleStatement(predicate, members, statement)


def verify_statement(
    envelope_bytes: bytes,
    trust: TrustRoot,
    *,
    now: datetime,
    last_sequence: int | None = None,
    source: str = "bundle",
) -> BundleStatement:
    """Verify the first member against the trust root and the appliance's state.

    Order of checks: signature by a threshold of the root's bundle keys; then channel; then
    expiry; then sequence. Each refusal names what would be accepted.
    """
    envelope = dsse.Envelope.from_json(envelope_bytes, source=f"{source}: {STATEMENT_MEMBER}")
    signers = ", ".join(k[:12] for k in sorted(trust.bundle_keys))
    try:
        verified = dsse.verify(
            envelope,
            trust.bundle_keys.values(),
            threshold=trust.bundle_threshold,
            payload_type=PAYLOAD_TYPE,
        )
    except SignatureError as e:
        raise BundleRefusedError(
            f"{source}: {e.message}",
            hint=(
                f"trust root v{trust.version} (channel {trust.channel!r}) accepts bundles signed "
                f"by {trust.bundle_threshold} of: {signers}"
            ),
        ) from e
    statement = Statement.from_bytes(verified.payload, source=f"{source}: statement")
    parsed = parse_statement(statement, source)
    predicate = parsed.predicate
    if predicate.channel != trust.channel:
        raise BundleRefusedError(
            f"{source}: bundle is for channel {predicate.channel!r}, "
            f"this appliance accepts channel {trust.channel!r}",
            hint="import the bundle exported for this appliance's channel",
        )
    if now >= predicate.expires:
        raise BundleExpiredError(
            f"{source}: bundle sequence {predicate.sequence} expired at "
            f"{format_time(predicate.expires)} (now {format_time(now)})",
            hint="export a fresh bundle on the connected side and carry it over",
        )
    if last_sequence is not None and predicate.sequence <= last_sequence:
        raise BundleRollbackError(
            f"{source}: bundle sequence {predicate.sequence} is not newer than the last "
            f"imported sequence {last_sequence}",
            hint=f"import a bundle with sequence {last_sequence + 1} or higher",
        )
    return BundleStatement(predicate, parsed.members, statement, verified.keyids)


def peek_statement(envelope_bytes: bytes, *, source: str = "bundle") -> BundleStatement:
    """Read the statement WITHOUT verifying it: only to choose which trust root to verify it
    with and to find the trust roots it carries. Never base a decision on the result."""
    envelope = dsse.Envelope.from_json(envelope_bytes, source=f"{source}: {STATEMENT_MEMBER}")
    statement = Statement.from_bytes(envelope.payload, source=f"{source}: statement")
    return parse_statement(statement, source)


def carried_roots(bundle: BundleStatement, *, source: str = "bundle") -> list[TrustRoot]:
    """The trust-root versions a bundle carries (``trustRoots``), oldest first. Each is
    self-signed; whether it may replace the appliance's root is decided by
    :meth:`TrustRoot.check_successor`, never by the bundle's own signature."""
    return roots_from_json(bundle.predicate.extra.get("trustRoots", []), source=source)


def roots_from_json(raw: Any, *, source: str = "bundle") -> list[TrustRoot]:
    """Parse carried trust-root documents, oldest first (see :func:`carried_roots`)."""
    if not isinstance(raw, list | tuple):
        raise BundleError(f"{source}: predicate.trustRoots must be an array")
    roots = [
        TrustRoot.from_bytes(canonical.dumps(doc), source=f"{source}: trustRoots[{i}]")
        for i, doc in enumerate(raw)
    ]
    return sorted(roots, key=lambda r: r.version)


def hashed_file(raw: BinaryIO, size: int, source: str, *, hint: str) -> Section:
    """A bundle file's bytes as the decompressor reads them, hashed on the way (its identity):
    exactly ``size`` bytes, the size the file (or its parts manifest) has; ``hint`` says what
    to do when the file changes meanwhile. Read it to its end (``skip``) before ``digest``."""

    def short(got: int, size: int) -> BundleError:
        return BundleError(
            f"{source}: the bundle ends after {got:,} of its {size:,} bytes", hint=hint
        )

    def long(_got: int, size: int) -> BundleError:
        return BundleError(
            f"{source}: the bundle grew past its {size:,} bytes while it was read", hint=hint
        )

    # to_eof: the source's own end is read too, where the parts' stream checks its last part.
    return Section(raw, size, hash=True, short=short, long=long, to_eof=True)


def verify_bundle(
    stream: BinaryIO,
    trust: TrustRoot,
    *,
    now: datetime,
    source: str = "bundle",
) -> BundleStatement:
    """Verify a whole bundle without loading it: the statement against ``trust`` (walking any
    trust-root rotation the bundle carries), then every member's size and digest."""
    reader = ArchiveReader(stream, source=source)
    envelope = reader.read_first(STATEMENT_MEMBER)
    carried = carried_roots(peek_statement(envelope, source=source), source=source)
    newest, _ = newest_root(trust, carried, now=now)
    bundle = verify_statement(envelope, newest, now=now, source=source)
    for member in reader.members(bundle.members):
        for _ in member.chunks():
            pass
    return bundle


def newest_root(
    current: TrustRoot, carried: list[TrustRoot], *, now: datetime
) -> tuple[TrustRoot, list[TrustRoot]]:
    """Walk the carried roots newer than ``current`` as a rotation chain (TUF's rule: each
    signed by the previous and by itself). Returns the newest root and the steps taken."""
    chain = [r for r in carried if r.version > current.version]
    newest = current
    for root in chain:
        newest.check_successor(root, now=now)
        newest = root
    return newest, chain
