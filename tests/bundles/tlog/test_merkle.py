"""RFC 6962 hashing and proofs against the published vectors and sigstore-python's verifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigstore._internal import merkle as sigstore_merkle

from bundles.tlog import merkle as m

VECTORS = Path(__file__).parents[2] / "data" / "tlog" / "rfc6962-vectors.json"


def _vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def _leaves() -> list[bytes]:
    return [m.leaf_hash(bytes.fromhex(x)) for x in _vectors()["leaves"]]


def test_roots_of_the_rfc6962_trees() -> None:
    leaves = _leaves()
    for n, root in enumerate(_vectors()["roots"], 1):
        assert m.tree_root(n, m.nodes_of(leaves[:n])).hex() == root
    assert m.tree_root(0, m.nodes_of([])) == m.EMPTY_ROOT


@pytest.mark.parametrize("case", _vectors()["inclusion"], ids=lambda c: f"{c['leaf']}@{c['size']}")
def test_inclusion_proofs_match_the_vectors(case: dict[str, Any]) -> None:
    leaves, roots = _leaves(), _vectors()["roots"]
    index, size = case["leaf"] - 1, case["size"]
    proof = m.inclusion_proof(index, size, m.nodes_of(leaves[:size]))
    assert [h.hex() for h in proof] == case["proof"]
    m.verify_inclusion(index, size, leaves[index], proof, bytes.fromhex(roots[size - 1]))


@pytest.mark.parametrize(
    "case", _vectors()["consistency"], ids=lambda c: f"{c['size1']}-{c['size2']}"
)
def test_consistency_proofs_match_the_vectors(case: dict[str, Any]) -> None:
    leaves, roots = _leaves(), _vectors()["roots"]
    old, new = case["size1"], case["size2"]
    proof = m.consistency_proof(old, new, m.nodes_of(leaves[:new]))
    assert [h.hex() for h in proof] == case["proof"]
    m.verify_consistency(
        old, new, bytes.fromhex(roots[old - 1]), bytes.fromhex(roots[new - 1]), proof
    )


def _sigstore_root(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """sigstore-python's RFC 6962 inclusion check, step by step (its public entry point takes
    a whole Rekor entry)."""
    inner, border = sigstore_merkle._decomp_inclusion_proof(index, size)
    assert len(proof) == inner + border
    mid = sigstore_merkle._chain_inner(leaf, proof[:inner], index)
    return sigstore_merkle._chain_border_right(mid, proof[inner:])


def test_every_proof_of_small_trees_verifies_here_and_in_sigstore() -> None:
    leaves = [m.leaf_hash(i.to_bytes(2, "big")) for i in range(70)]
    for size in range(1, 70):
        source = m.nodes_of(leaves[:size])
        root = m.tree_root(size, source)
        for index in range(size):
            proof = m.inclusion_proof(index, size, source)
            m.verify_inclusion(index, size, leaves[index], proof, root)
            assert _sigstore_root(index, size, leaves[index], proof) == root
        for old in range(size + 1):
            old_root = m.tree_root(old, m.nodes_of(leaves[:old]))
            m.verify_consistency(old, size, old_root, root, m.consistency_proof(old, size, source))


def test_altered_proofs_are_refused() -> None:
    leaves = _leaves()
    source = m.nodes_of(leaves)
    root = m.tree_root(8, source)
    proof = m.inclusion_proof(5, 8, source)
    bad = [proof[0], bytes([proof[1][0] ^ 8]) + proof[1][1:], proof[2]]
    with pytest.raises(m.ProofError, match="does not lead to the root hash"):
        m.verify_inclusion(5, 8, leaves[5], bad, root)
    with pytest.raises(m.ProofError, match="fewer hashes"):
        m.root_from_inclusion(5, 8, leaves[5], proof[:2])
    with pytest.raises(m.ProofError, match="more hashes"):
        m.root_from_inclusion(5, 8, leaves[5], [*proof, root])
    with pytest.raises(m.ProofError, match="outside tree size"):
        m.root_from_inclusion(8, 8, leaves[5], proof)


def test_forked_and_rolled_back_heads_are_named() -> None:
    leaves = _leaves()
    root6 = m.tree_root(6, m.nodes_of(leaves[:6]))
    forked = m.tree_root(6, m.nodes_of([*leaves[:5], m.leaf_hash(b"other")]))
    with pytest.raises(m.ProofError, match="different root hashes: the log forked"):
        m.verify_consistency(6, 6, root6, forked, [])
    with pytest.raises(m.ProofError, match="rolled-back checkpoint"):
        m.verify_consistency(7, 6, root6, root6, [])
    root8 = m.tree_root(8, m.nodes_of(leaves))
    proof = m.consistency_proof(6, 8, m.nodes_of(leaves))
    with pytest.raises(m.ProofError, match="not consistent with the head of size 6"):
        m.verify_consistency(6, 8, forked, root8, proof)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_proofs_of_random_trees_verify_and_bind(size: int, data: st.DataObject) -> None:
    leaves = [m.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    source = m.nodes_of(leaves)
    root = m.tree_root(size, source)
    index = data.draw(st.integers(0, size - 1))
    proof = m.inclusion_proof(index, size, source)
    m.verify_inclusion(index, size, leaves[index], proof, root)
    assert _sigstore_root(index, size, leaves[index], proof) == root
    if index + 1 < size:  # the proof of one leaf does not prove its neighbour
        with pytest.raises(m.ProofError):
            m.verify_inclusion(index + 1, size, leaves[index + 1], proof, root)
    old = data.draw(st.integers(0, size))
    old_root = m.tree_root(old, m.nodes_of(leaves[:old]))
    m.verify_consistency(old, size, old_root, root, m.consistency_proof(old, size, source))
