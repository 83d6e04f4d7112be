# ruff: noqa: E501  (the expected refusals are one line each, as the user sees them)
"""Hostile feed files against ``stella-mirror sync``: decompression bombs (gzip, tar.gz, zip),
archives that lie about their sizes, corrupt and truncated compression, documents nested too
deep. Each is refused with its exact line, under the address-space cap (a MemoryError would be
a traceback) and within the memory ceiling, and the workspace keeps no temporary file."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard

from tests.hostile.harness import Run, assert_refused, leftovers, play_selected, run

MiB = 1 << 20
Make = Callable[[Path], Path]


def _zeros(total: int) -> Callable[[], list[bytes]]:
    return lambda: [b"\0" * MiB] * (total // MiB)


def gzip_of(chunks: Callable[[], list[bytes]], name: str = "feed.json.gz") -> Make:
    def make(d: Path) -> Path:
        path = d / name
        with gzip.open(path, "wb", compresslevel=1) as out:
            for chunk in chunks():
                out.write(chunk)
        return path

    return make


def _zstd_bomb(d: Path) -> Path:
    path = d / "feed.json.zst"
    with open(path, "wb") as out:
        writer = zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False)
        for chunk in _zeros(256 * MiB)():
            writer.write(chunk)
        writer.flush(zstandard.FLUSH_FRAME)
    return path


def _tar_gz_bomb(d: Path) -> Path:
    path = d / "feed.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as out, tarfile.open(fileobj=out, mode="w|") as tar:
        info = tarfile.TarInfo("feed/kev.json")
        info.size = 512 * MiB

        class Zeros:
            def read(self, n: int = -1) -> bytes:
                return bytes(n)

        tar.addfile(info, Zeros())
    return path


def _tar_declares(size: int) -> Make:
    def make(d: Path) -> Path:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo("kev.json")
            info.size = 10
            tar.addfile(info, io.BytesIO(b"0123456789"))
        data = bytearray(raw.getvalue())
        # Rewrite the size field (base-256 for a size octal cannot hold) and the checksum.
        field_ = bytearray(size.to_bytes(12, "big"))
        field_[0] |= 0x80
        data[124:136] = field_
        data[148:156] = b" " * 8
        data[148:156] = f"{sum(data[:512]):06o}\0 ".encode()
        path = d / "feed.tar"
        path.write_bytes(bytes(data))
        return path

    return make


def _zip_bomb(d: Path) -> Path:
    path = d / "feed.zip"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("kev.json", "w", force_zip64=True) as out,
    ):
        for chunk in _zeros(512 * MiB)():
            out.write(chunk)
    return path


def _zip_lies(d: Path) -> Path:
    """A zip whose directory says 10 bytes for a member holding 4 MiB."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("kev.json", b"x" * (4 * MiB))
    data = raw.getvalue()
    size = (4 * MiB).to_bytes(4, "little")
    data = data.replace(size, (10).to_bytes(4, "little"))
    path = d / "feed.zip"
    path.write_bytes(data)
    return path


def _truncated_gzip(d: Path) -> Path:
    path = gzip_of(lambda: [b'{"vulnerabilities": []}' * 1000])(d)
    path.write_bytes(path.read_bytes()[:-20])
    return path


def _garbage_gzip(d: Path) -> Path:
    path = d / "feed.json.gz"
    path.write_bytes(b"\x1f\x8b" + os.urandom(4096))
    return path


def _plain(data: bytes, name: str = "feed.json") -> Make:
    def make(d: Path) -> Path:
        path = d / name
        path.write_bytes(data)
        return path

    return make


def _sparse(size: int) -> Make:
    """A file of ``size`` bytes that takes no room (a hole)."""

    def make(d: Path) -> Path:
        path = d / "feed.json"
        with open(path, "wb") as out:
            out.truncate(size)
        return path

    return make


DEEP = b'{"vulnerabilities":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
CAP_HINT = "(if this feed is trusted and that large, raise the cap with STELLA_LIMIT_FEED_UNPACKED_BYTES=N (docs/limits.md))"


@dataclass(frozen=True)
class FeedCase:
    id: str
    make: Make
    failure: str  # the source's failure, as sync reports it on stdout
    kind: str = "size-limit"
    env: dict[str, str] = field(default_factory=dict)
    line: str | None = None  # the error line, when it is not the summary of failed sources

    def __repr__(self) -> str:
        return self.id


CASES = [
    FeedCase(
        "gzip-bomb-512MiB",
        gzip_of(_zeros(512 * MiB)),
        f"feed.json.gz: gunzipped size is over the feed.unpacked_bytes cap of 384 MiB {CAP_HINT}",
    ),
    FeedCase(
        "gzip-bomb-under-a-lowered-cap",
        gzip_of(_zeros(64 * MiB)),
        f"feed.json.gz: gunzipped size is over the feed.unpacked_bytes cap of 8 MiB {CAP_HINT}",
        env={"STELLA_LIMIT_FEED_UNPACKED_BYTES": "8M"},
    ),
    FeedCase(
        "zstd-bomb",
        _zstd_bomb,
        f"feed.json.zst: decompressed size is over the feed.unpacked_bytes cap of 8 MiB {CAP_HINT}",
        env={"STELLA_LIMIT_FEED_UNPACKED_BYTES": "8M"},
    ),
    FeedCase(
        "tar-gz-bomb",
        _tar_gz_bomb,
        f"feed.tar.gz: gunzipped size is over the feed.unpacked_bytes cap of 8 MiB {CAP_HINT}",
        env={"STELLA_LIMIT_FEED_UNPACKED_BYTES": "8M"},
    ),
    FeedCase(
        "tar-declares-1TiB",
        _tar_declares(1 << 40),
        f"feed.tar: untarred size is over the feed.unpacked_bytes cap of 384 MiB {CAP_HINT}",
    ),
    FeedCase(
        "zip-bomb-512MiB",
        _zip_bomb,
        f"feed.zip: unzipped size is over the feed.unpacked_bytes cap of 384 MiB {CAP_HINT}",
    ),
    FeedCase(
        "zip-directory-lies",
        _zip_lies,
        "feed.zip: corrupt zip archive: Bad CRC-32 for file 'kev.json'",
        kind="parse",
    ),
    FeedCase(
        "gzip-truncated",
        _truncated_gzip,
        "feed.json.gz: corrupt gzip data: Compressed file ended before the end-of-stream marker was reached",
        kind="parse",
    ),
    FeedCase(
        "gzip-garbage",
        _garbage_gzip,
        "feed.json.gz: corrupt gzip data: Unknown compression method",
        kind="parse",
    ),
    FeedCase(
        "plain-file-over-the-cap",
        _sparse(64 * MiB),
        f"feed.json: file size is over the feed.unpacked_bytes cap of 8 MiB {CAP_HINT}",
        env={"STELLA_LIMIT_FEED_UNPACKED_BYTES": "8M"},
    ),
    FeedCase(
        "kev-200k-deep",
        _plain(DEEP),
        "source 'kev': no usable record in feed.json (1 skipped, first: feed.json: the nesting "
        "of arrays and objects in a JSON document is over the json.depth cap of 128 "
        "(found 200,001)) (is this really a kev feed?)",
        kind="parse",
    ),
]


def _config(feed: Path, case: FeedCase) -> Path:
    config = feed.parent / "mirror.toml"
    config.write_text(f'[[source]]\nname = "kev"\nkind = "kev"\npath = "{feed}"\n')
    return config


def _play(root: Path, case: FeedCase) -> tuple[Run, Path]:
    d = root / case.id
    d.mkdir()
    feed = case.make(d)
    home = d / "home"
    result = run("stella-mirror", "sync", "--config", _config(feed, case), home=home, env=case.env)
    feed.unlink()
    return result, home


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, tuple[Run, Path]]:
    root = tmp_path_factory.mktemp("hostile-feeds")
    return play_selected(CASES, request, lambda c: _play(root, c))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sync_refuses_hostile_feed(case: FeedCase, outcomes: dict[str, tuple[Run, Path]]) -> None:
    result, home = outcomes[case.id]
    line = case.line or (
        f"stella-mirror: error: 1 of 1 sources failed: kev ({case.kind}) "
        "(their last good data is kept and the next snapshot records the failure)"
    )
    assert_refused(result, line)
    if case.line is None:
        assert result.out.startswith("kev "), result.describe()
        assert result.out.split("failed", 1)[1].strip() == case.failure, result.describe()
    assert "MemoryError" not in result.err + result.out
    assert leftovers(home) == []


def test_a_hostile_source_fails_alone(tmp_path: Path) -> None:
    """A source refused by a cap is one failed source: the others in the same sync still sync
    and go into the next snapshot."""
    deep = _plain(DEEP)(tmp_path)
    good = tmp_path / "good.json"
    good.write_text(
        '{"title": "KEV", "catalogVersion": "1", "dateReleased": "2025-01-01T00:00:00Z", '
        '"count": 1, "vulnerabilities": [{"cveID": "CVE-2021-44228", "vendorProject": "Apache", '
        '"product": "Log4j", "vulnerabilityName": "Log4Shell", "dateAdded": "2021-12-10", '
        '"shortDescription": "x", "requiredAction": "y", "dueDate": "2021-12-24", '
        '"knownRansomwareCampaignUse": "Known", "notes": ""}]}'
    )
    config = tmp_path / "mirror.toml"
    config.write_text(
        f'[[source]]\nname = "deep"\nkind = "kev"\npath = "{deep}"\n'
        f'[[source]]\nname = "good"\nkind = "kev"\npath = "{good}"\n'
    )
    home = tmp_path / "home"
    result = run("stella-mirror", "--json", "sync", "--config", config, home=home)
    assert_refused(
        result,
        "stella-mirror: error: 1 of 2 sources failed: deep (parse) (their last good data is kept "
        "and the next snapshot records the failure)",
    )
    sources = {s["name"]: s for s in json.loads(result.out)["sources"]}
    assert sources["deep"]["status"] == "failed"
    assert sources["good"]["status"] == "updated"
    assert sources["good"]["records"] == 1
