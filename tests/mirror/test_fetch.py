"""The real fetch code against a loopback server serving the real feed files."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import pytest

from bundles.digest import Digest
from mirror.config import load_config
from mirror.errors import FailureKind
from mirror.fetch import HttpFetcher
from mirror.snapshot import SourceStatus
from mirror.sync import SyncStatus, build_snapshot, sync
from mirror.workspace import Workspace
from tests.mirror.conftest import StepClock, write_config
from tests.mirror.feedserver import FeedServer

PYPI = "osv/PyPI/all.jsonl.gz"


def setup(tmp_path: Path, server: FeedServer, feeds: Path, **extra: Any) -> tuple[Path, Workspace]:
    server.put(PYPI, (feeds / "pypi-osv.jsonl.gz").read_bytes())
    cfg = write_config(
        tmp_path / "cfg", [{"name": "osv-pypi", "kind": "osv", "url": server.url(PYPI), **extra}]
    )
    return cfg, Workspace(tmp_path / "ws")


def run(cfg: Path, ws: Workspace, fetcher: HttpFetcher, clock: StepClock) -> Any:
    [outcome] = sync(load_config(cfg), ws, fetcher=fetcher, clock=clock)
    return outcome


def test_sync_then_conditional_resync_gets_304(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds)
    first = run(cfg, ws, fetcher, clock)
    assert first.status is SyncStatus.UPDATED
    assert first.records == 2661
    second = run(cfg, ws, fetcher, clock)
    assert second.status is SyncStatus.UNCHANGED
    assert second.dataset == first.dataset
    assert server.statuses(PYPI) == [200, 304]
    conditional = server.requests_for(PYPI)[1].headers
    assert conditional["If-None-Match"] == server.etag(server.files[PYPI])
    assert conditional["If-Modified-Since"] == server.modified
    state = ws.state("osv-pypi")
    assert state is not None
    assert state.good is not None
    assert state.good.upstream == Digest.of_bytes(server.files[PYPI])
    assert ws.upstream_path("osv-pypi").read_bytes() == server.files[PYPI]


def test_truncated_download_resumes_with_range(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds)
    server.fail(PYPI, "truncate")
    outcome = run(cfg, ws, fetcher, clock)
    assert outcome.status is SyncStatus.UPDATED
    assert outcome.records == 2661
    assert server.statuses(PYPI) == [200, 206]
    resumed = server.requests_for(PYPI)[1].headers
    half = len(server.files[PYPI]) // 2
    start = int(resumed["Range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= half  # resumed from what was written, not from zero
    assert resumed["If-Range"] == server.etag(server.files[PYPI])
    assert ws.upstream_path("osv-pypi").read_bytes() == server.files[PYPI]


def test_server_errors_are_retried_then_recover(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds, retries=3)
    server.fail(PYPI, "500", "503")
    outcome = run(cfg, ws, fetcher, clock)
    assert outcome.status is SyncStatus.UPDATED
    assert server.statuses(PYPI) == [500, 503, 200]


def test_failure_keeps_last_good_data_and_snapshot_records_it(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds, retries=1)
    good = run(cfg, ws, fetcher, clock)
    fresh = build_snapshot(ws, clock=clock)
    server.put(PYPI, gzip.compress(b'{"id": "X-1", "modified": "2025-01-01T00:00:00Z"}\n'))
    server.fail(PYPI, "500", "500")
    failed = run(cfg, ws, fetcher, clock)
    assert failed.status is SyncStatus.FAILED
    assert failed.failure is FailureKind.HTTP_STATUS
    assert "gave up after 2 attempts" in (failed.error or "")
    stale = build_snapshot(ws, clock=clock)
    [src] = stale.manifest.sources
    assert src.status is SourceStatus.STALE
    assert src.failure is FailureKind.HTTP_STATUS
    assert stale.manifest.dataset("osv-pypi").digest == good.dataset
    assert stale.digest != fresh.digest
    assert ws.store.provenance(stale.digest)["sources"]["osv-pypi"]["last_attempt"]["ok"] is False
    recovered = run(cfg, ws, fetcher, clock)
    assert recovered.status is SyncStatus.UPDATED
    assert recovered.records == 1


def test_source_that_never_synced_is_listed_as_failed(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    server.put(PYPI, (feeds / "pypi-osv.jsonl.gz").read_bytes())
    cfg = write_config(
        tmp_path / "cfg",
        [
            {"name": "osv-pypi", "kind": "osv", "url": server.url(PYPI)},
            {"name": "kev", "kind": "kev", "url": server.url("kev/missing.json")},
        ],
    )
    ws = Workspace(tmp_path / "ws")
    outcomes = sync(load_config(cfg), ws, fetcher=fetcher, clock=clock)
    assert [o.status for o in outcomes] == [SyncStatus.UPDATED, SyncStatus.FAILED]
    assert outcomes[1].failure is FailureKind.HTTP_STATUS
    manifest = build_snapshot(ws, clock=clock).manifest
    kev = next(s for s in manifest.sources if s.name == "kev")
    assert kev.status is SourceStatus.FAILED
    assert [d.name for d in manifest.datasets] == ["osv-pypi"]


def test_upstream_checksum_is_verified(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds, sha256="0" * 64)
    outcome = run(cfg, ws, fetcher, clock)
    assert outcome.failure is FailureKind.CHECKSUM
    state = ws.state("osv-pypi")
    assert state is not None
    assert state.good is None
    digest = hashlib.sha256(server.files[PYPI]).hexdigest()
    server.put("osv/PyPI/SHA256SUMS", f"{'1' * 64}  other.zip\n{digest}  all.jsonl.gz\n".encode())
    cfg = write_config(
        tmp_path / "cfg",
        [{"name": "osv-pypi", "kind": "osv", "url": server.url(PYPI),
          "checksum_url": server.url("osv/PyPI/SHA256SUMS")}],
    )  # fmt: skip
    assert run(cfg, ws, fetcher, clock).status is SyncStatus.UPDATED


def test_size_cap_per_source(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds, max_size=1000)
    outcome = run(cfg, ws, fetcher, clock)
    assert outcome.failure is FailureKind.SIZE_LIMIT
    assert "over max_size 1000" in (outcome.error or "")


def test_truncation_that_never_recovers_fails_as_truncated(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds, retries=2)
    server.fail(PYPI, "truncate", "truncate", "truncate")
    outcome = run(cfg, ws, fetcher, clock)
    assert outcome.failure is FailureKind.TRUNCATED
    assert server.statuses(PYPI) == [200, 206, 206]


def test_corrupt_records_are_skipped_and_listed(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    lines = gzip.decompress((feeds / "pypi-osv.jsonl.gz").read_bytes()).splitlines()
    lines[5] = lines[5][:40]  # a record cut in the middle
    lines[9] = lines[9].replace(b'"modified"', b'"modifiedX"')
    server.put(PYPI, gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    cfg = write_config(
        tmp_path / "cfg", [{"name": "osv-pypi", "kind": "osv", "url": server.url(PYPI)}]
    )
    ws = Workspace(tmp_path / "ws")
    outcome = run(cfg, ws, fetcher, clock)
    assert outcome.records == 2659
    assert outcome.unknowns == 2
    [src] = build_snapshot(ws, clock=clock).manifest.sources
    items = [u.item for u in src.unknowns]
    assert items[0].startswith("all.jsonl:10 (PYSEC-")
    assert src.unknowns[0].reason == "field 'modified' missing or not a string"
    assert items[1] == "all.jsonl:6"
    assert src.unknowns[1].reason.startswith("not valid JSON")


def test_unusable_feed_fails_without_replacing_last_good(
    tmp_path: Path, server: FeedServer, feeds: Path, fetcher: HttpFetcher, clock: StepClock
) -> None:
    cfg, ws = setup(tmp_path, server, feeds)
    good = run(cfg, ws, fetcher, clock)
    server.put(PYPI, gzip.compress(b"<html>maintenance</html>\n"))
    outcome = run(cfg, ws, fetcher, clock)
    assert outcome.failure is FailureKind.PARSE
    state = ws.state("osv-pypi")
    assert state is not None
    assert state.good is not None
    assert state.good.dataset == good.dataset
    assert ws.upstream_path("osv-pypi").read_bytes() == (feeds / "pypi-osv.jsonl.gz").read_bytes()


@pytest.mark.parametrize("tty", [False])
def test_no_progress_bar_without_a_terminal(tty: bool) -> None:
    with HttpFetcher() as f:
        assert f.progress is None
