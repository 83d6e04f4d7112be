"""Record blocks: lines packed by id, found again by id, bytes unchanged."""

from __future__ import annotations

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from appliance.store.blocks import BlockError, find_many, pack, unpack


def find(ids: bytes, body: bytes, record_id: str, *, where: str) -> bytes | None:
    """One id, through the many-id search the store uses."""
    return find_many(ids, body, [record_id], where=where).get(record_id)


def records(n: int) -> list[tuple[str, bytes]]:
    return [(f"CVE-2024-{i:05d}", b'{"id":"CVE-2024-%05d","epss":"0.1"}' % i) for i in range(n)]


def test_blocks_keep_order_bytes_and_ids() -> None:
    lines = records(1300)
    blocks = list(pack(lines, size=512))
    assert [b.first_id for b in blocks] == ["CVE-2024-00000", "CVE-2024-00512", "CVE-2024-01024"]
    assert [len(b.ids.split(b"\n")) for b in blocks] == [512, 512, 276]
    back = [line for b in blocks for line in unpack(b.body, where="t")]
    assert back == [line for _, line in lines]


def test_same_lines_same_key_different_lines_different_key() -> None:
    one, again = list(pack(records(10))), list(pack(records(10)))
    assert one[0].key == again[0].key
    changed = records(10)
    changed[3] = (changed[3][0], changed[3][1].replace(b"0.1", b"0.2"))
    assert next(iter(pack(changed))).key != one[0].key


def test_find_one_and_many() -> None:
    (block,) = pack(records(100))
    assert find(block.ids, block.body, "CVE-2024-00042", where="t") == (
        b'{"id":"CVE-2024-00042","epss":"0.1"}'
    )
    assert find(block.ids, block.body, "CVE-2024-00042x", where="t") is None
    assert find(block.ids, block.body, "CVE-2025-00000", where="t") is None
    got = find_many(
        block.ids, block.body, ["CVE-2024-00099", "CVE-1999-0001", "CVE-2024-00000"], where="t"
    )
    assert set(got) == {"CVE-2024-00099", "CVE-2024-00000"}
    assert got["CVE-2024-00000"].startswith(b'{"id":"CVE-2024-00000"')
    assert find_many(block.ids, block.body, ["nope"], where="t") == {}


def test_damaged_block_is_a_store_error() -> None:
    (block,) = pack(records(3))
    with pytest.raises(BlockError, match="blk: block does not decompress"):
        unpack(block.body[:-4], where="blk")
    short = zstandard.ZstdCompressor().compress(b'{"id":"a"}\n')
    with pytest.raises(BlockError, match="blk: 1 lines for 3 ids"):
        find(block.ids, short, "CVE-2024-00001", where="blk")


@given(
    st.lists(st.binary(min_size=1).filter(lambda b: b"\n" not in b), max_size=60), st.integers(1, 9)
)
def test_any_lines_round_trip(lines: list[bytes], size: int) -> None:
    pairs = [(f"{i:04d}", line) for i, line in enumerate(lines)]
    blocks = list(pack(pairs, size=size))
    assert [x for b in blocks for x in unpack(b.body, where="t")] == lines
    for rid, line in pairs:
        holder = [b for b in blocks if b.first_id <= rid][-1]
        assert find(holder.ids, holder.body, rid, where="t") == line


def test_an_id_inside_another_record_does_not_fool_the_search() -> None:
    lines = [
        ("A", b'{"id":"A","see":{"id":"B"}}'),
        ("B", b'{"id":"B","v":1}'),
        ("C", b'{"id":"C","v":"\\"id\\":\\"A\\""}'),
    ]
    (block,) = pack(lines)
    assert find_many(block.ids, block.body, ["B", "A"], where="t") == {
        "B": b'{"id":"B","v":1}',
        "A": b'{"id":"A","see":{"id":"B"}}',
    }
    assert find(block.ids, block.body, "C", where="t") == lines[2][1]


def test_ids_asked_in_order_are_each_found_after_the_last() -> None:
    lines = [
        ("A", b'{"id":"A","see":{"id":"C"}}'),  # C's pattern before C's line, after A's start
        ("B", b'{"id":"B","v":1}'),
        ("C", b'{"id":"C","v":2}'),
        ("E", b'{"id":"E","v":3}'),
    ]
    (block,) = pack(lines)
    asked = ["A", "B", "C", "D", "E"]
    assert find_many(block.ids, block.body, asked, where="t") == {rid: line for rid, line in lines}
    # out of order, and again after a miss: the search starts from the top again
    assert find_many(block.ids, block.body, ["E", "A", "D", "C"], where="t") == {
        "E": b'{"id":"E","v":3}',
        "A": b'{"id":"A","see":{"id":"C"}}',
        "C": b'{"id":"C","v":2}',
    }


@given(st.lists(st.integers(0, 120), max_size=40))
def test_find_many_equals_find_one_by_one(wanted: list[int]) -> None:
    (block,) = pack(records(100))
    ids = [f"CVE-2024-{i:05d}" for i in sorted(set(wanted))]
    expected = {rid: line for rid in ids if (line := find(block.ids, block.body, rid, where="t"))}
    assert find_many(block.ids, block.body, ids, where="t") == expected
