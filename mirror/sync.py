"""``sync`` and ``snapshot build``: refresh each source, keep last good data, assemble snapshots.

A source that fails (fetch or whole-feed parse) keeps its last good result; the failure is
recorded in its state and, at build time, in the manifest (status ``stale`` or ``failed`` with
the failure kind), so a snapshot is never silently smaller than the configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bundles.digest import Digest
from bundles.limits import LimitError
from mirror.config import MirrorConfig, SourceConfig
from mirror.datasets import build_dataset
from mirror.errors import FailureKind, FeedError, SnapshotError
from mirror.fetch import Fetcher, HttpFetcher, Validators
from mirror.inputs import Upstream
from mirror.snapshot import DatasetEntry, Manifest, SourceEntry, SourceStatus
from mirror.sources import source_for
from mirror.workspace import Attempt, GoodResult, SourceState, Workspace

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(clock: Clock) -> str:
    return clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SyncStatus(StrEnum):
    UPDATED = "updated"  # new upstream bytes (or a new normalizer) gave a new result
    UNCHANGED = "unchanged"  # upstream unchanged (304, or same digest): last result reused
    FAILED = "failed"  # kept the last good result (if any)


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    name: str
    status: SyncStatus
    records: int | None = None
    unknowns: int | None = None
    dataset: Digest | None = None
    failure: FailureKind | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "records": self.records,
            "unknowns": self.unknowns,
            "dataset": str(self.dataset) if self.dataset else None,
            "failure": self.failure.value if self.failure else None,
            "error": self.error,
        }


def sync(
    config: MirrorConfig,
    workspace: Workspace,
    *,
    names: tuple[str, ...] = (),
    fetcher: Fetcher | None = None,
    clock: Clock = utc_now,
) -> list[SyncOutcome]:
    """Refresh the selected sources (all when ``names`` is empty); never raises for a source's
    failure, which is returned as a FAILED outcome and recorded in its state."""
    selected = config.select(names)
    workspace.save_configured(config.sources)
    own = fetcher is None
    active = fetcher or HttpFetcher()
    try:
        return [sync_source(src, workspace, active, clock) for src in selected]
    finally:
        if own:
            active.close()


def sync_source(
    src: SourceConfig, workspace: Workspace, fetcher: Fetcher, clock: Clock
) -> SyncOutcome:
    state = workspace.state(src.name)
    good = state.good if state and state.kind == src.kind else None
    now = _stamp(clock)
    try:
        result, status = _refresh(src, workspace, fetcher, good, now)
    except FeedError as e:
        workspace.save_state(
            SourceState(
                src.name, src.kind, src.location, good, Attempt(now, False, e.kind, e.diagnostics())
            )
        )
        return SyncOutcome(src.name, SyncStatus.FAILED, failure=e.kind, error=e.diagnostics())
    workspace.save_state(SourceState(src.name, src.kind, src.location, result, Attempt(now, True)))
    return SyncOutcome(src.name, status, result.records, len(result.unknowns), result.dataset)


def _refresh(
    src: SourceConfig, ws: Workspace, fetcher: Fetcher, good: GoodResult | None, now: str
) -> tuple[GoodResult, SyncStatus]:
    parser = source_for(src.kind)
    current = (
        good is not None
        and good.normalizer == parser.version
        and ws.store.has_dataset(good.dataset)
    )
    if src.url is not None:
        kept = ws.upstream_path(src.name)
        fetched = fetcher.fetch(src, kept, good.validators if good and kept.is_file() else None)
        if fetched.not_modified:
            assert good is not None
            if current:
                return good, SyncStatus.UNCHANGED
            upstream = Upstream(kept, _url_name(src.url))
            return _parse(src, upstream, good.validators, good.fetched_at, ws), SyncStatus.UPDATED
        assert fetched.path is not None
        new = fetched.path
        if current and good is not None and fetched.sha256 == good.upstream:
            new.replace(kept)
            return _revalidated(good, fetched.validators, now), SyncStatus.UNCHANGED
        try:
            result = _parse(src, Upstream(new, _url_name(src.url)), fetched.validators, now, ws)
        except FeedError:
            new.unlink(missing_ok=True)
            raise
        new.replace(kept)
        return result, SyncStatus.UPDATED
    assert src.path is not None
    if not src.path.exists():
        raise FeedError(f"source {src.name!r}: {src.path} does not exist", kind=FailureKind.MISSING)
    upstream = Upstream(src.path, src.path.name)
    if current and good is not None and upstream.identity()[0] == good.upstream:
        return good, SyncStatus.UNCHANGED
    return _parse(src, upstream, Validators(), now, ws), SyncStatus.UPDATED


def _revalidated(good: GoodResult, validators: Validators, now: str) -> GoodResult:
    return GoodResult(
        upstream=good.upstream,
        upstream_size=good.upstream_size,
        validators=validators,
        fetched_at=now,
        normalizer=good.normalizer,
        dataset_type=good.dataset_type,
        dataset=good.dataset,
        records=good.records,
        size=good.size,
        duplicates=good.duplicates,
        meta=good.meta,
        unknowns=good.unknowns,
        ignored=good.ignored,
    )


def _url_name(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "feed"


def _parse(
    src: SourceConfig, upstream: Upstream, validators: Validators, fetched_at: str, ws: Workspace
) -> GoodResult:
    parser = source_for(src.kind)
    identity, size = upstream.identity()
    members = upstream.members(limit=max(src.max_size * 8, 1 << 30))
    try:
        parsed = parser.parse(members)
    except LimitError as e:  # one hostile source fails alone; the others still sync
        raise FeedError(
            f"source {src.name!r}: {e.message}", kind=FailureKind.SIZE_LIMIT, hint=e.hint
        ) from e
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
        raise FeedError(f"source {src.name!r}: cannot parse {upstream.name}: {e}") from e
    if not parsed.records and parsed.unknowns:
        raise FeedError(
            f"source {src.name!r}: no usable record in {upstream.name} "
            f"({len(parsed.unknowns)} skipped, first: {parsed.unknowns[0].item}: "
            f"{parsed.unknowns[0].reason})",
            hint=f"is this really a {src.kind.value} feed?",
        )
    built = build_dataset(parsed)
    ws.store.put_dataset(built.data)
    return GoodResult(
        upstream=identity,
        upstream_size=size,
        validators=validators,
        fetched_at=fetched_at,
        normalizer=parser.version,
        dataset_type=parser.dataset_type,
        dataset=built.digest,
        records=built.records,
        size=len(built.data),
        duplicates=built.duplicates,
        meta=dict(sorted(parsed.meta.items())),
        unknowns=built.unknowns,
        ignored=tuple(sorted(parsed.ignored)),
    )


# -- snapshot build --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildResult:
    digest: Digest
    manifest: Manifest


def assemble(workspace: Workspace) -> tuple[Manifest, dict[str, Any]]:
    """The manifest of the workspace's current state and its (volatile) provenance."""
    sources: list[SourceEntry] = []
    datasets: list[DatasetEntry] = []
    provenance: dict[str, Any] = {}
    for name, kind in workspace.configured():
        state = workspace.state(name)
        good = state.good if state and state.kind == kind else None
        last = state.last if state else None
        provenance[name] = {
            "location": state.location if state else None,
            "fetched_at": good.fetched_at if good else None,
            "etag": good.validators.etag if good else None,
            "last_modified": good.validators.last_modified if good else None,
            "last_attempt": last.to_json() if last else None,
        }
        failure = None
        if last is None:
            failure = FailureKind.NEVER_SYNCED
        elif not last.ok:
            failure = last.failure or FailureKind.PARSE
        if good is None:
            sources.append(
                SourceEntry(
                    name,
                    kind,
                    SourceStatus.FAILED,
                    source_for(kind).version,
                    failure=failure or FailureKind.NEVER_SYNCED,
                )
            )
            continue
        sources.append(
            SourceEntry(
                name=name,
                kind=kind,
                status=SourceStatus.OK if failure is None else SourceStatus.STALE,
                normalizer=good.normalizer,
                upstream=good.upstream,
                upstream_size=good.upstream_size,
                failure=failure,
                duplicates=good.duplicates,
                unknowns=good.unknowns,
                ignored=good.ignored,
            )
        )
        datasets.append(
            DatasetEntry(
                name=name,
                type=good.dataset_type,
                source=name,
                digest=good.dataset,
                records=good.records,
                size=good.size,
                meta=good.meta,
            )
        )
    return Manifest(tuple(sources), tuple(datasets)), provenance


def build_snapshot(workspace: Workspace, *, clock: Clock = utc_now) -> BuildResult:
    """Build (or find) the snapshot of the workspace's current state and store it."""
    if not workspace.configured():
        raise SnapshotError(
            f"nothing has been synced into {workspace.root}",
            hint="run 'stella-mirror sync --config mirror.toml' first",
        )
    manifest, provenance = assemble(workspace)
    built_at = _stamp(clock)
    digest = workspace.store.put(manifest, {"built_at": built_at, "sources": provenance}, built_at)
    return BuildResult(digest, manifest)
