"""The transparency proof a bundle carries: ``statement.tlog.json``, the second member.

The mirror appends each bundle's signed statement to its own log and puts the proof beside
the statement. The proof cannot be a subject of the statement (it depends on the statement's
signature), so it is the one member a reader accepts unlisted, and only as this::

    {"entry": {…},                          the Rekor v2 tlogEntries item of the statement
     "consistency": [{"treeSize": "m", "hashes": [b64, …]}, …]}

``entry`` is the ``dsse`` 0.0.2 entry of the statement envelope with its inclusion proof and
the mirror log's signed checkpoint (bundles.tlog.entry). ``consistency`` proves that head
extends each of the mirror's earlier heads of size ``m`` (the sizes of up to
:data:`CONSISTENCY_SIZES` earlier appends), so an appliance that kept the head of the last
bundle it imported can check the log was not forked or rewritten since.

Parsing is strict: exactly these keys, at most :data:`PROOF_LIMIT` bytes, sizes increasing and
below the head, and the entry must be about the statement's own envelope (its payload hash
and signature), so the member cannot carry anything else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bundles import canonical, dsse
from bundles.errors import CanonicalJSONError
from bundles.tlog import TlogError
from bundles.tlog.entry import EntryCheck, EntryError, check_entry, tlog_entry
from bundles.tlog.merkle import ProofError, verify_consistency
from bundles.tlog.note import NoteError, SignedCheckpoint, Verifier

MEMBER: Final = "statement.tlog.json"
CONSISTENCY_SIZES: Final = 256
PROOF_LIMIT: Final = 1 << 20  # 256 consistency proofs of a log of a billion entries fit
_ENTRY_KEYS: Final = frozenset(
    {
        "logIndex",
        "logId",
        "kindVersion",
        "integratedTime",
        "inclusionProof",
        "canonicalizedBody",
    }
)
_PROOF_KEYS: Final = frozenset({"logIndex", "rootHash", "treeSize", "hashes", "checkpoint"})


class BundleProofError(TlogError):
    """A bundle's transparency proof is malformed, does not verify, or shows a forked or
    rolled-back log."""


@dataclass(frozen=True, slots=True)
class CarriedProof:
    """A parsed ``statement.tlog.json``: the entry, and consistency proofs by earlier size."""

    entry: Mapping[str, Any]
    consistency: Mapping[int, tuple[bytes, ...]]

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "entry": dict(self.entry),
                "consistency": [
                    {"treeSize": str(size), "hashes": [_b64(h) for h in hashes]}
                    for size, hashes in sorted(self.consistency.items())
                ],
            }
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_proof(
    log: Verifier,
    index: int,
    body: bytes,
    inclusion: Sequence[bytes],
    head: SignedCheckpoint,
    consistency: Mapping[int, Sequence[bytes]],
) -> bytes:
    """The member's bytes (see the module docstring)."""
    entry = tlog_entry(log, index, body, inclusion, head)
    return CarriedProof(entry, {m: tuple(p) for m, p in consistency.items()}).to_bytes()


def _fail(source: str, what: str) -> BundleProofError:
    return BundleProofError(
        f"{source}: {MEMBER}: {what}",
        hint="the transparency proof was altered; export the bundle again on the mirror",
    )


def parse_proof(data: bytes, *, source: str) -> CarriedProof:
    """Parse the member strictly (shape only; :func:`check_proof` verifies it)."""
    if len(data) > PROOF_LIMIT:
        raise _fail(source, f"{len(data):,} bytes, over the {PROOF_LIMIT:,} a proof may have")
    try:
        doc = canonical.loads(data, limit=PROOF_LIMIT, source=f"{source}: {MEMBER}")
    except CanonicalJSONError as e:
        raise _fail(source, f"not JSON: {e.message}") from e
    if not isinstance(doc, dict) or set(doc) != {"entry", "consistency"}:
        raise _fail(source, "expected exactly the keys entry and consistency")
    entry, items = doc["entry"], doc["consistency"]
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise _fail(source, f"entry must have exactly the keys {', '.join(sorted(_ENTRY_KEYS))}")
    inclusion = entry["inclusionProof"]
    if not isinstance(inclusion, dict) or set(inclusion) != _PROOF_KEYS:
        raise _fail(source, "entry.inclusionProof is not an inclusion proof")
    if not isinstance(items, list) or len(items) > CONSISTENCY_SIZES:
        raise _fail(source, f"consistency must be an array of at most {CONSISTENCY_SIZES}")
    head = _size(inclusion.get("treeSize"), source, "entry.inclusionProof.treeSize")
    consistency: dict[int, tuple[bytes, ...]] = {}
    last = 0
    for i, item in enumerate(items):
        where = f"consistency[{i}]"
        if not isinstance(item, dict) or set(item) != {"treeSize", "hashes"}:
            raise _fail(source, f"{where} must have exactly the keys treeSize and hashes")
        size = _size(item["treeSize"], source, f"{where}.treeSize")
        if not last < size < head:
            raise _fail(source, f"{where}.treeSize {size} is not between {last} and {head}")
        hashes = item["hashes"]
        if not isinstance(hashes, list) or len(hashes) > 128:
            raise _fail(source, f"{where}.hashes is not an array of at most 128 hashes")
        decoded = []
        for h in hashes:
            try:
                raw = base64.b64decode(h, validate=True) if isinstance(h, str) else b""
            except binascii.Error:
                raw = b""
            if len(raw) != 32:
                raise _fail(source, f"{where}.hashes holds something other than SHA-256 hashes")
            decoded.append(raw)
        consistency[size] = tuple(decoded)
        last = size
    return CarriedProof(entry, consistency)


def _size(value: Any, source: str, where: str) -> int:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 19:
        raise _fail(source, f"{where} is not a decimal string")
    return int(value)


def check_proof(
    data: bytes, envelope: dsse.Envelope, logs: Sequence[Verifier], *, source: str
) -> tuple[CarriedProof, EntryCheck]:
    """Parse and verify the member: the entry is about ``envelope``, its proof leads to a
    checkpoint signed by one of ``logs``."""
    proof = parse_proof(data, source=source)
    try:
        check = check_entry(proof.entry, logs, envelope)
    except EntryError as e:
        raise BundleProofError(
            f"{source}: the bundle's statement is not proven to be in the mirror's "
            f"transparency log: {e.message}",
            hint=e.hint or "export the bundle again on the mirror whose log the trust root names",
        ) from e
    return proof, check


def check_extends(
    proof: CarriedProof, check: EntryCheck, last: SignedCheckpoint | None, *, source: str
) -> None:
    """Refuse a head that forks or rolls back ``last`` (the mirror log's head this appliance
    saw before, already verified when it was stored)."""
    if last is None or last.checkpoint.origin != check.origin:
        return
    old, new = last.checkpoint, check.checkpoint.checkpoint
    if new.size == old.size and new.root != old.root:
        raise BundleProofError(
            f"{source}: the mirror's log {check.origin} has two heads of size {new.size} with "
            "different roots: the log forked",
            hint="keep both bundles as evidence; the mirror's log (or its key) is compromised",
        )
    if new.size < old.size:
        raise BundleProofError(
            f"{source}: the bundle's log head has size {new.size}, but this appliance saw a "
            f"head of size {old.size} of the mirror's log {check.origin}: the log was rolled "
            "back",
            hint="keep the bundle as evidence; import a bundle the mirror logged later",
        )
    if new.size == old.size:
        return
    hashes = proof.consistency.get(old.size)
    if hashes is None:
        raise BundleProofError(
            f"{source}: the bundle carries no consistency proof from the head of size "
            f"{old.size} this appliance last saw of the mirror's log {check.origin}",
            hint="import the bundles exported in between first (a bundle proves consistency "
            f"with the mirror's last {CONSISTENCY_SIZES} heads)",
        )
    try:
        verify_consistency(old.size, new.size, old.root, new.root, list(hashes))
    except (ProofError, NoteError) as e:
        raise BundleProofError(
            f"{source}: the mirror's log head of size {new.size} does not extend the head of "
            f"size {old.size} this appliance saw: the log forked or was rewritten ({e.message})",
            hint="keep the bundle as evidence; the mirror's log (or its key) is compromised",
        ) from e
