"""Bounded decompression: streams of gzip members or zstd frames read a chunk at a time, within
a total, a ratio and a shared budget, each refusal naming its cap."""

from __future__ import annotations

import gzip
import io
import random

import pytest
import zstandard

from bundles.decompress import (
    RATIO_FLOOR,
    BoundedReader,
    Budget,
    DecompressError,
    Format,
    open_bounded,
    sniff,
)
from bundles.limits import Cap, LimitError, Unit

TOTAL = Cap("test.total_bytes", 1 << 30, Unit.BYTES, "the test stream")
RATIO = Cap("test.ratio", 100, Unit.RATIO, "the test expansion")
DATA = random.Random(7).randbytes(300_000) + bytes(300_000)
MiB = 1 << 20


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize(
    ("blob", "fmt"),
    [
        (_gzip(DATA), Format.GZIP),
        (_gzip(DATA[:1000]) + _gzip(DATA[1000:]), Format.GZIP),  # members concatenated
        (_zstd(DATA), Format.ZSTD),
        (_zstd(DATA[:5]) + _zstd(DATA[5:]), Format.ZSTD),  # frames concatenated
        (DATA, Format.NONE),
    ],
    ids=["gzip", "gzip-members", "zstd", "zstd-frames", "plain"],
)
def test_round_trip_and_each_read_is_bounded(blob: bytes, fmt: Format) -> None:
    assert sniff(blob[:4]) is fmt
    reader = BoundedReader(io.BytesIO(blob), subject="s", total=TOTAL)
    out = bytearray()
    buffer = bytearray(4096)
    while count := reader.readinto(buffer):
        assert count <= len(buffer)
        out += buffer[:count]
    assert bytes(out) == DATA
    assert reader.produced == len(DATA)
    assert reader.consumed == len(blob)


def test_a_damaged_stream_is_named() -> None:
    with pytest.raises(DecompressError) as caught:
        open_bounded(io.BytesIO(_gzip(DATA)[:-100]), subject="layer x", total=TOTAL).read()
    assert caught.value.message == (
        "layer x: the gzip stream is damaged: the gzip stream ends inside a member"
    )


def test_total_cap() -> None:
    small = Cap("test.small_bytes", 1000, Unit.BYTES, "the small stream")
    with pytest.raises(LimitError) as caught:
        open_bounded(io.BytesIO(_zstd(DATA)), subject="s", total=small).read()
    assert caught.value.cap is small
    assert (
        caught.value.message
        == "s: the small stream is over the test.small_bytes cap of 1,000 bytes"
    )


def test_ratio_applies_past_the_floor_only() -> None:
    zeros = bytes(RATIO_FLOOR // 2)
    assert (
        open_bounded(io.BytesIO(_zstd(zeros)), subject="s", total=TOTAL, ratio=RATIO).read()
        == zeros
    )
    bomb = _zstd(bytes(MiB)) * (RATIO_FLOOR // MiB + 8)
    reader = open_bounded(io.BytesIO(bomb), subject="s", total=TOTAL, ratio=RATIO)
    with pytest.raises(LimitError) as caught:
        _drain(reader)
    assert caught.value.cap is RATIO
    assert caught.value.message.startswith(
        "s: the test expansion is over the test.ratio cap of 100:1 (found "
    )


def test_a_budget_is_shared_between_streams() -> None:
    budget = Budget(Cap("test.budget_bytes", 500_000, Unit.BYTES, "the budget"), "image")
    first = open_bounded(io.BytesIO(_gzip(DATA[:400_000])), subject="a", total=TOTAL, budget=budget)
    assert len(first.read()) == 400_000
    second = open_bounded(
        io.BytesIO(_gzip(DATA[:400_000])), subject="b", total=TOTAL, budget=budget
    )
    with pytest.raises(LimitError) as caught:
        second.read()
    assert (
        caught.value.message
        == "image: the budget is over the test.budget_bytes cap of 500,000 bytes"
    )


def test_a_huge_zstd_window_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()
    blob = stream.compress(DATA) + stream.flush()
    with pytest.raises(DecompressError, match="the zstd stream is damaged"):
        open_bounded(io.BytesIO(blob), subject="s", total=TOTAL).read()


def test_close_source() -> None:
    source = io.BytesIO(_gzip(b"x"))
    BoundedReader(source, subject="s", total=TOTAL).close()
    assert not source.closed
    BoundedReader(source, subject="s", total=TOTAL, close_source=True).close()
    assert source.closed


def _drain(reader: io.BufferedReader) -> None:
    while reader.read(MiB):
        pass
