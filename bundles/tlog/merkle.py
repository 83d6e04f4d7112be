"""RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, the root of a range, and
inclusion and consistency proofs, made and checked.

Proofs are made from a *node source*: a function ``node(level, index)`` giving the hash of
the perfect subtree of ``2**level`` leaves starting at leaf ``index * 2**level``. A stored
log answers it from its tiles; :func:`nodes_of` answers it from a list of leaf hashes. A
range whose size is not a power of two (the right edge of a tree) is folded from the perfect
subtrees it decomposes into, exactly as RFC 9162 §2.1.1 splits it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

from bundles.tlog import TlogError

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

NodeSource = Callable[[int, int], bytes]


class ProofError(TlogError):
    """A proof does not verify, or cannot be made for the sizes asked."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root over ``hashes`` (a power-of-two count, at least one)."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def range_root(start: int, end: int, node: NodeSource) -> bytes:
    """MTH of leaves ``[start, end)``; ``start`` aligned to a power of two at least
    ``end - start`` (every subtree a proof needs is so), or zero."""
    if end <= start:
        raise ProofError(f"empty range [{start}, {end})")
    parts: list[bytes] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start & ((1 << level) - 1):
            level -= 1
        parts.append(node(level, start >> level))
        start += 1 << level
    root = parts[-1]
    for part in reversed(parts[:-1]):
        root = node_hash(part, root)
    return root


def tree_root(size: int, node: NodeSource) -> bytes:
    return EMPTY_ROOT if size == 0 else range_root(0, size, node)


def nodes_of(leaves: Sequence[bytes]) -> NodeSource:
    """A node source over an in-memory list of leaf hashes (tests and small trees)."""

    def node(level: int, index: int) -> bytes:
        width = 1 << level
        part = leaves[index * width : (index + 1) * width]
        if len(part) != width:
            raise ProofError(f"node ({level}, {index}) is beyond the {len(leaves)} leaves")
        return perfect_root(part)

    return node


def inclusion_proof(index: int, size: int, node: NodeSource) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, the lowest sibling first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_root(start + k, end, node))
            end = start + k
        else:
            path.append(range_root(start, start + k, node))
            start += k
    path.reverse()
    return path


def consistency_proof(old: int, new: int, node: NodeSource) -> list[bytes]:
    """PROOF(old, D[new]) of RFC 9162 §2.1.4.1 (empty when ``old`` is 0 or ``new``)."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    path: list[bytes] = []
    start, end, m, complete = 0, new, old, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(range_root(start + k, end, node))
            end = start + k
        else:
            path.append(range_root(start, start + k, node))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append(range_root(start, end, node))
    path.reverse()
    return path


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what}: hash {i} is {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"inclusion proof: leaf index {index} is outside tree size {size}")
    _check_hashes([leaf, *proof], "inclusion proof")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof: more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof: fewer hashes than the tree has levels")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"inclusion proof of leaf {index} in a tree of size {size} does not lead to the "
            "root hash",
            hint="the entry, the proof or the checkpoint was altered",
        )


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of size ``new`` extends the one of size ``old``
    (RFC 9162 §2.1.4.2)."""
    if not 0 <= old <= new:
        raise ProofError(
            f"the head of size {new} is older than the one of size {old} already seen: a "
            "rolled-back checkpoint",
            hint="a log never shrinks; keep both checkpoints as evidence",
        )
    _check_hashes([old_root, new_root, *proof], "consistency proof")
    if old == new:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(
                f"two heads of size {old} have different root hashes: the log forked",
                hint="the log was rewritten; keep both checkpoints as evidence",
            )
        return
    if old == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError(f"consistency proof from size {old} to {new} is empty")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofError(
            f"the log of size {new} is not consistent with the head of size {old}",
            hint="the log was rewritten or forked since the older checkpoint",
        )
