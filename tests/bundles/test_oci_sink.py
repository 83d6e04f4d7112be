"""``OCILayout.blob_sink``: a blob written on a background thread, verified before it lands."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from bundles.digest import Digest
from bundles.errors import DigestError, SizeLimitError
from bundles.oci import OCILayout
from bundles.oci.sink import DEPTH, BlobSink

DATA = os.urandom(3 << 20) + b"tail"


def chunks(data: bytes, size: int = 1 << 20) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def leftovers(layout: OCILayout) -> list[Path]:
    """Temporary files the sink might have left anywhere in the layout."""
    return [p for p in layout.path.rglob("*.tmp")]


def store(layout: OCILayout, parts: Iterable[bytes], expected: Digest, size: int) -> None:
    with layout.blob_sink(expected=expected, size=size) as sink:
        for chunk in parts:
            sink.write(chunk)
        sink.commit()


def broken(parts: list[bytes], at: int) -> Iterator[bytes]:
    """The first ``at`` chunks, then the stream breaks."""
    for i, chunk in enumerate(parts):
        if i == at:
            raise RuntimeError("stream broke")
        yield chunk


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    return OCILayout.init(tmp_path / "oci")


def test_chunks_land_as_one_verified_blob(layout: OCILayout) -> None:
    digest = Digest.of_bytes(DATA)
    # more chunks than the queue holds: the producer must wait for the writer, not lose data
    many = chunks(DATA, 64 << 10)
    assert len(many) > DEPTH
    with layout.blob_sink(expected=digest, size=len(DATA), media_type="x/y") as sink:
        for chunk in many:
            sink.write(chunk)
        descriptor = sink.commit()
    assert (descriptor.digest, descriptor.size, descriptor.media_type) == (
        digest,
        len(DATA),
        "x/y",
    )
    assert layout.read_blob(digest, limit=len(DATA)) == DATA
    assert layout.blob_path(digest).stat().st_mode & 0o777 == 0o644
    assert leftovers(layout) == []


def test_wrong_content_never_lands(layout: OCILayout) -> None:
    claimed = Digest.of_bytes(b"something else")
    with pytest.raises(
        DigestError,
        match=r"blob refused by .*: content digest mismatch: expected sha256:[0-9a-f]{64}, got",
    ):
        store(layout, chunks(DATA), claimed, len(DATA))
    assert not layout.has_blob(claimed)
    assert not layout.has_blob(Digest.of_bytes(DATA))
    assert leftovers(layout) == []


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (10, r"blob refused by .*: stream exceeds its size limit of 10 bytes"),
        (
            len(DATA) + 1,
            rf"blob refused by .*: stream is {len(DATA)} bytes, expected {len(DATA) + 1}",
        ),
    ],
)
def test_wrong_size_never_lands(layout: OCILayout, declared: int, message: str) -> None:
    digest = Digest.of_bytes(DATA)
    with pytest.raises(SizeLimitError, match=message):
        store(layout, chunks(DATA), digest, declared)
    assert not layout.has_blob(digest)
    assert leftovers(layout) == []


def test_failing_producer_leaves_nothing(layout: OCILayout) -> None:
    """The stream breaks half-way (a corrupt bundle member): the ``with`` block is left
    without a commit, the writer thread ends and its temporary file is removed."""
    digest = Digest.of_bytes(DATA)
    with pytest.raises(RuntimeError, match="stream broke"):
        store(layout, broken(chunks(DATA, 64 << 10), DEPTH + 3), digest, len(DATA))
    assert not layout.has_blob(digest)
    assert leftovers(layout) == []
    sink = layout.blob_sink(expected=digest, size=4)
    with sink:
        pass
    with pytest.raises(ValueError, match="finished blob sink"):
        sink.write(b"late")


def test_declared_size_over_the_limit_is_refused_before_writing(layout: OCILayout) -> None:
    with pytest.raises(SizeLimitError, match="the limit is 100 bytes"):
        layout.blob_sink(expected=Digest.of_bytes(DATA), size=len(DATA), limit=100)
    assert leftovers(layout) == []


def test_blob_already_present_is_kept(layout: OCILayout) -> None:
    stored = layout.put_blob(DATA)
    before = layout.blob_path(stored.digest).stat().st_ino
    with layout.blob_sink(expected=stored.digest, size=len(DATA)) as sink:
        for chunk in chunks(DATA):
            sink.write(chunk)
        assert sink.commit().digest == stored.digest
    assert layout.blob_path(stored.digest).stat().st_ino == before
    assert leftovers(layout) == []


def hand_over(sink: BlobSink, parts: Iterable[bytes]) -> None:
    """Write every chunk, then end the blob without waiting for the writer."""
    for chunk in parts:
        sink.write(chunk)
    sink.end()


def test_end_lets_the_producer_go_on_until_commit_places_the_blob(layout: OCILayout) -> None:
    """After ``end`` the writer syncs on its own; only ``commit`` checks and places."""
    digest = Digest.of_bytes(DATA)
    with layout.blob_sink(expected=digest, size=len(DATA)) as sink:
        hand_over(sink, chunks(DATA))
        with pytest.raises(ValueError, match="write to a finished blob sink"):
            sink.write(b"late")
        assert not layout.has_blob(digest)
        assert sink.commit().digest == digest
        with pytest.raises(ValueError, match="commit of a finished blob sink"):
            sink.commit()
    assert layout.read_blob(digest, limit=len(DATA)) == DATA
    assert leftovers(layout) == []


def test_ended_blob_never_committed_is_discarded(layout: OCILayout) -> None:
    """An import that fails after a blob's end (a later member is corrupt) leaves no trace."""
    digest = Digest.of_bytes(DATA)
    with layout.blob_sink(expected=digest, size=len(DATA)) as sink:
        hand_over(sink, chunks(DATA))
    assert not layout.has_blob(digest)
    assert leftovers(layout) == []


def test_ended_wrong_blob_is_refused_at_commit(layout: OCILayout) -> None:
    claimed = Digest.of_bytes(b"something else")
    with layout.blob_sink(expected=claimed, size=len(DATA)) as sink:
        hand_over(sink, chunks(DATA))
        with pytest.raises(DigestError, match="content digest mismatch"):
            sink.commit()
    assert not layout.has_blob(claimed)
    assert leftovers(layout) == []
