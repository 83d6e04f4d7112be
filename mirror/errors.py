"""The mirror's error families: configuration, fetching, feed parsing and the snapshot store.

Each boundary has its own subclass so a caller (the sync loop, the CLI) can catch one boundary's
failures and record them, instead of catching everything.
"""

from __future__ import annotations

from bundles.errors import ConfigError, StellaError
from bundles.snapshot import FailureKind

__all__ = [
    "FailureKind",
    "FeedError",
    "FetchError",
    "MirrorConfigError",
    "SnapshotError",
    "SyncError",
]


class MirrorConfigError(ConfigError):
    """``mirror.toml`` is missing, malformed, or has a bad value (names file, source, field)."""


class FeedError(StellaError):
    """A source could not be fetched or parsed as a whole. ``kind`` classifies the failure."""

    kind: FailureKind = FailureKind.PARSE

    def __init__(
        self, message: str, *, kind: FailureKind | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        if kind is not None:
            self.kind = kind


class FetchError(FeedError):
    """Upstream bytes could not be obtained completely and verified."""

    kind = FailureKind.CONNECTION


class SyncError(StellaError):
    """One or more sources failed during a sync; their last good data was kept."""


class SnapshotError(StellaError):
    """A snapshot or dataset is missing, ambiguous or corrupt in the workspace."""
