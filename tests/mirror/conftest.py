from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mirror.fetch import HttpFetcher
from tests.mirror.feedserver import FeedServer

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"


class StepClock:
    """An injected clock: starts where told and moves one minute per reading."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def write_config(directory: Path, sources: list[dict[str, Any]]) -> Path:
    """Write a mirror.toml with one [[source]] table per dict (JSON strings are TOML strings)."""
    lines = []
    for src in sources:
        lines.append("[[source]]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in src.items())
        lines.append("")
    path = directory / "mirror.toml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def feeds() -> Path:
    return FEEDS


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


@pytest.fixture
def fetcher() -> Iterator[HttpFetcher]:
    with HttpFetcher(backoff=0.0, sleep=lambda _s: None) as f:
        yield f


@pytest.fixture
def clock() -> StepClock:
    return StepClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback servers must be reached directly, whatever proxy the machine configures."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
