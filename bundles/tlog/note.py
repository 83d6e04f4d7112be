"""C2SP ``signed-note`` with ``tlog-checkpoint`` bodies and ``tlog-cosignature`` lines.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <name> base64(key hash[4] || signature)``. Ed25519 note keys hash as
``SHA-256(name || "\\n" || 0x01 || public key)[:4]``; Ed25519 witness cosignatures use
type ``0x04`` and sign ``cosignature/v1\\ntime <t>\\n`` followed by the note body, the
signature being ``u64 timestamp || Ed25519 signature``. Verifier keys are written as C2SP
vkeys: ``<name>+<key hash hex>+base64(type || public key)``.

A checkpoint's body is the origin line, the tree size in decimal, the base64 root hash and
optional extension lines. Signatures by keys the reader does not know are kept, never
trusted.

A log timestamps its own checkpoints (``stella-log-timestamp/v1``, docs/transparency.md):
beside its note signature it adds a ``cosignature/v1`` line made with the same Ed25519 key
as a type ``0x04`` key under the log's own name, so the time is signed by the log key over
the checkpoint text, in the form any tlog-cosignature reader parses, and the checkpoint text
itself (what witnesses, consistency checks and auditors compare) is unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bundles.keys import KeyType, PrivateKey, PublicKey
from bundles.tlog import TlogError
from bundles.tlog.merkle import HASH_SIZE

DASH: Final = "\u2014 "
ED25519: Final = 0x01
COSIGNATURE_V1: Final = 0x04
NOTE_LIMIT: Final = 1 << 20
MAX_SIGNATURES: Final = 100
TIMESTAMP_VERSION: Final = "stella-log-timestamp/v1"


class NoteError(TlogError):
    """A signed note or checkpoint is malformed, or no trusted signature verifies."""


def key_hash(name: str, kind: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(
            f"note key name {name!r} is not usable",
            hint="a key name has no spaces and no '+', e.g. example.com/log",
        )
    return name


def raw_ed25519(key: PublicKey) -> bytes:
    crypto = key.crypto
    if key.key_type is not KeyType.ED25519 or not isinstance(crypto, ed25519.Ed25519PublicKey):
        raise NoteError(
            f"{key.source}: a note key must be Ed25519, not {key.key_type.value}",
            hint="generate an Ed25519 key for the log or the witness",
        )
    return crypto.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class Verifier:
    """A named Ed25519 note key: a log's key (type 0x01) or a witness's (type 0x04)."""

    name: str
    public: bytes = field(repr=False)
    kind: int = ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public) != 32 or self.kind not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"note key {self.name}: not an Ed25519 key of a known type")

    @property
    def hash(self) -> bytes:
        return key_hash(self.name, self.kind, self.public)

    def vkey(self) -> str:
        raw = base64.b64encode(bytes([self.kind]) + self.public).decode()
        return f"{self.name}+{self.hash.hex()}+{raw}"

    @classmethod
    def from_vkey(cls, text: str, *, source: str = "verifier key") -> Verifier:
        name, _, rest = text.strip().partition("+")
        hash_hex, _, raw_b64 = rest.partition("+")
        try:
            raw = base64.b64decode(raw_b64, validate=True)
            verifier = cls(name, raw[1:], raw[0])
        except (ValueError, IndexError, binascii.Error, NoteError) as e:
            raise NoteError(
                f"{source}: not a C2SP verifier key (name+hash+base64 key)",
                hint="write it with 'stella log checkpoint --json' or 'stella log cosign'",
            ) from e
        if verifier.hash.hex() != hash_hex:
            raise NoteError(f"{source}: the key hash {hash_hex} does not match its key")
        return verifier

    def check(self, signature: bytes, message: bytes) -> bool:
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """Signs notes with an Ed25519 private key under a name."""

    name: str
    key: PrivateKey = field(repr=False)
    kind: int = ED25519

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, raw_ed25519(self.key.public_key), self.kind)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    hash: bytes
    signature: bytes

    def line(self) -> str:
        return f"{DASH}{self.name} {base64.b64encode(self.hash + self.signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text (ending in a newline) and its signature lines, kept as read."""

    text: str
    signatures: tuple[Signature, ...] = ()

    def to_text(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    @classmethod
    def parse(cls, data: str | bytes, *, source: str = "note") -> Note:
        if isinstance(data, bytes):
            if len(data) > NOTE_LIMIT:
                raise NoteError(f"{source}: larger than {NOTE_LIMIT} bytes")
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise NoteError(f"{source}: not UTF-8 text") from e
        text, sep, block = data.partition("\n\n")
        if not sep or not text:
            raise NoteError(
                f"{source}: no blank line between the note text and its signatures",
                hint="expected a C2SP signed note (a checkpoint)",
            )
        if "\r" in data or not block.endswith("\n"):
            raise NoteError(f"{source}: the signature block must end in a newline, no CR")
        signatures = []
        for n, line in enumerate(block[:-1].split("\n"), 1):
            if not line.startswith(DASH):
                raise NoteError(f"{source}: signature line {n} does not start with an em dash")
            name, _, b64 = line[len(DASH) :].partition(" ")
            try:
                raw = base64.b64decode(b64, validate=True)
            except binascii.Error as e:
                raise NoteError(f"{source}: signature line {n} is not base64") from e
            if len(raw) < 5 or not name:
                raise NoteError(f"{source}: signature line {n} is too short")
            signatures.append(Signature(name, raw[:4], raw[4:]))
        if not signatures or len(signatures) > MAX_SIGNATURES:
            raise NoteError(f"{source}: a note needs 1 to {MAX_SIGNATURES} signatures")
        return cls(text + "\n", tuple(signatures))

    def signed_by(self, verifier: Verifier) -> bool:
        """True when a signature by this (log) key verifies over the text."""
        return any(
            s.name == verifier.name
            and s.hash == verifier.hash
            and verifier.check(s.signature, self.text.encode())
            for s in self.signatures
        )

    def add(self, signature: Signature) -> Note:
        kept = tuple(
            s for s in self.signatures if (s.name, s.hash) != (signature.name, signature.hash)
        )
        return Note(self.text, (*kept, signature))


def sign_note(text: str, signer: NoteSigner) -> Note:
    if not text.endswith("\n"):
        raise NoteError("a note's text must end in a newline")
    v = signer.verifier
    return Note(text, (Signature(v.name, v.hash, signer.sign(text.encode())),))


# ---------------------------------------------------------------- checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def from_text(cls, text: str, *, source: str = "checkpoint") -> Checkpoint:
        lines = text.split("\n")[:-1]
        if len(lines) < 3 or not lines[0]:
            raise NoteError(f"{source}: expected an origin, a tree size and a root hash line")
        size_text, root_text = lines[1], lines[2]
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise NoteError(f"{source}: tree size {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as e:
            raise NoteError(f"{source}: root hash {root_text!r} is not base64") from e
        if len(root) != HASH_SIZE:
            raise NoteError(f"{source}: root hash is {len(root)} bytes, not {HASH_SIZE}")
        return cls(lines[0], int(size_text), root, tuple(lines[3:]))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: Note

    def to_text(self) -> str:
        return self.note.to_text()

    @classmethod
    def sign(
        cls, checkpoint: Checkpoint, signer: NoteSigner, *, timestamp: int | None = None
    ) -> SignedCheckpoint:
        """Sign ``checkpoint`` with the log key; with ``timestamp`` (POSIX seconds), also
        add the log's own timestamp cosignature (see the module docstring)."""
        signed = cls(checkpoint, sign_note(checkpoint.text(), signer))
        if timestamp is None:
            return signed
        return signed.cosign(NoteSigner(signer.name, signer.key, COSIGNATURE_V1), timestamp)

    def timestamp(self, log: Verifier) -> int | None:
        """The time (POSIX seconds) the log key signed for this checkpoint, or None when it
        carries no valid timestamp cosignature by ``log``. Only meaningful once
        :meth:`verify` accepted the checkpoint for ``log``."""
        return self.cosignatures([timestamp_verifier(log)]).get(log.name)

    @classmethod
    def parse(cls, data: str | bytes, *, source: str = "checkpoint") -> SignedCheckpoint:
        note = Note.parse(data, source=source)
        return cls(Checkpoint.from_text(note.text, source=source), note)

    def verify(self, log: Verifier, *, source: str = "checkpoint") -> Checkpoint:
        """The checkpoint, once the log's signature verifies and the origin is the log's."""
        if self.checkpoint.origin != log.name:
            raise NoteError(
                f"{source}: origin {self.checkpoint.origin!r} is not the log {log.name!r}",
                hint="this checkpoint belongs to another log",
            )
        if not self.note.signed_by(log):
            raise NoteError(
                f"{source}: no valid signature by the log key {log.name}+{log.hash.hex()}",
                hint="the checkpoint was altered or signed by another key",
            )
        return self.checkpoint

    # ------------------------------------------------------------ witnesses

    def cosign(self, witness: NoteSigner, timestamp: int) -> SignedCheckpoint:
        """Add ``witness``'s C2SP cosignature (v1, Ed25519) made at ``timestamp``."""
        if witness.kind != COSIGNATURE_V1:
            raise NoteError("a witness signs with a cosignature/v1 (type 0x04) key")
        if not 0 <= timestamp < 1 << 63:
            raise NoteError(f"cosignature time {timestamp} is out of range")
        v = witness.verifier
        message = cosigned_message(self.note.text, timestamp)
        sig = struct.pack(">Q", timestamp) + witness.sign(message)
        return SignedCheckpoint(self.checkpoint, self.note.add(Signature(v.name, v.hash, sig)))

    def cosignatures(self, witnesses: Iterable[Verifier]) -> dict[str, int]:
        """The trusted witnesses whose cosignature verifies: name → its timestamp."""
        found: dict[str, int] = {}
        for w in witnesses:
            for s in self.note.signatures:
                if (s.name, s.hash) != (w.name, w.hash) or len(s.signature) != 72:
                    continue
                (t,) = struct.unpack(">Q", s.signature[:8])
                if w.check(s.signature[8:], cosigned_message(self.note.text, t)):
                    found[w.name] = t
        return found


def timestamp_verifier(log: Verifier) -> Verifier:
    """The key a log's own timestamp cosignatures verify with: the log's Ed25519 key as a
    ``cosignature/v1`` (type 0x04) key under the log's name. Its key hash differs from the
    log's note key hash, so the two signature lines never stand for each other."""
    return Verifier(log.name, log.public, COSIGNATURE_V1)


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def require_witnesses(
    signed: SignedCheckpoint, witnesses: Sequence[Verifier], minimum: int
) -> dict[str, int]:
    """The cosignatures, or an error naming the trusted witnesses missing."""
    found = signed.cosignatures(witnesses)
    if len(found) < minimum:
        missing = sorted(w.name for w in witnesses if w.name not in found)
        raise NoteError(
            f"checkpoint of size {signed.checkpoint.size} has {len(found)} of the "
            f"{minimum} witness cosignatures required; missing: {', '.join(missing) or 'none'}",
            hint="have the witnesses cosign it with 'stella log cosign'",
        )
    return found
